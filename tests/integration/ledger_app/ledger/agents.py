"""A ledger, as a user would write it from the Faust docs.

Payments arrive keyed by payment id, not by account: the stream is not
partitioned like the tables, so an account is paid from several partitions,
all held by the one worker. Three tables: ``balances`` (plain), ``daily``
(windowed, by ``window=``) and ``payments-seen`` (global). After each
payment the agent reads every account (most live in other partitions) and
appends one line to ``ledger-<pid>.log``::

    <pid> <partition> <offset> <account> <balance> <total> <entries> <keys>
    <daily total> <daily entries> <daily keys> <seen> <seen entries> <seen keys>

``total`` sums all balances, ``entries`` counts the pairs ``items()`` gives
and ``keys`` the distinct keys among them (equal when no key is held twice).
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings

from django_faust import Record, app
from django_faust.windows import TumblingWindow

ACCOUNTS = ["alice", "bob", "carol", "dave"]


class Payment(Record):
    account: str
    amount: int


payments = app.topic(
    f"payments{settings.WORKER_TOPIC_SUFFIX}", key_type=str, value_type=Payment
)
balances = app.Table("balances", default=int, help="Balance per account.")
daily = app.Table("daily", default=int, window=TumblingWindow(86400))
seen = app.GlobalTable("payments-seen", default=int)


def counted(pairs: Any) -> tuple[int, int, int]:
    """Sum of the values, number of pairs, number of distinct keys."""
    pairs = list(pairs)
    return sum(v for _, v in pairs), len(pairs), len({k for k, _ in pairs})


@app.agent(payments)
async def pay(stream: Any) -> None:
    pid = os.getpid()
    path = os.path.join(settings.WORKER_OUTDIR, f"ledger-{pid}.log")
    with open(path, "a", encoding="utf-8") as log:
        async for event in stream.events():
            payment = event.value
            balances[payment.account] += payment.amount
            daily[payment.account] += payment.amount
            seen[payment.account] += 1
            total = sum(balances[account] for account in ACCOUNTS)
            _, entries, keys = counted(balances.items())
            windows = counted(daily.items())
            seen_total, seen_entries, seen_keys = counted(seen.items())
            assert seen_total == sum(seen[account] for account in ACCOUNTS)
            message = event.message
            log.write(
                f"{pid} {message.partition} {message.offset} {payment.account} "
                f"{balances[payment.account]} {total} {entries} {keys} "
                f"{' '.join(map(str, windows))} {seen_total} {seen_entries} "
                f"{seen_keys}\n"
            )
            log.flush()


@app.on_partitions_assigned.connect
async def record_assignment(sender: Any, assigned: Any, **kwargs: Any) -> None:
    """One line per rebalance in assigned-<pid>.log: the partitions we got."""
    path = os.path.join(settings.WORKER_OUTDIR, f"assigned-{os.getpid()}.log")
    with open(path, "a", encoding="utf-8") as log:
        log.write(" ".join(sorted(f"{tp.topic}:{tp.partition}" for tp in assigned)))
        log.write("\n")
