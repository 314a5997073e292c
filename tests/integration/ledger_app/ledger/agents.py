"""A ledger, as a user would write it from the Faust docs.

Payments arrive keyed by payment id, not by account: the stream is not
partitioned like the ``balances`` table, so an account is paid from several
partitions, all held by the one worker. After each payment the agent reads
the balance of every account (most live in other partitions) and appends
``<pid> <partition> <offset> <account> <balance> <total> <entries> <keys>``
to ``ledger-<pid>.log``: ``total`` is the sum of all balances, ``entries``
the pairs ``balances.items()`` gives and ``keys`` how many distinct keys
they have (equal when no key is held twice).
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings

from django_faust import Record, app

ACCOUNTS = ["alice", "bob", "carol", "dave"]


class Payment(Record):
    account: str
    amount: int


payments = app.topic(
    f"payments{settings.WORKER_TOPIC_SUFFIX}", key_type=str, value_type=Payment
)
balances = app.Table("balances", default=int, help="Balance per account.")


@app.agent(payments)
async def pay(stream: Any) -> None:
    pid = os.getpid()
    path = os.path.join(settings.WORKER_OUTDIR, f"ledger-{pid}.log")
    with open(path, "a", encoding="utf-8") as log:
        async for event in stream.events():
            payment = event.value
            balances[payment.account] += payment.amount
            total = sum(balances[account] for account in ACCOUNTS)
            entries = list(balances.items())
            message = event.message
            log.write(
                f"{pid} {message.partition} {message.offset} {payment.account} "
                f"{balances[payment.account]} {total} {len(entries)} "
                f"{len({key for key, _ in entries})}\n"
            )
            log.flush()


@app.on_partitions_assigned.connect
async def record_assignment(sender: Any, assigned: Any, **kwargs: Any) -> None:
    """One line per rebalance in assigned-<pid>.log: the partitions we got."""
    path = os.path.join(settings.WORKER_OUTDIR, f"assigned-{os.getpid()}.log")
    with open(path, "a", encoding="utf-8") as log:
        log.write(" ".join(sorted(f"{tp.topic}:{tp.partition}" for tp in assigned)))
        log.write("\n")
