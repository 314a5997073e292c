"""Exact tables across SIGKILLs: a worker killed mid-stream, again and again.

One worker at a time counts events per key in two tables, one in RocksDB
(its files kept across restarts, as on a worker machine) and one in memory
(rebuilt from its changelog at every start). It is killed with SIGKILL
several times while it processes, and restarted. Under at-least-once the
events after the last commit are processed again after each restart; the
tables must count them once: when every event is processed, one more event
per key finds both tables holding exactly the number of events of that key.

Run with ``-s`` to see the figures (events, kills, over-count).
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.workers import PARTITIONS, Project, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.slow]

KEYS = [f"k{i}" for i in range(12)]


class KillProject(Project):
    """The worker project with the memory table's changelog declared too."""

    @property
    def topics(self) -> list[str]:
        return [*super().topics, f"{self.app_id}-memory-counts-changelog"]


async def test_tables_are_exact_after_sigkills_mid_stream(
    project_factory: Callable[[str], Project], tmp_path: Path
) -> None:
    project = project_factory("exactkill")
    project.__class__ = KillProject
    n_events, kills = 12_000, 4
    await project.declare_topics()
    # A key always goes to the same partition (as a keyed producer does).
    sent = [(i % len(KEYS), i) for i in range(n_events)]
    await project.produce_keyed(
        project.tallies,
        ((k % PARTITIONS, KEYS[k], value) for k, value in sent),
    )
    expected = Counter(KEYS[k] for k, _ in sent)
    ends = Counter(k % PARTITIONS for k, _ in sent)
    env = {
        "WORKER_STORE": "rocksdb://",
        "WORKER_DATADIR": str(tmp_path / "machine"),
        "WORKER_MEMORY_TABLE": "1",
        # Commits take 0.3 s of the 0.5 s interval: many kills land between
        # a changelog flush and the commit that follows it.
        "WORKER_COMMIT_DELAY": "0.3",
    }
    rng = random.Random(12)
    processed: list[int] = []
    try:
        for _ in range(kills):
            worker = project.start_worker(delay=0.0005, env=env)
            seen = sum(processed)
            await wait_for(
                lambda w=worker: len(project.lines("tally", w.pid)) >= 200,
                timeout=60,
                what="the worker to process events",
                project=project,
            )
            # Kills land anywhere: between a changelog flush and its commit
            # too (the commit interval is 0.5 s).
            await asyncio.sleep(rng.uniform(0.2, 1.2))
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            processed.append(len(project.lines("tally", worker.pid)))
            assert seen + processed[-1] < n_events * 3, "runaway replays"

        final = project.start_worker(env=env)

        async def all_committed() -> bool:
            committed = await project.committed(project.tallies)
            return all(committed[p] == ends[p] for p in range(PARTITIONS))

        deadline = asyncio.get_running_loop().time() + 120
        while not await all_committed():
            project.check_alive()
            assert asyncio.get_running_loop().time() < deadline, project.output(final)
            await asyncio.sleep(0.5)
        before = len(project.lines("tally", final.pid))
        # One more event per key: each table's count after it is exact + 1.
        await project.produce_keyed(
            project.tallies,
            ((k % PARTITIONS, key, -1) for k, key in enumerate(KEYS)),
        )
        await wait_for(
            lambda: len(project.lines("tally", final.pid)) >= before + len(KEYS),
            timeout=30,
            what="the probe events",
            project=project,
        )
        project.stop_all()
    finally:
        project.kill_all()

    total_processed = sum(processed) + before
    results = {}
    for kind in ("tally", "memory-tally"):
        probes = project.lines(kind, final.pid)[before:]
        counted = {key: int(count) - 1 for _, _, _, key, count in probes}
        results[kind] = counted
    over = {
        kind: sum(counted[key] - expected[key] for key in KEYS)
        for kind, counted in results.items()
    }
    print(
        f"\n{n_events} events, {kills} SIGKILLs, {total_processed} processed "
        f"({total_processed - n_events} replayed); over-count RocksDB "
        f"{over['tally']}, memory {over['memory-tally']}"
    )
    assert total_processed > n_events, "no event was processed twice: no test"
    assert results["tally"] == dict(expected)
    assert results["memory-tally"] == dict(expected)
