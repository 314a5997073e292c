"""In-memory channels, and the subscription queues every stream reads from.

A `Subscription` is a queue of `Batch` objects plus a shared cursor. All
streams reading one subscription (the actors of an agent with
``concurrency > 1``, or an actor restarted after a crash) take messages from
the same cursor, so a message is handed to exactly one of them and nothing is
skipped when an actor is replaced.

A `Channel` is a local, in-process conduit (`app.channel()`): values sent to
it are delivered as Python objects, without serialization. `Topic`
(``topics.py``) extends it with a transport behind it.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Iterable

from . import client
from .events import Batch
from .types import TP, Message, RecordMetadata

if TYPE_CHECKING:
    from .app.base import App
    from .streams import Stream

__all__ = ["Channel", "Subscription"]


class Subscription:
    """A bounded queue of batches with one cursor shared by its readers.

    ``maxsize`` bounds the number of *messages* waiting (not batches). A
    transport delivers with `put_nowait` and asks `full()` afterwards to
    decide whether to pause fetching; local senders ``await put()``, which
    waits for room. ``on_drained(sub, None)`` is called when a full queue
    falls below half of ``maxsize`` (the conductor resumes the partitions it
    paused for it; a subscription that queues per partition passes the
    partitions that drained instead of None).
    """

    def __init__(self, channel: Channel, maxsize: int) -> None:
        self.channel = channel
        self.maxsize = maxsize
        self.batch: Batch | None = None
        self.pos = 0
        self._queue: deque[Batch] = deque()
        self._size = 0
        self._getters: deque[asyncio.Future[None]] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()
        self.on_drained: Callable[[Subscription, Iterable[TP] | None], None] | None = (
            None
        )
        self._was_full = False

    @property
    def topic_names(self) -> frozenset[str]:
        return self.channel.topic_names

    def qsize(self) -> int:
        """Messages waiting, including the rest of the current batch."""
        rest = 0
        if self.batch is not None:
            rest = len(self.batch.messages) - self.pos
        return self._size + rest

    def full(self) -> bool:
        return self._size >= self.maxsize

    def has_ready(self) -> bool:
        """True when a message can be taken without waiting."""
        batch = self.batch
        if batch is not None and not batch.revoked and self.pos < len(batch.messages):
            return True
        return bool(self._queue)

    def put_nowait(self, batch: Batch) -> None:
        self._queue.append(batch)
        self._size += len(batch.messages)
        if self._size >= self.maxsize:
            self._was_full = True
        getters = self._getters
        while getters:
            fut = getters.popleft()
            if not fut.done():
                fut.set_result(None)
                break

    async def put(self, batch: Batch) -> None:
        """Put a batch, waiting while the queue is full."""
        while self.full():
            fut = asyncio.get_running_loop().create_future()
            self._putters.append(fut)
            await fut
        self.put_nowait(batch)

    async def next_batch(self) -> Batch:
        """Wait until a message is ready at the shared cursor; return its batch.

        The cursor (``batch``, ``pos``) is shared: when a reader moves it to
        a new batch, the other readers waiting here are woken too, so the
        actors of a concurrent agent work on one batch together.
        """
        while True:
            batch = self.batch
            if (
                batch is not None
                and not batch.revoked
                and self.pos < len(batch.messages)
            ):
                return batch
            queue = self._queue
            while queue:
                batch = queue.popleft()
                self._size -= len(batch.messages)
                self._after_take()
                if batch.revoked:
                    continue
                self.batch = batch
                self.pos = 0
                if len(batch.messages) > 1:
                    self._wake_all_getters()
                return batch
            fut = asyncio.get_running_loop().create_future()
            self._getters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                # Pass our wake-up on, so a sibling reader is not left waiting.
                if fut.done() and not fut.cancelled() and queue:
                    self._wake_one_getter()
                raise

    def _wake_all_getters(self) -> None:
        getters = self._getters
        while getters:
            fut = getters.popleft()
            if not fut.done():
                fut.set_result(None)

    def _wake_one_getter(self) -> None:
        while self._getters:
            fut = self._getters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def _after_take(self) -> None:
        putters = self._putters
        while putters and not self.full():
            fut = putters.popleft()
            if not fut.done():
                fut.set_result(None)
        if self._was_full and self._size < self.maxsize // 2 + 1:
            self._was_full = False
            if self.on_drained is not None:
                self.on_drained(self, None)

    def drop(self, tps: Iterable[TP]) -> int:
        """Forget queued batches of ``tps`` (revoked partitions).

        Returns how many messages were dropped. The batches are marked
        revoked, so the shared cursor skips the rest of a current one too.
        """
        wanted = set(tps)
        kept: deque[Batch] = deque()
        dropped = 0
        for batch in self._queue:
            if batch.tp in wanted:
                batch.revoked = True
                dropped += len(batch.messages)
            else:
                kept.append(batch)
        # In place: a reader waiting in next_batch() holds this deque.
        self._queue.clear()
        self._queue.extend(kept)
        self._size -= dropped
        current = self.batch
        if current is not None and current.tp in wanted:
            current.revoked = True
            dropped += max(0, len(current.messages) - self.pos)
        self._after_take()
        return dropped

    def __repr__(self) -> str:
        return f"<Subscription {self.channel.label} queued={self._size}>"


class Channel:
    """A local, in-memory channel of events (`app.channel()`).

    Values are handed over as Python objects: nothing is serialized. Every
    stream created from one channel shares its one subscription, so each
    value is processed once, by one reader.
    """

    is_topic = False

    def __init__(
        self,
        app: App,
        *,
        key_type: Any = None,
        value_type: Any = None,
        maxsize: int | None = None,
    ) -> None:
        self.app = app
        self.key_type = key_type
        self.value_type = value_type
        self.maxsize = maxsize
        self._subscription: Subscription | None = None
        self._offsets = itertools.count()

    # -- identity ----------------------------------------------------------

    @property
    def label(self) -> str:
        return f"{type(self).__name__}: {id(self):#x}"

    @property
    def topic_names(self) -> frozenset[str]:
        return frozenset()

    def __repr__(self) -> str:
        return f"<{self.label}>"

    # -- decoding (identity for local channels) ------------------------------

    def decode_key(self, key: Any) -> Any:
        return key

    def decode_value(self, value: Any) -> Any:
        return value

    # -- reading -------------------------------------------------------------

    def buffer_size(self) -> int:
        """How many messages a subscription of this channel buffers."""
        if self.maxsize is not None:
            return self.maxsize
        return self.app.conf.stream_buffer_maxsize

    def subscribe(self) -> Subscription:
        """The subscription streams of this channel read from."""
        if self._subscription is None:
            self._subscription = Subscription(self, self.buffer_size())
        return self._subscription

    def stream(self, **kwargs: Any) -> Stream:
        """A new stream over this channel."""
        from .streams import Stream

        return Stream(self, **kwargs)

    def __aiter__(self) -> Any:
        return self.stream().__aiter__()

    # -- writing -------------------------------------------------------------

    async def send(
        self,
        *,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Any = None,
        key_serializer: Any = None,
        value_serializer: Any = None,
        callback: Callable[[asyncio.Future[RecordMetadata]], Any] | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        """Deliver a value to the readers of this channel.

        Waits while the channel's buffer is full. Returns a future that is
        already resolved with where the value went, like `Topic.send`.
        """
        owner = client.owner_loop(self.app)
        if owner is not None and owner is not asyncio.get_running_loop():
            # The readers wait on the App's loop: deliver there.
            sent = await client.run_in_owner(
                owner, self._send_here(key, value, partition, timestamp, headers)
            )
            return self._resolved_with(sent, callback)
        message = self._make_message(key, value, partition, timestamp, headers)
        await self.put(message)
        return self._resolved(message, callback)

    async def _send_here(
        self,
        key: Any,
        value: Any,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
    ) -> RecordMetadata:
        message = self._make_message(key, value, partition, timestamp, headers)
        await self.put(message)
        return RecordMetadata(
            message.topic, message.partition, message.offset, message.timestamp
        )

    def send_sync(
        self,
        *,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Any = None,
        key_serializer: Any = None,
        value_serializer: Any = None,
        timeout: client.Timeout = client.SEND_TIMEOUT,
    ) -> RecordMetadata:
        """Deliver from sync code (any thread) and wait until it is queued.

        Runs on the App's loop; from a running event loop it raises
        `SyncCallInAsyncContext` (use ``await channel.send(...)``).
        """
        return client.call_sync(
            self.app,
            lambda: self._send_here(key, value, partition, timestamp, headers),
            timeout=timeout,
            sync_name=f"{type(self).__name__}.send_sync",
            async_name="channel.send",
        )

    def send_on_commit(
        self,
        *,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Any = None,
        key_serializer: Any = None,
        value_serializer: Any = None,
        using: str | None = None,
    ) -> None:
        """Deliver once the current database transaction commits (see `Topic`)."""
        app = self.app

        def send() -> None:
            done = asyncio.run_coroutine_threadsafe(
                self._send_here(key, value, partition, timestamp, headers),
                client.target_loop(app),
            )
            done.add_done_callback(
                lambda f: (
                    None
                    if f.cancelled() or f.exception() is None
                    else client.logger.error(
                        "Sending to %s (key %r) after commit failed: %r",
                        self.label,
                        key,
                        f.exception(),
                    )
                )
            )

        client.call_on_commit(f"Sending to {self.label}", send, using=using)

    def send_soon(
        self,
        *,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Any = None,
        key_serializer: Any = None,
        value_serializer: Any = None,
        callback: Callable[[asyncio.Future[RecordMetadata]], Any] | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        """Deliver without waiting; the buffer may grow past ``maxsize``.

        From a thread that does not run the App's loop, the value is handed
        to that loop and a `concurrent.futures.Future` is returned.
        """
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        owner = client.owner_loop(self.app)
        if here is None or (owner is not None and owner is not here):
            return asyncio.run_coroutine_threadsafe(  # type: ignore[return-value]
                self._send_here(key, value, partition, timestamp, headers),
                owner or client.target_loop(self.app),
            )
        message = self._make_message(key, value, partition, timestamp, headers)
        self.subscribe().put_nowait(Batch(None, [message]))
        return self._resolved(message, callback)

    async def put(self, message: Message) -> None:
        await self.subscribe().put(Batch(None, [message]))

    def _make_message(
        self,
        key: Any,
        value: Any,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
    ) -> Message:
        return Message(
            topic=self.label,
            partition=partition or 0,
            offset=next(self._offsets),
            timestamp=int((timestamp if timestamp is not None else time.time()) * 1000),
            key=key,
            value=value,
            headers=_normalize_headers(headers),
        )

    def _resolved_with(
        self,
        metadata: RecordMetadata,
        callback: Callable[[asyncio.Future[RecordMetadata]], Any] | None,
    ) -> asyncio.Future[RecordMetadata]:
        fut: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        fut.set_result(metadata)
        if callback is not None:
            fut.add_done_callback(callback)
        return fut

    def _resolved(
        self,
        message: Message,
        callback: Callable[[asyncio.Future[RecordMetadata]], Any] | None,
    ) -> asyncio.Future[RecordMetadata]:
        fut: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        fut.set_result(
            RecordMetadata(
                message.topic, message.partition, message.offset, message.timestamp
            )
        )
        if callback is not None:
            fut.add_done_callback(callback)
        return fut


def _normalize_headers(headers: Any) -> tuple[tuple[str, bytes], ...]:
    """Headers as a tuple of ``(name, bytes)`` pairs, from a dict or pairs."""
    if not headers:
        return ()
    items = headers.items() if isinstance(headers, dict) else headers
    out = []
    for name, value in items:
        if isinstance(value, str):
            value = value.encode()
        out.append((str(name), value))
    return tuple(out)
