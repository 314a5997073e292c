"""Reading chosen partitions outside the consumer group (``kafka://``)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, cast

import aiokafka
from aiokafka.structs import TopicPartition

from ...types import TP, MessageT
from ..base import PartitionReader, RecordColumns
from . import batches
from .consumer import DEFAULT_MAX_POLL_RECORDS

if TYPE_CHECKING:
    from .transport import AIOKafkaTransport

__all__ = ["AIOKafkaPartitionReader"]

#: Event loop turns the fetcher takes from "partition consumed" to writing
#: the next fetch request (its routine wakes, starts a task, the task sends).
_TURNS_TO_SEND = 3


class AIOKafkaPartitionReader(PartitionReader):
    """Reads chosen partitions from chosen offsets with a group-less consumer.

    "Caught up" is decided with the fetch responses' high watermark, which
    is right on every broker (the test broker's ``end_offsets()`` is not).
    One exception, known before any fetch: a partition whose end offset is
    0 is empty on every broker (a wrong ``end_offsets()`` is still at least
    the last batch's base offset + 1), so a reader starting there is caught
    up at once rather than after a fetch that waits ``fetch_max_wait_ms``
    for records that are not there (most of a fresh worker's recovery).

    `getmany_columns` (recovery) decodes the fetched record batches into
    columns without a ``ConsumerRecord`` per record (see `.batches`).
    """

    def __init__(self, transport: AIOKafkaTransport, offsets: Mapping[TP, int]) -> None:
        super().__init__(transport, offsets)
        self._consumer: aiokafka.AIOKafkaConsumer | None = None
        self._positions = dict(self.offsets)
        #: Partitions found empty when the reader started (high watermark 0).
        self._empty: set[TP] = set()
        self._read_committed = transport.isolation_level == "read_committed"

    async def start(self) -> None:
        transport = cast("AIOKafkaTransport", self.transport)
        consumer = aiokafka.AIOKafkaConsumer(
            **transport.client_options(),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=DEFAULT_MAX_POLL_RECORDS,
            isolation_level=transport.isolation_level,
        )
        await consumer.start()
        tps = {
            TopicPartition(tp.topic, tp.partition): o for tp, o in self.offsets.items()
        }
        # Before assigning: once assigned, the fetcher's first fetch (which
        # waits up to fetch_max_wait_ms) holds the connection this asks on.
        starting = [ktp for ktp, offset in tps.items() if offset == 0]
        if starting:
            ends = await consumer.end_offsets(starting)
            self._empty = {
                TP(ktp.topic, ktp.partition) for ktp, end in ends.items() if end == 0
            }
        consumer.assign(list(tps))
        for tp, offset in tps.items():
            consumer.seek(tp, offset)
        self._consumer = consumer

    def _client(self) -> aiokafka.AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("The partition reader is not started.")
        return self._consumer

    async def getmany(self, timeout: float) -> list[MessageT]:
        client = self._client()
        records = await client.getmany(timeout_ms=int(timeout * 1000))
        out: list[MessageT] = []
        for ktp, messages in records.items():
            if messages:
                self._positions[TP(ktp.topic, ktp.partition)] = messages[-1].offset + 1
                out.extend(messages)
        if self._read_committed:
            # Transaction markers and aborted records take offsets too: the
            # position passes them (it may be past the last record returned).
            for tp in self._positions:
                ktp = TopicPartition(tp.topic, tp.partition)
                self._positions[tp] = max(
                    self._positions[tp], await client.position(ktp)
                )
        return out

    async def getmany_columns(self, timeout: float) -> dict[TP, RecordColumns]:
        client = self._client()
        drained = batches.drain(client)
        if not drained:
            await batches.wait_for_fetch(client, timeout)
            drained = batches.drain(client)
        out: dict[TP, RecordColumns] = {}
        positions = self._positions
        for ktp in drained:
            tp = TP(ktp.topic, ktp.partition)
            # Past transaction markers and aborted records too (the fetch
            # position), which may lie beyond the last record returned.
            positions[tp] = max(positions.get(tp, 0), await client.position(ktp))
        if drained:
            # Let the fetcher send the next fetch before the decoding (and
            # the caller's writing) keeps the loop busy: the broker then
            # works while we do (it takes the loop a few turns to send).
            for _ in range(_TURNS_TO_SEND):
                await asyncio.sleep(0)
        for ktp, fetched in drained.items():
            out[TP(ktp.topic, ktp.partition)] = fetched.decode()
        return out

    def highwater(self, tp: TP) -> int | None:
        ktp = TopicPartition(tp.topic, tp.partition)
        if self._read_committed:
            # Under read_committed, the end is the last stable offset: the
            # first offset of a transaction still open.
            fetched = self._client().last_stable_offset(ktp)
        else:
            fetched = self._client().highwater(ktp)
        if fetched is None and tp in self._empty:
            return 0
        return fetched  # type: ignore[no-any-return]

    def position(self, tp: TP) -> int:
        return self._positions[tp]

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()
