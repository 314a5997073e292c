"""Reliability with real worker processes: poison events, SIGTERM, broker cuts.

Workers run the project in ``worker_app/`` (see ``workers.py``). What each
test proves is summed up in docs/guarantees.rst.

``FAUST_CUT_SECONDS`` sets how long the broker cut lasts (default 5 for CI;
the hand-run version: ``FAUST_CUT_SECONDS=30 pytest -s -k broker_cut``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from django_faust.testing.broker import TestBroker, free_port
from tests.integration.proxy import CuttableProxy
from tests.integration.test_kafka_web import _get
from tests.integration.workers import PARTITIONS, Project, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.slow]

CUT_SECONDS = float(os.environ.get("FAUST_CUT_SECONDS") or 5)


def click(n: int) -> dict[str, object]:
    return {"user": f"u{n}", "n": n}


# -- poison events ---------------------------------------------------------------


async def test_a_poison_event_goes_to_the_dead_letter_topic_and_can_be_replayed(
    project_factory: Callable[[str], Project],
) -> None:
    project = project_factory("poison")
    await project.declare_topics()
    await project.produce(
        project.careful, [(0, click(1)), (0, click(-1)), (0, click(2))]
    )
    worker = project.start_worker()
    try:
        await wait_for(
            lambda: len(project.lines("careful", worker.pid)) == 2,
            timeout=40,
            what="both good events to be processed",
            project=project,
        )
        assert [line[2] for line in project.lines("careful", worker.pid)] == ["1", "2"]
        letters = await project.read_topic(project.dead_letters)
        assert [json.loads(r.value)["n"] for r in letters] == [-1]
        headers = {k: v.decode() for k, v in letters[0].headers}
        assert headers["django_faust.stage"] == "agent"
        assert headers["django_faust.topic"] == project.careful
        assert (headers["django_faust.partition"], headers["django_faust.offset"]) == (
            "0",
            "1",
        )
        assert "negative n: -1" in headers["django_faust.error"]
        # The partition moved on: everything is committed.
        await asyncio.sleep(1.0)
        assert (await project.committed(project.careful))[0] == 3
    finally:
        assert project.stop(worker) == 0
    log = project.output(worker, tail=0)
    assert len(re.findall(rf"{re.escape(project.careful)}\[0\]@1", log)) == 1, log

    listed = project.faust("dead-letters", "list", "--topic", project.careful)
    assert listed.returncode == 0, listed.stderr
    assert "1 dead letter(s)" in listed.stdout
    assert f"{project.careful}\t0\t1\tagent\t" in listed.stdout
    dry = project.faust("dead-letters", "replay", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would send {project.careful}[0]@1 (agent)" in dry.stdout
    assert len(await project.read_topic(project.careful)) == 3  # nothing sent
    replayed = project.faust("dead-letters", "replay", "--offsets", "1-1")
    assert replayed.returncode == 0, replayed.stderr
    assert "Replayed 1 dead letter(s)." in replayed.stdout
    again = await project.read_topic(project.careful)
    assert [(r.partition, json.loads(r.value)["n"]) for r in again][-1] == (0, -1)


async def test_poison_policy_stop_stops_the_worker_and_commits_nothing_past_it(
    project_factory: Callable[[str], Project],
) -> None:
    project = project_factory("stop")
    await project.declare_topics()
    await project.produce(
        project.careful, [(0, click(1)), (0, click(-1)), (0, click(2))]
    )
    worker = project.start_worker(env={"WORKER_POISON_POLICY": "stop"})
    project._stopped.add(worker.pid)  # it is expected to exit by itself
    try:
        code = await asyncio.to_thread(worker.wait, 60)
    except subprocess.TimeoutExpired:
        raise AssertionError(project.output(worker)) from None
    log = project.output(worker, tail=0)
    assert code == 1, log
    assert "POISON_POLICY is 'stop'" in log
    assert f"{project.careful}[0]@1" in log
    assert [line[2] for line in project.lines("careful", worker.pid)] == ["1"]
    committed = await project.committed(project.careful)
    assert committed[0] == 1, committed
    assert await project.read_topic(project.dead_letters) == []


# -- graceful shutdown -----------------------------------------------------------


async def test_sigterm_under_load_finishes_commits_and_a_restart_replays_nothing(
    project_factory: Callable[[str], Project],
) -> None:
    """SIGTERM mid-stream: the stop is quick and clean; nothing is done twice.

    The sink (``relayed`` forwards to ``sunk``) and the table (``tally``
    counts per key) are checked for duplicates after a restart.
    """
    project = project_factory("term")
    n_events = 2000
    await project.declare_topics()
    await project.produce(project.relay, ((n % PARTITIONS, n) for n in range(n_events)))
    await project.produce_keyed(
        project.tallies,
        ((n % PARTITIONS, f"k{n % 40}", 1) for n in range(n_events)),
    )
    env = {"WORKER_SHUTDOWN_TIMEOUT": "10"}
    first = project.start_worker(delay=0.002, env=env)
    await wait_for(
        lambda: (
            len(project.lines("relayed", first.pid)) >= 300
            and len(project.lines("tally", first.pid)) >= 300
        ),
        timeout=60,
        what="the first worker to be busy",
        project=project,
    )
    started = time.monotonic()
    assert project.stop(first) == 0
    took = time.monotonic() - started
    assert took < 10, f"the stop took {took:.1f}s"
    first_log = project.output(first, tail=0)
    assert "Worker stopped." in first_log
    done_first = len(project.lines("relayed", first.pid))
    assert done_first < n_events, "stopped too late to prove anything"
    # Every event the first worker processed is committed.
    committed = await project.committed(project.relay)
    assert sum(o or 0 for o in committed.values()) == done_first

    second = project.start_worker(env=env)
    try:
        await wait_for(
            lambda: (
                len(project.lines("relayed", second.pid)) + done_first >= n_events
                and len(project.lines("tally", first.pid))
                + len(project.lines("tally", second.pid))
                >= n_events
            ),
            timeout=90,
            what="the second worker to finish",
            project=project,
        )
    finally:
        assert project.stop(second) == 0
    processed = Counter(
        (line[1], line[2])
        for pid in (first.pid, second.pid)
        for line in project.lines("relayed", pid)
    )
    assert len(processed) == n_events
    assert [k for k, c in processed.items() if c > 1] == []
    sunk = Counter(json.loads(r.value) for r in await project.read_topic(project.sunk))
    assert set(sunk) == set(range(n_events))
    assert [n for n, c in sunk.items() if c > 1] == []
    # The table: every key's last count is exactly its number of events.
    last: dict[str, int] = {}
    for pid in (first.pid, second.pid):
        for line in project.lines("tally", pid):
            last[line[3]] = int(line[4])
    assert last == {f"k{k}": n_events // 40 for k in range(40)}


# -- the broker goes away and comes back ------------------------------------------


async def test_broker_cut_the_worker_rides_it_out_and_loses_nothing(
    tmp_path: Path,
) -> None:
    """Every connection dropped for CUT_SECONDS mid-stream.

    The worker keeps running, logs one line when the broker is lost and one
    when it is back, every event reaches the sink (at least once), and
    ``health/ready/`` says not ready while the broker is away.
    """
    proxy = await CuttableProxy().start()
    assert proxy.port is not None
    broker = TestBroker(advertised_port=proxy.port)
    await asyncio.to_thread(broker.start)
    proxy.target_port = broker.port
    project = Project(broker, tmp_path, "cut")
    project.broker_url = f"kafka://127.0.0.1:{proxy.port}"
    n_events = 1500
    timeout = max(30.0, CUT_SECONDS * 2 + 10)
    try:
        await project.declare_topics()
        await project.produce(
            project.relay, ((n % PARTITIONS, n) for n in range(n_events))
        )
        web_port = free_port()
        worker = project.start_worker(
            delay=0.004,
            env={"WORKER_REQUEST_TIMEOUT": str(timeout)},
            web_port=web_port,
        )
        ready_url = f"http://127.0.0.1:{web_port}/faust/health/ready/"
        await wait_for(
            lambda: len(project.lines("relayed", worker.pid)) >= 300,
            timeout=60,
            what="the worker to be busy",
            project=project,
        )
        assert (await asyncio.to_thread(_get, ready_url)).status == 200
        readiness: list[tuple[int, bytes]] = []

        async def watch_readiness() -> None:
            while True:
                answer = await asyncio.to_thread(_get, ready_url)
                readiness.append((answer.status, answer.body))
                await asyncio.sleep(0.25)

        watcher = asyncio.ensure_future(watch_readiness())
        try:
            await proxy.cut_for(CUT_SECONDS)
        finally:
            watcher.cancel()
        assert worker.poll() is None, project.output(worker)
        assert any(
            status == 503 and b"the broker is not reachable" in body
            for status, body in readiness
        ), readiness
        done_at_cut_end = len(project.lines("relayed", worker.pid))
        # And what arrives after the outage is fetched too.
        await project.produce(
            project.relay,
            ((n % PARTITIONS, n) for n in range(n_events, n_events + 500)),
        )
        n_events += 500

        def all_done() -> bool:
            return {line[3] for line in project.lines("relayed", worker.pid)} >= {
                str(n) for n in range(n_events)
            }

        await wait_for(all_done, timeout=120, what="every event", project=project)
        assert (await asyncio.to_thread(_get, ready_url)).status == 200
        # Committed once the sink has it all (the producer is flushed first).
        deadline = time.monotonic() + 60
        while True:
            committed = await project.committed(project.relay)
            if sum(o or 0 for o in committed.values()) == n_events:
                break
            assert time.monotonic() < deadline, (committed, project.output(worker))
            await asyncio.sleep(0.5)
        sunk = Counter(
            json.loads(r.value) for r in await project.read_topic(project.sunk)
        )
        assert set(range(n_events)) <= set(sunk)
        assert project.stop(worker) == 0
        log = project.output(worker, tail=0)
        lost = re.findall(r"Lost the connection to the broker", log)
        back = re.findall(r"The broker at \S+ is back after", log)
        assert (len(lost), len(back)) == (1, 1), log[-6000:]
        aiokafka_lines = [line for line in log.splitlines() if "aiokafka" in line]
        print(
            f"\ncut {CUT_SECONDS:.0f}s: processed {done_at_cut_end} by the end of "
            f"the cut; {sum(sunk.values()) - n_events} duplicate(s) in the sink; "
            f"{len(aiokafka_lines)} aiokafka log line(s); "
            f"{proxy.refused} connection(s) refused during the cut"
        )
        assert len(aiokafka_lines) < 60, "\n".join(aiokafka_lines)
    finally:
        project.kill_all()
        await proxy.stop()
        await asyncio.to_thread(broker.stop)


# -- rebalance under load -------------------------------------------------------


async def test_rebalance_under_load_join_leave_and_sigkill(
    project_factory: Callable[..., Project],
) -> None:
    """8 partitions, a table with a standby, workers joining, leaving, killed.

    Events flow the whole time. Nothing is lost; no partition is processed
    by two workers at once (few owner changes per partition, and duplicates
    only where the at-least-once rules allow: the killed worker's events
    past its last commit, and at most the event in hand per partition at a
    clean handover); the table follows its partitions (every key's final
    count is at least its number of events, and over-counts only by
    duplicates).
    """
    partitions = 8
    project = project_factory("rebal", partitions)
    n_events, keys = 3000, 40
    await project.declare_topics()
    await project.produce(project.relay, ((n % partitions, n) for n in range(n_events)))
    await project.produce_keyed(
        project.tallies,
        ((n % partitions, f"k{n % keys}", 1) for n in range(n_events)),
    )

    def relayed() -> list[list[str]]:
        return [
            line for w in project.processes for line in project.lines("relayed", w.pid)
        ]

    async def progress(more: int, what: str) -> None:
        target = len(relayed()) + more
        await wait_for(
            lambda: len(relayed()) >= min(target, n_events),
            timeout=90,
            what=what,
            project=project,
        )

    delay = 0.006
    w1 = project.start_worker(delay=delay)
    w2 = project.start_worker(delay=delay)
    await project.wait_split(w1, w2)
    await progress(300, "two workers to be busy")
    w3 = project.start_worker(delay=delay)  # joins
    await project.wait_split(w1, w2, w3)
    await progress(300, "three workers to be busy")
    assert project.stop(w1) == 0  # leaves cleanly
    await project.wait_split(w2, w3)
    await progress(300, "two workers to go on")
    w2.send_signal(signal.SIGKILL)  # dies
    w2.wait()
    w4 = project.start_worker(delay=delay)  # a replacement joins
    await project.wait_split(w3, w4)

    def done() -> bool:
        seen = {(line[1], line[2]) for line in relayed()}
        tallied = {
            (line[1], line[2])
            for w in project.processes
            for line in project.lines("tally", w.pid)
        }
        return len(seen) == n_events and len(tallied) == n_events

    await wait_for(done, timeout=120, what="every event", project=project)
    assert project.stop(w3) == 0
    assert project.stop(w4) == 0

    # No partition processed by two workers at once: per partition, the
    # processing records in time order change hands only at rebalances.
    by_partition: dict[str, list[tuple[float, str]]] = {}
    for pid, p, _o, _n, at in relayed():
        by_partition.setdefault(p, []).append((float(at), pid))
    for p, records in by_partition.items():
        records.sort()
        runs = 1 + sum(1 for a, b in itertools.pairwise(records) if a[1] != b[1])
        assert runs <= 7, f"partition {p} changed hands {runs - 1} times"
    # Duplicates: the killed worker's, and at most one per partition and
    # clean handover (the event in hand at a revocation).
    owners: dict[tuple[str, str], list[str]] = {}
    for pid, p, o, _n, _at in relayed():
        owners.setdefault((p, o), []).append(pid)
    dups = {k: v for k, v in owners.items() if len(v) > 1}
    clean = [k for k, v in dups.items() if str(w2.pid) not in v]
    assert len(clean) <= partitions * 4, clean
    # The table followed its partitions: its state (the changelog's last
    # value per key, whoever wrote it) counts every event of each key.
    last: dict[str, int] = {}
    for record in await project.read_topic(project.changelog):
        last[json.loads(record.key)] = json.loads(record.value)
    tally_seen = Counter(
        (line[1], line[2])
        for w in project.processes
        for line in project.lines("tally", w.pid)
    )
    tally_dups = sum(c - 1 for c in tally_seen.values())
    expected = n_events // keys
    short = {k: c for k, c in last.items() if c < expected}
    assert len(last) == keys and not short, short
    overcount = sum(c - expected for c in last.values())
    assert overcount <= tally_dups
    print(
        f"\nrebalance: {len(dups)} duplicate(s) in the sink agent "
        f"({len(clean)} at clean handovers), table over-count {overcount} "
        f"(bound {tally_dups})"
    )
