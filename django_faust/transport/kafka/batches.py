"""Fetched record batches decoded into columns, without a message per record.

Why: aiokafka's consumer turns every fetched record into a
``ConsumerRecord`` (a Python object built in Python code); for a changelog
recovery of millions of records that is most of the time the replay takes.
The records themselves come in record batches that aiokafka's C extension
decodes quickly (``DefaultRecordBatch``: key, value, offset, headers per
record). This module takes the fetch results the consumer's background
fetcher has buffered, decodes their batches into `RecordColumns` (lists of
offsets, keys, values and headers) and moves the consumer's position past
them, exactly as the consumer's own ``getmany`` would have.

Semantics kept from aiokafka's ``PartitionRecords._unpack_records`` (0.14),
whose helpers are reused where they decide anything: CRCs are checked
when the consumer checks them; under ``read_committed`` the batches of
aborted transactions (the fetch response's aborted producer ids, up to each
one's abort marker) are skipped; control batches (transaction markers) are
skipped always; records below the fetch offset (inside the first batch,
e.g. of a compressed legacy message set) are skipped; the position after a
batch is the batch's next offset, so compaction's gaps and a batch whose
last records were compacted away are passed. Compressed batches are
decompressed by the batch classes themselves (whatever codecs aiokafka
supports).

Like `.compat`, this touches aiokafka beyond its documented API, listed
here with what it relies on (checked against aiokafka 0.14.0;
``tests/unit/test_kafka_batches.py`` fails if any of it moved):

* ``AIOKafkaConsumer._fetcher``: the ``Fetcher``; its ``_records`` (an
  ordered dict: partition -> ``FetchResult`` or ``FetchError``),
  ``_notify(_wait_consume_future)`` (asks the background routine for the
  next fetch of a drained partition) and ``_create_fetch_waiter()`` (a
  future set when a fetch brings records);
* ``FetchResult``: ``check_assignment(tp)``, ``_partition_records``,
  ``_update_position()``; ``FetchError.check_raise()``;
* ``PartitionRecords``: ``_records`` (``MemoryRecords``),
  ``next_fetch_offset``, ``_check_crcs``, ``_isolation_level``,
  ``_consume_aborted_up_to(offset)``, ``_contains_abort_marker(batch)``
  and ``_aborted_producers``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiokafka.consumer.fetcher import FetchResult
from aiokafka.errors import CorruptRecordException
from aiokafka.record.default_records import DefaultRecordBatch

from ..base import RecordColumns

if TYPE_CHECKING:
    import aiokafka
    from aiokafka.structs import TopicPartition

__all__ = ["Fetched", "decode_batches", "drain", "wait_for_fetch"]

#: aiokafka's ``READ_COMMITTED`` isolation level, as its fetcher numbers it.
_READ_COMMITTED = 1


class Fetched:
    """One partition's buffered fetch result, taken from the fetcher.

    Its batches are listed (headers only) and the consumer's position is
    already past them, so that the fetcher can ask for the next records
    while these are decoded (`decode`).
    """

    __slots__ = ("_batches", "_part", "_start")

    def __init__(self, part: Any) -> None:
        self._part = part
        self._start = part.next_fetch_offset
        records = part._records
        batches = []
        while records.has_next():
            batches.append(records.next_batch())
        self._batches = batches
        if batches:
            # Every batch read, skipped or not, moves the position to its
            # next offset: after the last, it is the last one's.
            part.next_fetch_offset = batches[-1].next_offset

    def decode(self) -> RecordColumns:
        """The records, as columns (see the module doc for what is skipped)."""
        return decode_batches(self._part, self._batches, self._start)


def drain(consumer: aiokafka.AIOKafkaConsumer) -> dict[TopicPartition, Fetched]:
    """Every buffered fetch result of ``consumer``; positions moved past them.

    The fetcher is told that the partitions are consumed, so it sends their
    next fetch as soon as the event loop runs it. A partition whose
    buffered result is an error raises it, as the consumer's ``getmany``
    does: at once if nothing was drained before it, else at the next call
    (the results drained so far are returned first).
    """
    fetcher = consumer._fetcher
    buffered = fetcher._records
    drained: dict[TopicPartition, Fetched] = {}
    for tp in list(buffered):
        result = buffered[tp]
        if not isinstance(result, FetchResult):
            if drained:
                break
            del buffered[tp]
            fetcher._notify(fetcher._wait_consume_future)
            result.check_raise()
        if result.check_assignment(tp):
            drained[tp] = Fetched(result._partition_records)
            # No await since the check above: nothing moved the position.
            result._update_position()
        del buffered[tp]
        fetcher._notify(fetcher._wait_consume_future)
    return drained


async def wait_for_fetch(consumer: aiokafka.AIOKafkaConsumer, timeout: float) -> None:
    """Wait until a fetch buffers records, or ``timeout`` seconds pass."""
    fetcher = consumer._fetcher
    if fetcher._records:
        return
    waiter = fetcher._create_fetch_waiter()
    done, _ = await asyncio.wait([waiter], timeout=timeout)
    if waiter in done:
        waiter.result()  # authorization and other fatal fetch errors
    else:
        waiter.cancel()


def decode_batches(part: Any, batches: list[Any], start: int) -> RecordColumns:
    """The records of ``batches`` of aiokafka's ``PartitionRecords`` ``part``.

    ``start`` is the offset the fetch asked for: records below it are left
    out. ``part`` holds the aborted transactions of the fetch response.
    """
    offsets: list[int] = []
    keys: list[bytes | None] = []
    values: list[bytes | None] = []
    headers: list[Any] = []
    check_crcs = part._check_crcs
    read_committed = part._isolation_level == _READ_COMMITTED
    for batch in batches:
        if check_crcs and not batch.validate_crc():
            raise CorruptRecordException(f"Invalid CRC - {part._tp}")
        skip = batch.is_control_batch
        if read_committed and batch.producer_id is not None:
            part._consume_aborted_up_to(batch.base_offset)
            if skip and part._contains_abort_marker(batch):
                # Records of this producer after its abort marker count.
                part._aborted_producers.discard(batch.producer_id)
            if batch.is_transactional and batch.producer_id in part._aborted_producers:
                skip = True
        if not skip:
            _read_batch(batch, start, offsets, keys, values, headers)
        # A v2 batch keeps its last offset even when compaction removed its
        # last records: what follows starts after it.
        start = batch.next_offset
    return RecordColumns(offsets, keys, values, headers if any(headers) else None)


def _read_batch(
    batch: Any,
    start: int,
    offsets: list[int],
    keys: list[bytes | None],
    values: list[bytes | None],
    headers: list[Any],
) -> None:
    """Append ``batch``'s records at or after offset ``start`` to the columns."""
    # Headers are kept as tuples: the garbage collector stops tracking a
    # tuple of str and bytes pairs at its first pass, while a list kept per
    # record (what the batch hands out) would be scanned by every later
    # collection (measured: twice the decoding time of records with one
    # header each).
    add_offset, add_key = offsets.append, keys.append
    add_value, add_headers = values.append, headers.append
    if type(batch) is DefaultRecordBatch and batch.base_offset >= start:
        # Every record's offset is at least the batch's base offset: no
        # record to skip, so no comparison per record.
        for record in batch:
            add_offset(record.offset)
            add_key(record.key)
            add_value(record.value)
            pairs = record.headers
            add_headers(tuple(pairs) if pairs else None)
        return
    for record in batch:
        offset = record.offset
        if offset < start:
            continue
        add_offset(offset)
        add_key(record.key)
        add_value(record.value)
        pairs = record.headers
        add_headers(tuple(pairs) if pairs else None)
