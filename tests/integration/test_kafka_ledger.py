"""Tables read and written across partitions, in worker processes on the broker.

``ledger_app/`` is a project as a user would write it: payments keyed by
payment id update ``balances[account]`` (and a windowed and a global table),
and after each payment the agent sums the balances of every account. One
worker holds every partition. The sums must be exact (a read finds a key in
whichever partition holds it), every key must be held once (a write from
another partition moves the key), and a restarted worker must recover one
entry per key. On both stores.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest

from django_faust.testing.broker import TestBroker
from tests.integration.workers import PARTITIONS, Project, wait_for

pytestmark = [
    pytest.mark.broker,
    pytest.mark.slow,
    pytest.mark.parametrize("store", ["memory://", "rocksdb://"]),
]

LEDGER = Path(__file__).resolve().parent / "ledger_app"
ACCOUNTS = ["alice", "bob", "carol", "dave"]


class Ledger(Project):
    """The ledger project: one topic and the ``balances`` changelog."""

    directory = LEDGER

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.payments = f"payments{self.suffix}"
        self.changelog = f"{self.app_id}-balances-changelog"

    @property
    def topics(self) -> list[str]:
        return [
            self.payments,
            self.changelog,
            f"{self.app_id}-daily-changelog",
            self.global_changelog,
        ]

    @property
    def global_changelog(self) -> str:
        return f"{self.app_id}-payments-seen-changelog"

    def all_partitions(self) -> set[str]:
        """What the group assigns: a global table's changelog is read apart."""
        return {
            f"{t}:{p}"
            for t in self.topics
            if t != self.global_changelog
            for p in range(PARTITIONS)
        }


class Line(NamedTuple):
    pid: int
    partition: int
    offset: int
    account: str
    balance: int
    total: int
    entries: int
    keys: int
    daily_total: int
    daily_entries: int
    daily_keys: int
    seen: int
    seen_entries: int
    seen_keys: int


def lines(project: Project) -> list[Line]:
    return [
        Line(int(pid), int(p), int(o), account, *map(int, rest))
        for process in project.processes
        for pid, p, o, account, *rest in project.lines("ledger", process.pid)
    ]


async def pay(project: Ledger, payments: list[tuple[int, str, int]]) -> None:
    """``(partition, account, amount)``: sent with a payment id as key."""
    start = len(lines(project))
    await project.produce_keyed(
        project.payments,
        (
            (partition, f"pay-{start + i}", {"account": account, "amount": amount})
            for i, (partition, account, amount) in enumerate(payments)
        ),
    )


async def test_sums_over_other_partitions_and_a_restart(
    store: str, kafka_broker: TestBroker, tmp_path: Path
) -> None:
    project = Ledger(kafka_broker, tmp_path, "tledger")
    env = {"WORKER_STORE": store, "WORKER_DATADIR": str(tmp_path / "data")}
    await project.declare_topics()
    # Each account is paid from every partition: not co-partitioned.
    rounds = [
        (partition, account, 10**a)
        for partition in range(4)
        for a, account in enumerate(ACCOUNTS)
    ]
    try:
        first = project.start_worker(env=env)
        await wait_for(
            lambda: project.last_assignment(first.pid) == project.all_partitions(),
            timeout=40,
            what="the worker to hold every partition",
            project=project,
        )
        # One partition at a time, so that the running sums are known.
        for partition in range(4):
            await pay(project, [r for r in rounds if r[0] == partition])
            await wait_for(
                lambda n=4 * (partition + 1): len(lines(project)) >= n,
                timeout=30,
                what="the payments to be processed",
                project=project,
            )
        assert project.stop(first) == 0, project.output(first)
        before = lines(project)
        output = project.output(first, tail=0)

        second = project.start_worker(env=env)
        await wait_for(
            lambda: project.last_assignment(second.pid) == project.all_partitions(),
            timeout=40,
            what="the restarted worker to hold every partition",
            project=project,
        )
        await pay(project, [(p, account, 1) for p, account in enumerate(ACCOUNTS)])
        await wait_for(
            lambda: len(lines(project)) >= len(before) + 4,
            timeout=30,
            what="the payments after the restart",
            project=project,
        )
        project.stop_all()
    finally:
        project.kill_all()

    # The totals before the restart: every balance read, wherever it lived.
    totals = [line.total for line in before]
    per_round = sum(10**a for a in range(4))
    assert sorted(totals) == totals
    assert totals[-1] == 4 * per_round
    assert [t for t in totals if t % per_round == 0] == [
        per_round * n for n in range(1, 5)
    ]
    # Never a key twice, not even for a moment; the same for the windowed
    # table (one window per account: a day) and the global table.
    for line in lines(project):
        assert line.entries == line.keys
        assert line.daily_entries == line.daily_keys
        assert line.seen_entries == line.seen_keys
    assert max(line.entries for line in before) == 4
    # (A day may have begun during the test: then an account has two.)
    assert before[-1].daily_total == before[-1].total
    assert before[-1].daily_entries in (4, 5, 6, 7, 8)
    assert [line.seen for line in before] == list(range(1, 17))
    # The restarted worker went on from the recovered balances.
    after = lines(project)[len(before) :]
    assert {line.account: line.balance for line in after} == {
        account: 4 * 10**a + 1 for a, account in enumerate(ACCOUNTS)
    }
    assert after[-1].total == 4 * per_round + 4
    # The global table was recovered before the first event after the restart.
    assert [line.seen for line in after] == list(range(17, 21))
    # The warning names the table, a key, the partitions and the fix, once
    # per table.
    warnings = [line for line in output.splitlines() if "moves to partition" in line]
    tables = [line.split("Table ", 1)[1].split(":", 1)[0] for line in warnings]
    assert sorted(tables) == ["'balances'", "'daily'", "'payments-seen'"]
    assert all("group_by" in line for line in warnings)
    # The restart found no key twice in the changelog.
    assert "was in partitions" not in project.output(second, tail=0)
