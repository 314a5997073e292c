"""Small value types shared by the whole engine.

These are deliberately plain: they are created per message or per batch on the
hot path, so they use ``__slots__`` or ``NamedTuple`` and carry no behaviour
beyond what a reader of the code needs.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, Sequence


class TP(NamedTuple):
    """A topic-partition: the unit of ordering, assignment and commits."""

    topic: str
    partition: int


class RecordMetadata(NamedTuple):
    """Where the broker stored a message we sent (timestamp in ms, as Kafka)."""

    topic: str
    partition: int
    offset: int
    timestamp: float | None = None


Headers = Sequence[tuple[str, bytes]]


class MessageT(Protocol):
    """What a transport hands to the engine for one consumed record.

    aiokafka's ``ConsumerRecord`` already has this shape, so the Kafka driver
    passes its records through untouched; the memory transport uses `Message`.
    """

    topic: str
    partition: int
    offset: int
    timestamp: Any
    key: Any
    value: Any
    headers: Any


class Message:
    """One record as stored by the memory transport or created locally.

    ``timestamp`` is in milliseconds since the epoch, as on Kafka records.

    ``key`` and ``value`` are bytes when the message came through a topic, and
    plain Python objects when it was put on an in-memory channel.
    """

    __slots__ = ("headers", "key", "offset", "partition", "timestamp", "topic", "value")

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        timestamp: int | None,
        key: Any,
        value: Any,
        headers: Headers | None = None,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value
        self.headers = headers or ()

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)

    def __repr__(self) -> str:
        return (
            f"<Message {self.topic}[{self.partition}]@{self.offset} "
            f"key={self.key!r} value={self.value!r}>"
        )
