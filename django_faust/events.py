"""Batches of messages, and the events handed to user code.

The engine moves messages in *batches* (everything one fetch returned for one
topic-partition). Acknowledgement is counted on the batch: it starts with one
reference per (message, subscriber) and each finished event drops one. When a
batch reaches zero its tracker learns the whole batch is done, which is what
lets the consumer commit. No future, task or lock is created per event.

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

    ``refs`` counts outstanding (message, subscriber) pairs. ``on_done`` is
    called once, when the count drops to zero: the consumer's ack tracker uses
    it to advance the committable offset. ``revoked`` is set when the
    partition is taken away, so no further message of it reaches an agent.
    """

    __slots__ = ("done", "messages", "next_offset", "on_done", "refs", "revoked", "tp")

    def __init__(
        self,
        tp: TP | None,
        messages: Sequence[MessageT],
        on_done: Callable[[Batch], None] | None = None,
    ) -> None:
        self.tp = tp
        self.messages = messages
        self.refs = 0
        self.on_done = on_done
        self.revoked = False
        self.done = False
        self.next_offset = messages[-1].offset + 1 if messages else 0

    def retain(self, n: int) -> None:
        """Add ``n`` outstanding references (done when subscribing)."""
        self.refs += n

    def release(self, n: int = 1) -> None:
        """Mark ``n`` (message, subscriber) pairs finished."""
        refs = self.refs - n
        self.refs = refs
        if refs <= 0 and not self.done:
            self.done = True
            if self.on_done is not None:
                self.on_done(self)

    def __len__(self) -> int:
        return len(self.messages)

    def __repr__(self) -> str:
        return f"<Batch {self.tp} n={len(self.messages)} refs={self.refs}>"


class Event:
    """One message as seen by user code: decoded key and value, and an ack.

    Acking is idempotent: the first ``ack()`` releases the message, later ones
    do nothing.
    """

    __slots__ = ("acked", "batch", "channel", "key", "message", "value")

    def __init__(
        self,
        channel: Channel,
        key: Any,
        value: Any,
        message: MessageT,
        batch: Batch | None,
    ) -> None:
        self.channel = channel
        self.key = key
        self.value = value
        self.message = message
        self.batch = batch
        self.acked = False

    @property
    def headers(self) -> Any:
        return self.message.headers

    @property
    def app(self) -> Any:
        return self.channel.app

    def ack(self) -> bool:
        """Acknowledge the event; returns True the first time only."""
        if self.acked:
            return False
        self.acked = True
        if self.batch is not None:
            self.batch.release()
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
