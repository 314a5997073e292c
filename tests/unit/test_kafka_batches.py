"""Fetched record batches decoded into columns (`django_faust.transport.kafka.batches`).

The decoding must read exactly what aiokafka's consumer would hand out:
each test builds a fetch response's record set with aiokafka's batch
builder and compares our columns with what aiokafka's own
``PartitionRecords`` yields for the same bytes (offsets, keys, values,
headers, and the position after them).
"""

from __future__ import annotations

import inspect
import struct
from typing import Any

import aiokafka
import pytest
from aiokafka import codec
from aiokafka.consumer import fetcher
from aiokafka.errors import CorruptRecordException
from aiokafka.record.default_records import (
    DefaultRecordBatch,
    DefaultRecordBatchBuilder,
)
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.record.util import calc_crc32c
from aiokafka.structs import TopicPartition

from django_faust.transport.base import RecordColumns
from django_faust.transport.kafka import batches

TP0 = TopicPartition("t-changelog", 0)
READ_UNCOMMITTED, READ_COMMITTED = 0, 1
#: The control bit of a v2 batch's attributes (Kafka's record batch format).
CONTROL = 0x20
CODECS = {
    "none": (0, lambda: True),
    "gzip": (DefaultRecordBatch.CODEC_GZIP, codec.has_gzip),
    "snappy": (DefaultRecordBatch.CODEC_SNAPPY, codec.has_snappy),
    "lz4": (DefaultRecordBatch.CODEC_LZ4, codec.has_lz4),
    "zstd": (DefaultRecordBatch.CODEC_ZSTD, codec.has_zstd),
}


def batch(
    records: list[tuple[int, bytes | None, bytes | None]],
    *,
    compression: int = 0,
    producer_id: int = -1,
    transactional: bool = False,
    headers: list[tuple[str, bytes]] | None = None,
) -> bytes:
    """One v2 batch of ``(offset, key, value)`` (offsets may have gaps).

    Its base offset is the first record's, as the broker sets it.
    """
    builder = DefaultRecordBatchBuilder(
        2, compression, int(transactional), producer_id, 0 if producer_id >= 0 else -1,
        -1, 1 << 20,
    )  # fmt: skip
    base = records[0][0]
    for offset, key, value in records:
        builder.append(
            offset - base, 1_700_000_000_000, key, value, list(headers or [])
        )
    raw = builder.build()
    struct.pack_into(">q", raw, 0, base)  # outside the CRC, like the broker's
    return bytes(raw)


def control_batch(offset: int, producer_id: int, *, commit: bool) -> bytes:
    """A transaction marker (commit or abort) of ``producer_id`` at ``offset``."""
    key = struct.pack(">HH", 0, 1 if commit else 0)
    raw = bytearray(
        batch([(offset, key, struct.pack(">HI", 0, 0))], producer_id=producer_id,
              transactional=True)
    )  # fmt: skip
    (attributes,) = struct.unpack_from(">h", raw, 21)
    struct.pack_into(">h", raw, 21, attributes | CONTROL)
    struct.pack_into(">I", raw, 17, calc_crc32c(bytes(raw[21:])))
    return bytes(raw)


def partition_records(
    blob: bytes, fetch_offset: int, aborted: Any = None, isolation: int = 0
) -> Any:
    return fetcher.PartitionRecords(
        TP0, MemoryRecords(blob), aborted, fetch_offset, None, None, True, isolation
    )


def decoded(blob: bytes, fetch_offset: int, aborted: Any = None, isolation: int = 0):
    """Ours: columns and position, and aiokafka's: records and position."""
    part = partition_records(blob, fetch_offset, aborted, isolation)
    fetched = batches.Fetched(part)
    position = part.next_fetch_offset
    columns = fetched.decode()
    ours = list(
        zip(
            columns.offsets,
            columns.keys,
            columns.values,
            columns.headers or [None] * len(columns),
            strict=True,
        )
    )
    reference = partition_records(blob, fetch_offset, aborted, isolation)
    theirs = [(r.offset, r.key, r.value, tuple(r.headers) or None) for r in reference]
    return (ours, position, columns), (theirs, reference.next_fetch_offset)


def test_plain_batches_read_like_aiokafka() -> None:
    blob = batch([(i, b"k%d" % i, b"%d" % i) for i in range(5)]) + batch(
        [(i, b"k%d" % i, None if i == 7 else b"v") for i in range(5, 9)]
    )
    (ours, position, columns), (theirs, their_position) = decoded(blob, 0)
    assert ours == theirs
    assert len(ours) == 9 and ours[7][2] is None  # a tombstone stays None
    assert position == their_position == 9
    assert columns.headers is None


@pytest.mark.parametrize("name", sorted(CODECS))
def test_compressed_batches(name: str) -> None:
    compression, available = CODECS[name]
    if not available():
        pytest.skip(f"aiokafka has no {name} codec here (pip install cramjam)")
    records = [(i, b"key-%d" % i, b"value-%d" % i * 10) for i in range(300)]
    blob = batch(records[:100], compression=compression) + batch(
        records[100:], compression=compression
    )
    (ours, position, _), (theirs, their_position) = decoded(blob, 0)
    assert ours == theirs and len(ours) == 300
    assert position == their_position == 300


def test_records_below_the_fetch_offset_are_skipped() -> None:
    blob = batch([(i, b"k%d" % i, b"v") for i in range(10)]) + batch(
        [(i, b"k%d" % i, b"v") for i in range(10, 15)]
    )
    (ours, position, _), (theirs, _) = decoded(blob, 6)
    assert ours == theirs
    assert [o for o, *_ in ours] == [6, 7, 8, 9, 10, 11, 12, 13, 14]
    assert position == 15


def test_compaction_gaps_and_a_compacted_tail() -> None:
    # Offsets 0, 3, 4, 9 are left of the first batch; its last offset delta
    # still says 11 (the builder makes it the last record's: 11).
    first = batch([(0, b"a", b"1"), (3, b"b", b"2"), (4, b"c", None), (11, b"d", b"4")])
    second = batch([(20, b"e", b"5"), (25, b"f", b"6")])
    (ours, position, _), (theirs, their_position) = decoded(first + second, 0)
    assert ours == theirs
    assert [o for o, *_ in ours] == [0, 3, 4, 11, 20, 25]
    assert position == their_position == 26


def test_headers_are_kept_per_record() -> None:
    headers = [("django-faust-source", b"0:5:clicks")]
    blob = batch([(0, b"a", b"1")]) + batch([(1, b"b", b"2")], headers=headers)
    (ours, _, columns), (theirs, _) = decoded(blob, 0)
    assert ours == theirs
    assert columns.headers == [None, tuple(headers)]


def test_read_committed_skips_aborted_transactions_and_markers() -> None:
    blob = (
        batch([(0, b"a", b"plain")])
        + batch([(1, b"b", b"aborted"), (2, b"c", b"aborted")], producer_id=7,
                transactional=True)
        + batch([(3, b"d", b"committed")], producer_id=8, transactional=True)
        + control_batch(4, 7, commit=False)
        + control_batch(5, 8, commit=True)
        # After its abort marker, producer 7's records count again.
        + batch([(6, b"e", b"later")], producer_id=7, transactional=True)
        + control_batch(7, 7, commit=True)
    )  # fmt: skip
    aborted = [(7, 1)]
    (ours, position, _), (theirs, their_position) = decoded(
        blob, 0, aborted, READ_COMMITTED
    )
    assert ours == theirs
    assert [v for _, _, v, _ in ours] == [b"plain", b"committed", b"later"]
    assert position == their_position == 8


def test_read_uncommitted_keeps_aborted_records_but_never_markers() -> None:
    blob = (
        batch([(0, b"b", b"aborted")], producer_id=7, transactional=True)
        + control_batch(1, 7, commit=False)
        + batch([(2, b"c", b"after")])
    )
    (ours, position, _), (theirs, _) = decoded(blob, 0, [(7, 0)], READ_UNCOMMITTED)
    assert ours == theirs
    assert [v for _, _, v, _ in ours] == [b"aborted", b"after"]
    assert position == 3


def test_a_response_of_markers_only_moves_the_position() -> None:
    blob = control_batch(10, 3, commit=True) + control_batch(11, 4, commit=False)
    (ours, position, columns), (theirs, their_position) = decoded(
        blob, 10, [(4, 11)], READ_COMMITTED
    )
    assert ours == theirs == []
    assert len(columns) == 0
    assert position == their_position == 12


def test_a_corrupt_batch_raises() -> None:
    raw = bytearray(batch([(0, b"a", b"1")]))
    raw[-1] ^= 0xFF
    part = partition_records(bytes(raw), 0)
    with pytest.raises(CorruptRecordException):
        batches.Fetched(part).decode()


def test_columns_from_messages_and_select() -> None:
    class M:
        def __init__(self, offset: int, key: bytes, headers: Any = None) -> None:
            self.offset, self.key, self.value = offset, key, b"v"
            self.headers = headers or []

    messages = [M(0, b"a"), M(2, b"b", [("h", b"1")]), M(5, b"c")]
    columns = RecordColumns.from_messages(messages)
    assert columns.offsets == [0, 2, 5] and columns.keys == [b"a", b"b", b"c"]
    assert columns.headers == [None, [("h", b"1")], None]
    picked = columns.select([0, 2])
    assert picked.offsets == [0, 5] and picked.messages == [messages[0], messages[2]]
    assert picked.headers == [None, None]
    assert RecordColumns.from_messages([M(0, b"a")]).headers is None


def test_the_aiokafka_internals_batches_relies_on_are_there() -> None:
    """What `.batches` uses of aiokafka 0.14's fetcher (see its module doc)."""
    for name in ("_notify", "_create_fetch_waiter"):
        assert callable(getattr(fetcher.Fetcher, name)), name
    init = inspect.getsource(fetcher.Fetcher.__init__)
    assert "self._records = " in init and "self._wait_consume_future" in init
    for name in ("check_assignment", "_update_position"):
        assert callable(getattr(fetcher.FetchResult, name)), name
    assert callable(fetcher.FetchError.check_raise)
    for name in ("_consume_aborted_up_to", "_contains_abort_marker"):
        assert callable(getattr(fetcher.PartitionRecords, name)), name
    part = partition_records(batch([(0, b"a", b"1")]), 0)
    for name in ("_records", "_check_crcs", "_isolation_level", "_aborted_producers"):
        assert hasattr(part, name), name
    assert "self._fetcher = Fetcher(" in inspect.getsource(aiokafka.AIOKafkaConsumer)
