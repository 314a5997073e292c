"""Real worker processes (``manage.py faust worker``) against the test broker.

The workers run the tiny project in ``worker_app/``; its agents append one
line per processed event to files in a temporary directory, which is how
these tests see what was processed, even by a worker killed with SIGKILL.
Every test uses its own app id (consumer group) and topic names.

Run with ``-s`` to see the replay count of the SIGKILL test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from django_faust.testing import make_app
from django_faust.testing.broker import TestBroker

pytestmark = [pytest.mark.broker, pytest.mark.slow]

PROJECT = Path(__file__).resolve().parent / "worker_app"
PARTITIONS = 4
WORKER_COMMAND = [
    sys.executable,
    "manage.py",
    "faust",
    "worker",
    "--without-web",
    "-l",
    "info",
]
#: Seconds a worker gets to stop after SIGTERM before it is killed.
STOP_TIMEOUT = 8.0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Project:
    """One test's worker project: its app id, topics and worker processes."""

    def __init__(self, broker: TestBroker, outdir: Path, prefix: str) -> None:
        self.broker = broker
        self.outdir = outdir
        self.app_id = unique(prefix)
        self.suffix = f"-{uuid.uuid4().hex[:8]}"
        self.events = f"events{self.suffix}"
        self.clicks = f"clicks{self.suffix}"
        self.words = f"words{self.suffix}"
        self.asks = f"asks{self.suffix}"
        # The topic `group_by(Click.user)` forwards to (see Stream.group_by).
        self.repartition = f"{self.app_id}-{self.clicks}-user-repartition"
        self.processes: list[subprocess.Popen[bytes]] = []
        self._outputs: dict[int, Path] = {}

    @property
    def topics(self) -> list[str]:
        return [self.events, self.clicks, self.repartition, self.words, self.asks]

    def all_partitions(self) -> set[str]:
        return {f"{t}:{p}" for t in self.topics for p in range(PARTITIONS)}

    # -- processes -------------------------------------------------------------

    def start_worker(self, *, delay: float = 0.0) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        env.update(
            DJANGO_SETTINGS_MODULE="settings",
            PYTHONUNBUFFERED="1",
            WORKER_BROKER_URL=self.broker.url,
            WORKER_APP_ID=self.app_id,
            WORKER_OUTDIR=str(self.outdir),
            WORKER_TOPIC_SUFFIX=self.suffix,
            WORKER_EVENT_DELAY=str(delay),
        )
        output = self.outdir / f"worker-{len(self.processes)}.out"
        with output.open("wb") as out:
            process = subprocess.Popen(
                WORKER_COMMAND,
                cwd=PROJECT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        self._outputs[process.pid] = output
        return process

    def output(self, process: subprocess.Popen[bytes], tail: int = 3000) -> str:
        text = self._outputs[process.pid].read_text(errors="replace")
        return text[-tail:]

    def check_alive(self) -> None:
        for process in self.processes:
            code = process.poll()
            if code is not None and code != -signal.SIGKILL:
                raise AssertionError(
                    f"worker {process.pid} exited with {code}:\n{self.output(process)}"
                )

    def stop_all(self) -> None:
        """SIGTERM every worker still running, then SIGKILL the stragglers."""
        running = [p for p in self.processes if p.poll() is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
        self.kill_all()

    def kill_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            process.wait()

    # -- what the agents wrote -----------------------------------------------

    def lines(self, kind: str, pid: int) -> list[list[str]]:
        path = self.outdir / f"{kind}-{pid}.log"
        try:
            text = path.read_text()
        except FileNotFoundError:
            return []
        # A line is complete once its newline is there.
        return [line.split() for line in text.split("\n")[:-1]]

    def last_assignment(self, pid: int) -> set[str] | None:
        lines = self.lines("assigned", pid)
        return set(lines[-1]) if lines else None

    # -- broker ----------------------------------------------------------------

    async def declare_topics(self) -> None:
        """Create every topic the workers read before they start.

        Topics appearing while a worker is subscribed would change the
        group's metadata and cause another rebalance.
        """
        admin = AIOKafkaAdminClient(bootstrap_servers=self.broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(name, PARTITIONS, 1) for name in self.topics]
            )
        finally:
            await admin.close()

    async def produce(self, topic: str, records: Iterable[tuple[int, Any]]) -> None:
        """Send JSON values to explicit partitions, without keys."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self.broker.bootstrap, linger_ms=5
        )
        await producer.start()
        try:
            futures = [
                await producer.send(
                    topic, json.dumps(value).encode(), partition=partition
                )
                for partition, value in records
            ]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    async def committed(self, topic: str) -> dict[int, int | None]:
        """The group's committed offsets, as another client sees them."""
        client = AIOKafkaConsumer(
            bootstrap_servers=self.broker.bootstrap,
            group_id=self.app_id,
            enable_auto_commit=False,
        )
        await client.start()
        try:
            return {
                p: await client.committed(TopicPartition(topic, p))
                for p in range(PARTITIONS)
            }
        finally:
            await client.stop()


@pytest.fixture
def project_factory(
    kafka_broker: TestBroker, tmp_path: Path
) -> Iterator[Callable[[str], Project]]:
    projects: list[Project] = []

    def make(prefix: str) -> Project:
        project = Project(kafka_broker, tmp_path, prefix)
        projects.append(project)
        return project

    try:
        yield make
    finally:
        for project in projects:
            project.kill_all()


async def wait_for(
    predicate: Callable[[], Any],
    timeout: float,
    what: str,
    project: Project,
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        project.check_alive()
        if time.monotonic() > deadline:
            outputs = "\n".join(
                f"--- worker {p.pid} ---\n{project.output(p)}"
                for p in project.processes
            )
            raise AssertionError(
                f"Timed out after {timeout}s waiting for {what}\n{outputs}"
            )
        await asyncio.sleep(0.05)


async def test_sigkill_mid_stream_then_restart_replays_only_uncommitted(
    project_factory: Callable[[str], Project],
) -> None:
    """At-least-once across a SIGKILL: nothing lost, replays bounded by commits.

    The first worker is killed mid-stream. Everything below the group's
    committed offsets at that moment was processed (and logged) by it; the
    second worker starts at those offsets, so the only events processed twice
    are those the first worker logged at or past its last commit.
    """
    project = project_factory("kill")
    n_events = 3000
    await project.declare_topics()
    await project.produce(
        project.events, ((n % PARTITIONS, n) for n in range(n_events))
    )
    try:
        first = project.start_worker(delay=0.002)
        await wait_for(
            lambda: len(project.lines("processed", first.pid)) >= 800,
            timeout=40,
            what="the first worker to process 800 events",
            project=project,
        )
        first.send_signal(signal.SIGKILL)
        first.wait()
        # A commit request sent just before the kill is answered by now.
        await asyncio.sleep(0.3)
        committed = await project.committed(project.events)
        before = project.lines("processed", first.pid)

        second = project.start_worker()

        def all_seen() -> bool:
            seen = {
                int(line[2])
                for process in (first, second)
                for line in project.lines("processed", process.pid)
            }
            return len(seen) == n_events

        await wait_for(
            all_seen, timeout=60, what="every event to be processed", project=project
        )
        project.stop_all()
    finally:
        project.kill_all()
    after = project.lines("processed", second.pid)

    # The first worker was killed mid-stream, after some commits.
    assert 800 <= len(before) < n_events
    commits = {p: offset or 0 for p, offset in committed.items()}
    committed_total = sum(commits.values())
    assert committed_total > 0, f"nothing was committed before the kill: {committed}"

    # It processed every partition in order, and committed nothing it had
    # not processed.
    offsets: dict[int, list[int]] = defaultdict(list)
    for partition, offset, _ in before:
        offsets[int(partition)].append(int(offset))
    for p in range(PARTITIONS):
        assert offsets[p] == list(range(len(offsets[p]))), p
        assert commits[p] <= len(offsets[p]), (p, commits[p], len(offsets[p]))

    # At least once: nothing lost.
    counts = Counter(int(line[2]) for line in before + after)
    assert set(counts) == set(range(n_events))
    # Bounded replays: only what the first worker did after its last commit.
    replayed = sum(count - 1 for count in counts.values())
    bound = len(before) - committed_total
    uncommitted = sum(
        1 for partition, offset, _ in before if int(offset) >= commits[int(partition)]
    )
    print(
        f"replayed {replayed} events (first worker processed {len(before)}, "
        f"committed {committed_total}, bound {bound}, "
        f"logged past the commit {uncommitted})"
    )
    assert replayed <= bound
    # The second worker resumed exactly at the committed offsets.
    resumed: dict[int, int] = {}
    for partition, offset, _ in after:
        resumed.setdefault(int(partition), int(offset))
    for p, first_offset in resumed.items():
        assert first_offset == commits[p], (p, first_offset, commits[p])


async def test_group_by_moves_each_key_to_one_worker(
    project_factory: Callable[[str], Project],
) -> None:
    """Two workers, clicks of a user spread over every source partition.

    After `group_by(Click.user)` every user's clicks reach one worker, and in
    a run without rebalances every click is processed exactly once.
    """
    project = project_factory("group")
    users, rounds = 50, 6
    await project.declare_topics()
    try:
        workers = [project.start_worker(), project.start_worker()]
        everything = project.all_partitions()

        def split_between_both() -> bool:
            parts = [project.last_assignment(w.pid) for w in workers]
            if any(not p for p in parts):
                return False
            a, b = parts
            assert a is not None and b is not None
            return not (a & b) and (a | b) == everything

        await wait_for(
            split_between_both,
            timeout=40,
            what="both workers to share the partitions",
            project=project,
        )
        rebalances = [len(project.lines("assigned", w.pid)) for w in workers]

        # Round r of clicks goes to source partition r % 4: every user's
        # clicks are spread over the partitions of both workers.
        n_clicks = users * rounds
        await project.produce(
            project.clicks,
            (
                ((i // users) % PARTITIONS, {"user": f"user-{i % users}", "n": i})
                for i in range(n_clicks)
            ),
        )

        def grouped() -> list[list[str]]:
            return [line for w in workers for line in project.lines("grouped", w.pid)]

        await wait_for(
            lambda: len({line[2] for line in grouped()}) == n_clicks,
            timeout=30,
            what="every click to be processed",
            project=project,
        )
        await asyncio.sleep(0.5)  # anything processed twice shows up by now
        assert [len(project.lines("assigned", w.pid)) for w in workers] == rebalances, (
            "a rebalance happened while the clicks were processed"
        )
        project.stop_all()
    finally:
        project.kill_all()

    users_of: dict[int, set[str]] = {}
    all_lines = []
    for worker in workers:
        lines = project.lines("grouped", worker.pid)
        assert all(int(pid) == worker.pid for pid, _, _ in lines)
        users_of[worker.pid] = {user for _, user, _ in lines}
        all_lines.extend(lines)
    a, b = users_of.values()
    assert a and b, f"one worker got no users: {users_of}"
    assert not (a & b), f"users on both workers: {sorted(a & b)}"
    assert a | b == {f"user-{u}" for u in range(users)}
    # Exactly once, each click with its own user.
    assert sorted(int(n) for _, _, n in all_lines) == list(range(n_clicks))
    for _, user, n in all_lines:
        assert user == f"user-{int(n) % users}"


async def test_rpc_between_worker_processes_and_from_a_client_only_app(
    project_factory: Callable[[str], Project],
) -> None:
    """``ask`` round-trips worker to worker, and from a process that is not one.

    ``relay`` (on whichever worker owns the event) asks ``shout`` (on
    whichever worker owns the request's partition); the reply names the
    process that answered.
    """
    project = project_factory("rpc")
    await project.declare_topics()
    try:
        workers = [project.start_worker(), project.start_worker()]
        everything = project.all_partitions()

        def split_between_both() -> bool:
            parts = [project.last_assignment(w.pid) for w in workers]
            return all(parts) and set().union(*parts) == everything  # type: ignore[arg-type]

        await wait_for(
            split_between_both,
            timeout=40,
            what="both workers to share the partitions",
            project=project,
        )
        n = 24
        await project.produce(
            project.asks, ((i % PARTITIONS, f"w{i}") for i in range(n))
        )

        def answered() -> list[list[str]]:
            return [line for w in workers for line in project.lines("rpc", w.pid)]

        await wait_for(
            lambda: len(answered()) >= n,
            timeout=40,
            what="every ask to be answered",
            project=project,
        )
        pids = {str(w.pid) for w in workers}
        crossed = 0
        for asker, word, reply in answered():
            upper, answerer = reply.split("@")
            assert upper == word.upper()
            assert answerer in pids
            crossed += answerer != asker
        assert crossed, "no reply crossed from one worker process to the other"

        # A client-only app (like a web process) asks the workers.
        client = make_app(project.app_id, broker=project.broker.url)

        @client.agent(client.topic(project.words, value_type=str), name="shout")
        async def shout(words: Any) -> None:  # declared, never run here
            async for _ in words:
                pass

        await client.start_client()
        try:
            reply = await shout.ask("client", timeout=20)
        finally:
            await client.stop()
        upper, answerer = reply.split("@")
        assert upper == "CLIENT" and answerer in pids
        project.stop_all()
    finally:
        project.kill_all()
