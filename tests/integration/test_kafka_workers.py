"""Real worker processes (``manage.py faust worker``) against the test broker.

The workers run the tiny project in ``worker_app/`` (see ``workers.py``); its
agents append one line per processed event to files in a temporary directory,
which is how these tests see what was processed, even by a worker killed with
SIGKILL.
Every test uses its own app id (consumer group) and topic names.

Run with ``-s`` to see the replay count of the SIGKILL test.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import pytest

from django_faust.testing import make_app
from tests.integration.workers import PARTITIONS, Project, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.slow]


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
        await project.wait_split(*workers)
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
        await project.wait_split(*workers)
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


async def test_manage_py_send_reaches_a_worker_through_kafka(
    project_factory: Callable[[str], Project],
) -> None:
    """``faust send`` is a short-lived producer: it returns once Kafka has
    stored the messages, and a worker in another process processes them."""
    project = project_factory("send")
    await project.declare_topics()
    try:
        worker = project.start_worker()
        await wait_for(
            lambda: project.last_assignment(worker.pid) == project.all_partitions(),
            timeout=40,
            what="the worker to be assigned every partition",
            project=project,
        )
        to_agent = project.faust(
            "send", "@counted", "7", "--key", "k1", "--repeat", "3"
        )
        assert to_agent.returncode == 0, to_agent.stderr
        to_topic = project.faust("send", project.events, "5", "--partition", "2")
        assert to_topic.returncode == 0, to_topic.stderr
        stored = [
            json.loads(line)
            for line in (to_agent.stdout + to_topic.stdout).splitlines()
        ]
        assert {md["topic"] for md in stored} == {project.events}
        # One key, one partition; offsets grow.
        keyed = stored[:3]
        assert len({md["partition"] for md in keyed}) == 1
        assert [md["offset"] for md in keyed] == sorted({md["offset"] for md in keyed})
        assert stored[3]["partition"] == 2

        def processed() -> list[tuple[int, int, int]]:
            return [
                (int(p), int(o), int(n))
                for p, o, n in project.lines("processed", worker.pid)
            ]

        await wait_for(
            lambda: len(processed()) >= 4,
            timeout=30,
            what="the worker to process what `faust send` sent",
            project=project,
        )
        expected = {(md["partition"], md["offset"]) for md in stored}
        assert {(p, o) for p, o, _ in processed()} == expected
        assert sorted(n for _, _, n in processed()) == [5, 7, 7, 7]
        project.stop_all()
    finally:
        project.kill_all()


async def test_on_leader_timer_runs_on_one_worker_and_moves_when_it_stops(
    project_factory: Callable[[str], Project],
) -> None:
    """``@app.timer(on_leader=True)`` ticks on exactly one of two workers; when
    that worker stops, the other becomes the leader and ticks instead."""
    project = project_factory("leader")
    await project.declare_topics()
    try:
        workers = [project.start_worker(), project.start_worker()]
        await project.wait_split(*workers)

        def ticks(worker: subprocess.Popen[bytes], since: float) -> int:
            return sum(
                1 for (at,) in project.lines("tick", worker.pid) if float(at) >= since
            )

        since = time.time()
        await asyncio.sleep(2.0)
        counts = [ticks(w, since) for w in workers]
        assert sorted(counts)[0] == 0 and sorted(counts)[1] >= 5, counts
        leader, other = workers if counts[0] else workers[::-1]

        assert project.stop(leader) == 0, project.output(leader)
        stopped = time.time()
        await wait_for(
            lambda: ticks(other, stopped) >= 5,
            timeout=30,
            what="the remaining worker to become the leader and tick",
            project=project,
        )
        project.stop_all()
    finally:
        project.kill_all()
