"""Batches of messages, and the events handed to user code.

The engine moves messages in *batches* (everything one fetch returned for one
topic-partition). Acknowledgement is counted on the batch: one counter per
message, set to the number of subscribers, dropped by each finished event.
The batch keeps the index of its first unfinished message, which is what
lets the consumer commit exactly up to the oldest event still in flight. No
future, task or lock is created per event.

`Event` objects are built lazily, only when user code asks for one
(``stream.events()``, ``current_event()``), so a plain ``async for value in
stream`` never pays for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

from .types import TP, MessageT

if TYPE_CHECKING:
    from .channels import Channel

__all__ = ["Batch", "Event"]


class Batch:
    """Messages of one topic-partition, delivered together to subscribers.

    ``pending[i]`` counts the subscribers that have not yet finished message
    ``i``; ``low`` is the index of the first message some subscriber still
    holds, so everything before it may be committed even while later
    messages of the batch are in flight. ``on_done`` is called once, when
    every message is finished: the consumer's ack tracker uses it to move on
    to the next batch. ``revoked`` is set when the partition is taken away,
    so no further message of it reaches an agent.
    """

    __slots__ = (
        "done",
        "low",
        "messages",
        "next_offset",
        "on_done",
        "pending",
        "refs",
        "revoked",
        "tp",
    )

    def __init__(
        self,
        tp: TP | None,
        messages: Sequence[MessageT],
        on_done: Callable[[Batch], None] | None = None,
    ) -> None:
        self.tp = tp
        self.messages = messages
        self.pending: list[int] | None = None
        self.low = 0
        self.refs = 0
        self.on_done = on_done
        self.revoked = False
        self.done = False
        self.next_offset = messages[-1].offset + 1 if messages else 0

    def retain(self, subscribers: int) -> None:
        """Expect every message to be finished by ``subscribers`` readers."""
        self.pending = [subscribers] * len(self.messages)
        self.refs = subscribers * len(self.messages)
        if not self.refs:
            self._finish()

    def release(self, index: int) -> None:
        """One subscriber finished message ``index``."""
        pending = self.pending
        if pending is None:
            return
        left = pending[index] - 1
        pending[index] = left
        if left == 0 and index == self.low:
            low = index + 1
            end = len(pending)
            while low < end and pending[low] == 0:
                low += 1
            self.low = low
        self.refs -= 1
        if self.refs == 0:
            self._finish()

    def _finish(self) -> None:
        if not self.done:
            self.done = True
            if self.on_done is not None:
                self.on_done(self)

    def next_unacked_offset(self) -> int:
        """The offset to commit for this batch as it stands."""
        if self.low >= len(self.messages):
            return self.next_offset
        return self.messages[self.low].offset

    def __len__(self) -> int:
        return len(self.messages)

    def __repr__(self) -> str:
        return f"<Batch {self.tp} n={len(self.messages)} refs={self.refs}>"


class Event:
    """One message as seen by user code: decoded key and value, and an ack.

    Acking is idempotent: the first ``ack()`` releases the message, later ones
    do nothing.
    """

    __slots__ = ("acked", "batch", "channel", "index", "key", "message", "value")

    def __init__(
        self,
        channel: Channel,
        key: Any,
        value: Any,
        message: MessageT,
        batch: Batch | None,
        index: int = 0,
    ) -> None:
        self.channel = channel
        self.key = key
        self.value = value
        self.message = message
        self.batch = batch
        self.index = index
        self.acked = False

    @property
    def headers(self) -> Any:
        return self.message.headers

    @property
    def timestamp(self) -> float:
        """When the message was produced, in seconds since the epoch."""
        return self.message.timestamp / 1000.0

    @property
    def app(self) -> Any:
        return self.channel.app

    def ack(self) -> bool:
        """Acknowledge the event; returns True the first time only."""
        if self.acked:
            return False
        self.acked = True
        if self.batch is not None:
            self.batch.release(self.index)
        return True

    async def send(
        self,
        channel: Any,
        key: Any = ...,
        value: Any = ...,
        partition: int | None = None,
        headers: Any = ...,
        **kwargs: Any,
    ) -> Any:
        """Send this event (or a changed copy) to another channel or topic.

        ``...`` means "keep what this event had".
        """
        return await self.app.send(
            channel,
            key=self.key if key is ... else key,
            value=self.value if value is ... else value,
            partition=partition,
            headers=self.headers if headers is ... else headers,
            **kwargs,
        )

    async def forward(self, channel: Any, **kwargs: Any) -> Any:
        """Send the original bytes of this event to another channel."""
        return await self.send(channel, **kwargs)

    def __repr__(self) -> str:
        m = self.message
        return (
            f"<Event {m.topic}[{m.partition}]@{m.offset} "
            f"key={self.key!r} value={self.value!r}>"
        )
