"""Tables in real worker processes on the test broker, on both stores.

The ``tally`` agent of ``worker_app/`` counts events per key in the table
``counts`` and logs ``<pid> <partition> <offset> <key> <count_after>`` per
event, so these tests see every count a worker produced, even one it was
killed right after. Every worker gets a data directory of its own (as a
worker machine would); a restarted worker gets the one it had.

Keys are spread over the partitions by the test (``user-u`` always goes to
partition ``u % PARTITIONS``), as a keyed producer would do. Run with ``-s``
to see the replayed changelog records and the over-counts.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from typing import NamedTuple

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from tests.integration.workers import PARTITIONS, Project, wait_for

pytestmark = [
    pytest.mark.broker,
    pytest.mark.slow,
    pytest.mark.parametrize("store", ["memory://", "rocksdb://"]),
]

USERS = 20
KEYS = [f"user-{u:02d}" for u in range(USERS)]


def partition_of(key: str) -> int:
    return int(key.rsplit("-", 1)[1]) % PARTITIONS


class Tally(NamedTuple):
    """One line of a tally-<pid>.log: an event and the count it led to."""

    pid: int
    partition: int
    offset: int
    key: str
    count: int


class Tallies:
    """The events a test sent to the tallies topic, and what workers logged."""

    def __init__(self, project: Project) -> None:
        self.project = project
        #: Events sent per key, and per partition.
        self.sent: Counter[str] = Counter()
        self.sent_to: Counter[int] = Counter()

    async def send(self, rounds: int) -> None:
        """``rounds`` events for every key."""
        records = [
            (partition_of(key), key, sum(self.sent.values()) + i)
            for i, key in enumerate(KEYS * rounds)
        ]
        await self.project.produce_keyed(self.project.tallies, records)
        for partition, key, _ in records:
            self.sent[key] += 1
            self.sent_to[partition] += 1

    def logged(self, *processes: subprocess.Popen[bytes]) -> list[Tally]:
        """Lines of ``processes`` (default: every worker), in their order."""
        chosen = processes or tuple(self.project.processes)
        return [
            Tally(int(pid), int(p), int(o), key, int(count))
            for process in chosen
            for pid, p, o, key, count in self.project.lines("tally", process.pid)
        ]

    def positions(self) -> set[tuple[int, int]]:
        return {(t.partition, t.offset) for t in self.logged()}

    async def wait_all_processed(self, timeout: float = 40) -> None:
        total = sum(self.sent.values())
        await wait_for(
            lambda: len(self.positions()) >= total,
            timeout=timeout,
            what=f"all {total} tallies to be processed",
            project=self.project,
        )

    def last_counts(self) -> dict[str, int]:
        """Each key's count after its latest event (a replay: its last logging).

        A key stays in one partition, whose offsets grow with time; of two
        workers logging one offset (a replay), the later started one is last.
        """
        order = {p.pid: i for i, p in enumerate(self.project.processes)}
        last: dict[str, tuple[int, int, int]] = {}
        for t in self.logged():
            rank = (t.offset, order[t.pid], t.count)
            if t.key not in last or rank > last[t.key]:
                last[t.key] = rank
        return {key: rank[2] for key, rank in last.items()}

    def assert_counts_exact(self) -> None:
        assert self.last_counts() == dict(self.sent)


def machine(project: Project, store: str, name: str) -> dict[str, str]:
    """The environment of a worker on machine ``name``: store and data dir."""
    return {
        "WORKER_STORE": store,
        "WORKER_DATADIR": str(project.outdir / f"data-{name}"),
    }


async def changelog_sizes(project: Project) -> dict[int, int]:
    """Records in each partition of the ``counts`` changelog (never compacted).

    Read with the fetch response's high watermark: the test broker's
    ``end_offsets()`` is not reliable.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=project.broker.bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(project.changelog, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            await consumer.getmany(timeout_ms=200)
            sizes: dict[int, int] = {}
            for tp in tps:
                size = consumer.highwater(tp)
                if size is not None and await consumer.position(tp) >= size:
                    sizes[tp.partition] = size
            if len(sizes) == len(tps):
                return sizes
        raise AssertionError(f"could not read {project.changelog} to its end")
    finally:
        await consumer.stop()


async def wait_assigned(
    project: Project, process: subprocess.Popen[bytes], wanted: set[str] | None
) -> None:
    """Wait for ``process`` to be assigned ``wanted`` (None: anything).

    The agents log an assignment after the tables were recovered.
    """

    def done() -> bool:
        got = project.last_assignment(process.pid)
        return got is not None if wanted is None else got == wanted

    await wait_for(
        done, timeout=40, what=f"worker {process.pid} to be assigned", project=project
    )


async def test_clean_restart_replays_only_what_the_store_lacks(
    project_factory: Callable[[str], Project], store: str
) -> None:
    """SIGTERM, exit 0, start again: exact counts, and a minimal replay.

    A RocksDB store persisted every changelog offset with its data, so the
    restarted worker replays no old record; a memory store lost everything
    and replays the whole changelog.
    """
    project = project_factory("tclean")
    tallies = Tallies(project)
    env = machine(project, store, "a")
    await project.declare_topics()
    try:
        first = project.start_worker(env=env)
        await wait_assigned(project, first, project.all_partitions())
        await tallies.send(rounds=10)
        await tallies.wait_all_processed()
        tallies.assert_counts_exact()
        assert project.stop(first) == 0, project.output(first)
        sizes = await changelog_sizes(project)

        second = project.start_worker(env=env)
        await wait_assigned(project, second, project.all_partitions())
        replayed = sum(records for _, records in project.recoveries(second))
        await tallies.send(rounds=5)
        await tallies.wait_all_processed()
        project.stop_all()
    finally:
        project.kill_all()

    print(
        f"{store}: the restarted worker replayed {replayed} of the changelog's "
        f"{sum(sizes.values())} records"
    )
    assert 0 < sum(sizes.values()) <= 10 * USERS
    assert replayed == (0 if store == "rocksdb://" else sum(sizes.values()))
    # Every event was processed once, and counted from the right value.
    assert len(tallies.logged()) == sum(tallies.sent.values())
    tallies.assert_counts_exact()
    assert all(t.count > 10 for t in tallies.logged(second))


async def test_sigkill_loses_no_count_and_overcounts_only_uncommitted(
    project_factory: Callable[[str], Project], store: str
) -> None:
    """SIGKILL mid-stream, restart: no event missing from any count.

    A count may include an event twice only if the event was processed again
    because its offset was not committed: the over-count is at most the
    events the killed worker logged at or past the committed offsets.
    """
    project = project_factory("tkill")
    tallies = Tallies(project)
    env = machine(project, store, "a")
    rounds = 100
    await project.declare_topics()
    try:
        first = project.start_worker(delay=0.002, env=env)
        await wait_assigned(project, first, project.all_partitions())
        await tallies.send(rounds=rounds)
        await wait_for(
            lambda: len(tallies.logged(first)) >= 600,
            timeout=40,
            what="the first worker to process 600 events",
            project=project,
        )
        first.send_signal(signal.SIGKILL)
        first.wait()
        # A commit request sent just before the kill is answered by now.
        await asyncio.sleep(0.3)
        committed = await project.committed(project.tallies)
        sizes = await changelog_sizes(project)
        before = tallies.logged(first)

        second = project.start_worker(env=env)
        await tallies.wait_all_processed(timeout=60)
        replayed = sum(records for _, records in project.recoveries(second))
        # One more event per key: its count shows what the table held.
        await tallies.send(rounds=1)
        await tallies.wait_all_processed()
        project.stop_all()
    finally:
        project.kill_all()

    total = rounds * USERS
    assert 600 <= len(before) < total
    commits = {p: offset or 0 for p, offset in committed.items()}
    assert sum(commits.values()) > 0, f"nothing was committed: {committed}"
    past_commit = sum(1 for t in before if t.offset >= commits[t.partition])

    counts = tallies.last_counts()
    missing = {k: n - counts.get(k, 0) for k, n in tallies.sent.items()}
    assert all(n <= 0 for n in missing.values()), f"events missing: {missing}"
    overcount = sum(counts[k] - n for k, n in tallies.sent.items())
    print(
        f"{store}: over-count {overcount} (killed worker processed {len(before)}, "
        f"committed {sum(commits.values())}, logged past the commit "
        f"{past_commit}); the restarted worker replayed {replayed} of the "
        f"changelog's {sum(sizes.values())} records"
    )
    assert overcount <= past_commit
    assert replayed <= sum(sizes.values())
    if store == "memory://":
        assert replayed == sum(sizes.values())


async def test_second_worker_takes_half_and_gives_it_back(
    project_factory: Callable[[str], Project], store: str
) -> None:
    """A second worker joins, serves its keys alone, leaves; counts stay right.

    While both run, each key is counted by the one worker holding its
    partition, which recovered the counts made before it joined. When it
    leaves, the first worker recovers the partitions (at most the changelog
    written since it gave them away: it kept a standby copy) and counts on.
    """
    project = project_factory("tshare")
    tallies = Tallies(project)
    everything = project.all_partitions()
    await project.declare_topics()
    try:
        first = project.start_worker(env=machine(project, store, "a"))
        await wait_assigned(project, first, everything)
        await tallies.send(rounds=5)
        await tallies.wait_all_processed()
        tallies.assert_counts_exact()

        second = project.start_worker(env=machine(project, store, "b"))

        await project.wait_split(first, second)
        given = {
            int(tp.rsplit(":", 1)[1])
            for tp in project.last_assignment(second.pid) or ()
            if tp.startswith(project.tallies + ":")
        }
        joined_recovery = sum(n for _, n in project.recoveries(second))
        sizes_joined = await changelog_sizes(project)
        joined_at = dict(tallies.sent_to)
        await tallies.send(rounds=5)
        await tallies.wait_all_processed()
        tallies.assert_counts_exact()
        both = tallies.logged()

        recoveries_before = len(project.recoveries(first))
        assert project.stop(second) == 0, project.output(second)
        sizes_left = await changelog_sizes(project)
        await wait_assigned(project, first, everything)
        taken_back = sum(n for _, n in project.recoveries(first)[recoveries_before:])
        await tallies.send(rounds=5)
        await tallies.wait_all_processed()
        project.stop_all()
    finally:
        project.kill_all()

    # The partitions were split; the second worker recovered its share.
    assert given and given != set(range(PARTITIONS)), given
    assert joined_recovery == sum(sizes_joined[p] for p in given)
    # While both ran, each key was counted by the worker of its partition.
    served: dict[str, set[int]] = {}
    for t in both:
        if t.offset >= joined_at.get(t.partition, 0):
            served.setdefault(t.key, set()).add(t.pid)
    assert set(served) == set(KEYS)
    for key, pids in served.items():
        owner = second.pid if partition_of(key) in given else first.pid
        assert pids == {owner}, (key, pids)
    # Each event once, and the counts are right (the last: 15 per key).
    assert len(tallies.logged()) == sum(tallies.sent.values())
    tallies.assert_counts_exact()
    assert set(tallies.last_counts().values()) == {15}
    # After the second left, the first counted its keys on from 10.
    after = [t for t in tallies.logged(first) if partition_of(t.key) in given]
    assert sorted(t.count for t in after if t.count > 5) == sorted(
        list(range(11, 16)) * len([k for k in KEYS if partition_of(k) in given])
    )
    # Taking the partitions back replays at most what the second wrote: the
    # first kept them as a standby copy (TABLE_STANDBY_REPLICAS=1) that
    # followed the changelog, and had the older records already.
    written_by_second = sum(sizes_left[p] - sizes_joined[p] for p in given)
    print(
        f"{store}: the joining worker replayed {joined_recovery} records; "
        f"taking back {sorted(given)} replayed {taken_back} "
        f"({written_by_second} written by the second worker)"
    )
    assert written_by_second > 0
    assert taken_back <= written_by_second


async def test_agents_see_no_event_before_the_tables_are_recovered(
    project_factory: Callable[[str], Project], store: str
) -> None:
    """A worker recovers its table partitions before it processes their events.

    The changelog already holds a large table (big values of other keys,
    then a count of 1000 for every user) and events are waiting when a fresh
    worker starts: its first count for each user must be 1001, not a count
    from zero that the recovery later overwrites. The values are big so that
    recovery waits for the network (a few hundred ms) rather than holding
    the event loop: that is when the fetcher runs.
    """
    project = project_factory("trace")
    tallies = Tallies(project)
    filler, base = 40, 1000
    await project.declare_topics()
    # The table's keys and values are JSON (the changelog's serializers).
    big = "x" * 400_000
    await project.produce_keyed(
        project.changelog,
        (
            (p, json.dumps(f"filler-{p}-{i}"), big)
            for p in range(PARTITIONS)
            for i in range(filler)
        ),
    )
    await project.produce_keyed(
        project.changelog, ((partition_of(k), json.dumps(k), base) for k in KEYS)
    )
    await tallies.send(rounds=5)
    try:
        worker = project.start_worker(env=machine(project, store, "a"))
        await tallies.wait_all_processed(timeout=60)
        project.stop_all()
    finally:
        project.kill_all()

    first: dict[str, int] = {}
    for t in tallies.logged():
        first.setdefault(t.key, t.count)
    assert first == dict.fromkeys(KEYS, base + 1)
    assert tallies.last_counts() == dict.fromkeys(KEYS, base + 5)
    # Recovery read the changelog as it was, not the worker's own writes.
    replayed = sum(n for _, n in project.recoveries(worker))
    assert replayed == PARTITIONS * filler + USERS
