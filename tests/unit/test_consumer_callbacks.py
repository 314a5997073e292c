"""The consumer's seam: it does what the app needs only through its callbacks.

A consumer is built here on the memory transport with fake callbacks and no
App at all: whatever it flushes, reports, revokes, recovers or signals, it
does through `ConsumerCallbacks`.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from typing import Any

import pytest

from django_faust import TP, Settings
from django_faust.events import Batch
from django_faust.transport.base import ConsumerCallbacks
from django_faust.transport.memory import MemoryTransport
from tests.helpers import wait_for


def _settings(**options: Any) -> Settings:
    return Settings(
        id="seam",
        broker=f"memory://seam-{uuid.uuid4().hex[:12]}",
        topic_partitions=2,
        commit_interval=1000.0,  # commits only when a test asks
        web_enabled=False,
        **options,
    )


class Recorder:
    """Fake callbacks that write down every call, in order."""

    def __init__(
        self,
        topics: Collection[str],
        standbys: tuple[Collection[str], int] = ((), 0),
        passive: Collection[str] = (),
    ) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.batches: list[Batch] = []
        self._topics = set(topics)
        self._standbys = standbys
        self._passive = set(passive)

    def names(self) -> list[str]:
        return [call[0] for call in self.calls]

    def callbacks(self) -> ConsumerCallbacks:
        calls = self.calls

        def deliver(batch: Batch) -> None:
            self.batches.append(batch)
            batch.retain(0)  # nobody reads it: done at once, committable

        async def before_commit() -> None:
            calls.append(("before_commit",))

        def after_commit(offsets: Mapping[TP, int]) -> None:
            calls.append(("after_commit", dict(offsets)))

        def on_revoking(tps: set[TP]) -> None:
            calls.append(("revoking", set(tps)))

        async def on_revoked(tps: set[TP]) -> None:
            calls.append(("revoked", set(tps)))

        async def on_assigning(tps: set[TP], standbys: set[TP]) -> None:
            calls.append(("assigning", set(tps), set(standbys)))

        async def on_assigned(tps: set[TP]) -> None:
            calls.append(("assigned", set(tps)))

        def signal(name: str) -> Any:
            async def send() -> None:
                calls.append((name,))

            return send

        return ConsumerCallbacks(
            topics=lambda: self._topics,
            deliver=deliver,
            passive=lambda: self._passive,
            before_commit=before_commit,
            after_commit=after_commit,
            on_revoking=on_revoking,
            on_revoked=on_revoked,
            on_assigning=on_assigning,
            on_assigned=on_assigned,
            on_rebalance_start=signal("start"),
            on_rebalance_return=signal("return"),
            on_rebalance_complete=signal("complete"),
            standby_topics=lambda: self._standbys,
        )


def _tps(topic: str, *partitions: int) -> set[TP]:
    return {TP(topic, p) for p in partitions}


async def test_a_consumer_without_an_app_calls_back_in_rebalance_order() -> None:
    conf = _settings()
    transport = MemoryTransport(conf.broker_url, conf)
    recorder = Recorder({"orders"})
    consumer = transport.create_consumer(recorder.callbacks())
    assert not hasattr(consumer, "app")
    await consumer.start()
    try:
        await wait_for(lambda: "complete" in recorder.names())
        everything = _tps("orders", 0, 1)
        # Joining is a rebalance: nothing held, so nothing revoked.
        assert recorder.calls == [
            ("start",),
            ("return",),
            ("assigning", everything, set()),
            ("assigned", everything),
            ("complete",),
        ]
        assert consumer.assignment() == everything
        assert not consumer.rebalancing
    finally:
        await consumer.stop()


async def test_commits_flush_through_the_callbacks_first_then_report() -> None:
    conf = _settings()
    transport = MemoryTransport(conf.broker_url, conf)
    recorder = Recorder({"orders"})
    consumer = transport.create_consumer(recorder.callbacks())
    await consumer.start()
    try:
        await wait_for(lambda: "complete" in recorder.names())
        recorder.calls.clear()
        for i in range(3):
            transport.broker.append("orders", None, b"x", partition=i % 2)
        await wait_for(lambda: sum(len(b) for b in recorder.batches) == 3)
        assert await consumer.commit() is True
        offsets = {TP("orders", 0): 2, TP("orders", 1): 1}
        assert recorder.calls == [("before_commit",), ("after_commit", offsets)]
        assert transport.broker.committed[("seam", TP("orders", 0))] == 2
        # Nothing new acked: no flush, no commit, no report.
        assert await consumer.commit() is False
        assert len(recorder.calls) == 2
    finally:
        await consumer.stop()


async def test_a_second_member_makes_the_first_revoke_then_reassign() -> None:
    conf = _settings()
    first, second = Recorder({"orders"}), Recorder({"orders"})
    transport = MemoryTransport(conf.broker_url, conf)
    one = transport.create_consumer(first.callbacks())
    two = MemoryTransport(conf.broker_url, conf).create_consumer(second.callbacks())
    await one.start()
    try:
        await wait_for(lambda: "complete" in first.names())
        transport.broker.append("orders", None, b"x", partition=0)
        await wait_for(lambda: first.batches)
        first.calls.clear()
        await two.start()
        try:
            await wait_for(lambda: "complete" in first.names())
            await wait_for(lambda: "complete" in second.names())
            kept = one.assignment()
            assert len(kept) == 1 and not kept & two.assignment()
            # Eager protocol: all revoked (after the acked offset is
            # committed), then the new share assigned.
            assert first.calls == [
                ("start",),
                ("revoking", _tps("orders", 0, 1)),
                ("before_commit",),
                ("after_commit", {TP("orders", 0): 1}),
                ("revoked", _tps("orders", 0, 1)),
                ("return",),
                ("assigning", kept, set()),
                ("assigned", kept),
                ("complete",),
            ]
        finally:
            await two.stop()
    finally:
        await one.stop()


async def test_the_memory_broker_reads_standby_topics_from_the_callbacks() -> None:
    conf = _settings()
    standbys = ({"tbl-changelog"}, 1)
    recorders = [
        Recorder({"src", "tbl-changelog"}, standbys, passive={"tbl-changelog"})
        for _ in range(2)
    ]
    consumers = [
        MemoryTransport(conf.broker_url, conf).create_consumer(r.callbacks())
        for r in recorders
    ]
    for consumer in consumers:
        await consumer.start()
    try:
        await wait_for(
            lambda: all(
                len(c.assignment()) == 2 and c.standby_assignment() for c in consumers
            )
        )
        for consumer in consumers:
            copies = consumer.standby_assignment()
            assert {tp.topic for tp in copies} == {"tbl-changelog"}
            assert not copies & consumer.assignment()
        # Passive topics are assigned but never tracked for commits.
        assert all(tp.topic == "src" for tp in consumers[0].trackers)
    finally:
        for consumer in reversed(consumers):
            await consumer.stop()


async def test_a_failed_assignment_ends_the_rebalance_so_the_next_one_says_so() -> None:
    conf = _settings()
    transport = MemoryTransport(conf.broker_url, conf)
    recorder = Recorder({"orders"})
    failing = recorder.callbacks()

    async def recovery_fails(tps: set[TP], standbys: set[TP]) -> None:
        raise RuntimeError("recovery failed")

    consumer = transport.create_consumer(
        ConsumerCallbacks(
            topics=failing.topics,
            deliver=failing.deliver,
            on_rebalance_start=failing.on_rebalance_start,
            on_rebalance_complete=failing.on_rebalance_complete,
            on_assigning=recovery_fails,
        )
    )
    with pytest.raises(RuntimeError, match="recovery failed"):
        await consumer.on_partitions_assigned(_tps("orders", 0))
    assert not consumer.rebalancing
    assert recorder.names() == ["start"]
    await consumer.on_partitions_revoked(set())
    assert recorder.names() == ["start", "start"]


def test_no_transport_module_imports_the_app() -> None:
    """The seam holds by construction: transport/ knows no App to reach into."""
    import ast
    from pathlib import Path

    import django_faust.transport

    root = Path(django_faust.transport.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and "app" in (node.module or "").split(
                "."
            ):
                offenders.append(f"{path.relative_to(root)}: {node.module}")
    assert not offenders, offenders
