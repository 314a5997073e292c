"""The transactional producer of ``PROCESSING_GUARANTEE="exactly_once"``.

One aiokafka transactional producer per worker. A transaction is begun
before the first message handed to aiokafka after a commit, and committed
at the consumer's next commit point together with the consumed offsets
(``send_offsets_to_transaction``), instead of the consumer's own commit:
results, changelog records and offsets become visible to ``read_committed``
readers together, or, when the transaction aborts or the worker dies, never.

The transactional id is stable per worker (`App.transactional_id`): the
restarted worker's producer registers it again, which makes the broker abort
the dead worker's open transaction and fence its producer.

Fencing and zombies: aiokafka 0.14 sends ``TxnOffsetCommit`` with the group
id only (no generation or member id, KIP-447), so a worker that the group
expelled while it was still running (a long pause) can commit one more
transaction for partitions it lost, if its transactional id is not the one
their new owner uses. See "Exactly-once" in docs/guarantees.rst.

Client processes (Django's ``send_sync``) never use transactions: their
producer stays the plain one (`use_transactions` is only called by a worker).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiokafka.structs import TopicPartition

from ...types import TP
from .producer import AIOKafkaProducer

if TYPE_CHECKING:
    from .transport import AIOKafkaTransport

__all__ = ["TransactionalProducer"]

logger = logging.getLogger(__name__)


class TransactionalProducer(AIOKafkaProducer):
    """`AIOKafkaProducer` whose sends go in one open transaction at a time.

    Until `use_transactions` is called (before start) it is the plain
    producer. Sends and commits never interleave: handing the buffer to
    aiokafka and committing the transaction take the same lock, so every
    message is either in the transaction being committed or in the next.
    """

    def __init__(self, transport: AIOKafkaTransport) -> None:
        super().__init__(transport)
        self._transaction_lock = asyncio.Lock()
        self._in_transaction = False
        self.transactions_committed = 0
        self.transactions_aborted = 0

    def use_transactions(self, transactional_id: str) -> None:
        if self.started:
            raise RuntimeError("use_transactions() must be called before start.")
        self.transactional = True
        self.transactional_id = transactional_id

    def client_options(self) -> dict[str, Any]:
        options = super().client_options()
        if self.transactional_id is not None:
            # Transactions need the idempotent producer, which needs acks=all.
            options.update(
                transactional_id=self.transactional_id,
                enable_idempotence=True,
                acks="all",
            )
        return options

    async def _begin(self) -> None:
        if not self._in_transaction:
            await self._client().begin_transaction()
            self._in_transaction = True

    async def _drain(self) -> None:
        if self.transactional_id is None:
            await super()._drain()
            return
        async with self._transaction_lock:
            if self._has_pending():
                await self._begin()
            await super()._drain()

    async def commit_transaction(
        self, offsets: Mapping[TP, int], group_id: str
    ) -> None:
        """Send what is buffered, add ``offsets``, and commit, as one.

        Nothing to commit (no send, no offset since the last commit) is a
        no-op, so an idle worker makes no transactions.
        """
        if self.transactional_id is None:
            await super().commit_transaction(offsets, group_id)
            return
        client = self._client()
        async with self._transaction_lock:
            if self._has_pending():
                await self._begin()
                await super()._drain()
            await client.flush()
            self.check_delivered()
            if offsets:
                await self._begin()
                await client.send_offsets_to_transaction(
                    {
                        TopicPartition(tp.topic, tp.partition): offset
                        for tp, offset in offsets.items()
                    },
                    group_id,
                )
            if not self._in_transaction:
                return
            await client.commit_transaction()
            self._in_transaction = False
            self.transactions_committed += 1

    async def abort_transaction(self) -> None:
        """Abort the open transaction (its records stay invisible for good)."""
        if self.transactional_id is None:
            await super().abort_transaction()
            return
        async with self._transaction_lock:
            if not self._in_transaction:
                return
            self._in_transaction = False
            self.transactions_aborted += 1
            await self._client().abort_transaction()
