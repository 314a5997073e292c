"""Streams: async iteration over a channel or topic, with operators.

The loop in `Stream._iterate` is the engine's hot path. Per event it does
only what cannot be done per batch: move the shared cursor, decode the value,
run the stream's processors, yield, and release the message when the reader
comes back for the next one. `Event` objects are made only on demand.

Operators that change the source (`group_by`, `through`) forward every value
to a topic and return a new stream over that topic; operators that do not
(`filter`, `echo`, processors) run inside the same loop.
"""

from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar
from typing import (
    TYPE_CHECKING,
    AbstractSet,
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
)

from .events import Batch, Event
from .exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from .app.base import App
    from .channels import Channel, Subscription
    from .types import TP, MessageT

__all__ = ["Stream", "current_event", "current_message", "current_stream"]

logger = logging.getLogger(__name__)

_current_stream: ContextVar[Stream | None] = ContextVar(
    "django_faust_current_stream", default=None
)

#: A processor returns this to drop a value (used by `Stream.filter`).
SKIP = object()

Processor = Callable[[Any], Any | Awaitable[Any]]

_VALUES, _ITEMS, _EVENTS = 0, 1, 2


def current_stream() -> Stream | None:
    """The stream whose reader runs in this task (an agent's actor), if any."""
    return _current_stream.get()


def current_message() -> MessageT | None:
    """The message the current agent or stream is processing, if any.

    Cheap: no `Event` is built and nothing is decoded, so tables and
    windows can ask on every write. Its ``topic``, ``partition``,
    ``offset``, ``timestamp``, ``key`` and ``value`` are the raw record's.
    """
    stream = _current_stream.get()
    if stream is None:
        return None
    return stream.current_message


def current_event() -> Event | None:
    """The event the current agent or stream is processing, if any."""
    stream = _current_stream.get()
    if stream is None:
        return None
    return stream.current_event


class Stream:
    """An async iterator over the events of a channel or topic.

    Iterate it with ``async for value in stream``; ``items()`` gives
    ``(key, value)`` pairs and ``events()`` whole `Event` objects. An event is
    acknowledged when the loop asks for the next one, unless the stream was
    made with `noack`, in which case user code calls ``event.ack()``.
    """

    def __init__(
        self,
        channel: Channel,
        *,
        processors: Iterable[Processor] = (),
        noack: bool | None = None,
        subscription: Subscription | None = None,
    ) -> None:
        self.channel = channel
        self.app: App = channel.app
        self._processors: list[Processor] = list(processors)
        if noack is None:
            noack = channel.is_topic and not getattr(channel, "acks", True)
        self._noack = bool(noack)
        self._subscription = subscription
        self._children: list[Stream] = []
        self._tasks: list[asyncio.Future[Any]] = []
        self._forward: Callable[[], Awaitable[None]] | None = None
        # What the reader holds right now.
        self._message: Any = None
        self._batch: Batch | None = None
        self._index = 0
        self._value: Any = None
        self._event: Event | None = None
        # Rebalance: see `in_hand`.
        self._came_back: asyncio.Future[None] | None = None
        # Shutdown: see `request_stop`.
        self._stop_future: asyncio.Future[None] | None = None
        self._waiting = True
        self._started = False
        self.events_total = 0
        #: Actors sharing this stream's subscription (tables need 1).
        self.concurrency = 1
        #: The agent reading this stream, if any (its ``poison_policy``).
        self.agent: Any = None

    # -- plumbing ------------------------------------------------------------

    @property
    def subscription(self) -> Subscription:
        if self._subscription is None:
            self._subscription = self.channel.subscribe()
        return self._subscription

    def _derive(self, **kwargs: Any) -> Stream:
        """A stream over the same subscription with other processing."""
        params: dict[str, Any] = {
            "processors": self._processors,
            "noack": self._noack,
            "subscription": self._subscription,
        }
        params.update(kwargs)
        child = Stream(self.channel, **params)
        child._forward = self._forward
        self._children.append(child)
        return child

    def add_processor(self, processor: Processor) -> None:
        """Run ``processor(value)`` on every value; its result replaces it."""
        self._processors.append(processor)

    def __repr__(self) -> str:
        return f"<Stream: {self.channel.label}>"

    # -- iteration -----------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate(_VALUES)

    def items(self) -> AsyncIterator[tuple[Any, Any]]:
        """Iterate over ``(key, value)`` pairs."""
        return self._iterate(_ITEMS)

    def events(self) -> AsyncIterator[Event]:
        """Iterate over whole events (key, value, headers, message)."""
        return self._iterate(_EVENTS)

    async def enumerate(self, start: int = 0) -> AsyncIterator[tuple[int, Any]]:
        """Iterate over ``(n, value)`` pairs, counting from ``start``."""
        n = start
        async for value in self:
            yield n, value
            n += 1

    async def _iterate(self, mode: int) -> AsyncIterator[Any]:
        if self._started:
            raise ImproperlyConfigured(
                f"{self!r} is already being iterated; a stream has one reader."
            )
        self._started = True
        if self._forward is not None:
            self._tasks.append(asyncio.ensure_future(self._forward()))
        sub = self.subscription
        channel = self.channel
        decode_value = channel.decode_value
        processors = self._processors
        _current_stream.set(self)
        while True:
            # -- take the next message from the shared cursor -----------------
            batch = sub.batch
            pos = sub.pos
            if batch is None or batch.revoked or pos >= len(batch.messages):
                if self._stop_future is not None:
                    await self._park()
                self._waiting = True
                try:
                    batch = await sub.next_batch()
                finally:
                    self._waiting = False
                if self._stop_future is not None:
                    await self._park()
                pos = sub.pos
            sub.pos = pos + 1
            message = batch.messages[pos]
            # -- decode and process -------------------------------------------
            part = "value"
            try:
                value = decode_value(message.value)
                if mode != _VALUES:
                    part = "key"
                    key = channel.decode_key(message.key)
            except Exception as exc:
                if self.app.dead_letters.undecodable(
                    channel, message, exc, part=part, agent=self.agent
                ):
                    batch.release(pos)
                    continue
                # POISON_POLICY 'stop': hold the event unacknowledged (no
                # commit reaches it) while the app stops; idle, so a drain
                # does not wait for it.
                self._waiting = True
                await asyncio.get_running_loop().create_future()
            if processors:
                try:
                    value = await self._process(processors, value)
                except Exception:
                    # A processor error is the agent's error: hold the message
                    # so the actor can send it aside before restarting.
                    self._message, self._batch, self._value = message, batch, value
                    self._index = pos
                    self._event = None
                    raise
                if value is SKIP:
                    batch.release(pos)
                    continue
            self._message = message
            self._batch = batch
            self._index = pos
            self._value = value
            self.events_total += 1
            # -- hand it over ---------------------------------------------------
            if mode == _VALUES:
                self._event = None
                yield value
            elif mode == _ITEMS:
                self._event = None
                yield key, value
            else:
                event = Event(channel, key, value, message, batch, pos)
                self._event = event
                yield event
            # -- the reader came back: the event is done ------------------------
            self._message = None
            if not self._noack:
                held = self._event
                if held is None:
                    batch.release(pos)
                elif not held.acked:
                    held.acked = True
                    batch.release(pos)
            self._let_go()
            if self._stop_future is not None:
                await self._park()

    async def _process(self, processors: list[Processor], value: Any) -> Any:
        for processor in processors:
            value = processor(value)
            if isinstance(value, Awaitable):
                value = await value
            if value is SKIP:
                return SKIP
        return value

    # -- the event being processed ---------------------------------------------

    @property
    def current_message(self) -> MessageT | None:
        """The raw message the reader holds (None between events)."""
        message: MessageT | None = self._message
        return message

    @property
    def current_event(self) -> Event | None:
        """The event the reader holds, built on first request."""
        event = self._event
        if event is None and self._message is not None:
            message = self._message
            event = self._event = Event(
                self.channel,
                self.channel.decode_key(message.key),
                self._value,
                message,
                self._batch,
                self._index,
            )
        return event

    def take_held(self) -> tuple[Any, Batch | None, int] | None:
        """Hand over the message the reader holds (used when an actor crashes).

        Returns ``(message, batch, index)``; the caller becomes responsible
        for releasing it.
        """
        if self._message is None:
            return None
        self._let_go()
        event = self._event
        if event is not None and event.acked:
            self._message = None
            return None
        held = (self._message, self._batch, self._index)
        self._message = None
        if event is not None:
            event.acked = True
        return held

    def _let_go(self) -> None:
        """The reader is done with the event it held: tell a waiting rebalance."""
        came_back, self._came_back = self._came_back, None
        if came_back is not None and not came_back.done():
            came_back.set_result(None)

    def in_hand(self, tps: AbstractSet[TP]) -> list[asyncio.Future[None]]:
        """Futures done when readers come back from events of ``tps`` they hold.

        A rebalance waits on them before the revoked partitions' last commit:
        the event an agent is in the middle of is then committed by this
        worker, instead of being processed again by the partition's next
        owner (or by this worker, when the partition comes back to it).
        """
        futures = [fut for child in self._children for fut in child.in_hand(tps)]
        batch = self._batch
        if self._message is not None and batch is not None and batch.tp in tps:
            if self._came_back is None:
                self._came_back = asyncio.get_running_loop().create_future()
            futures.append(self._came_back)
        return futures

    def ack(self, event: Event) -> bool:
        """Acknowledge an event of a `noack` stream."""
        return event.ack()

    # -- operators -------------------------------------------------------------

    def noack(self) -> Stream:
        """A stream whose events user code must ``ack()`` itself."""
        return self._derive(noack=True)

    def filter(self, predicate: Callable[[Any], Any]) -> Stream:
        """A stream of only the values for which ``predicate`` is true.

        The predicate may be ``async``. Dropped events are acknowledged.
        """

        async def _filter(value: Any) -> Any:
            keep = predicate(value)
            if isinstance(keep, Awaitable):
                keep = await keep
            return value if keep else SKIP

        return self._derive(processors=[*self._processors, _filter])

    def echo(self, *channels: Channel | str) -> Stream:
        """A stream that also sends every value to ``channels``."""
        targets = [self.app._resolve_channel(c) for c in channels]

        async def _echo(value: Any) -> Any:
            for target in targets:
                await target.send(value=value)
            return value

        return self._derive(processors=[*self._processors, _echo])

    def through(self, channel: Channel | str) -> Stream:
        """Send every value through ``channel`` and stream from it.

        The key of each event is kept. Use it to move processing to another
        topic (and so to the workers that own its partitions).
        """
        target = self.app._resolve_channel(channel)
        return self._relay(target, key_of=None)

    def group_by(
        self,
        key: Callable[[Any], Any] | Any,
        *,
        name: str | None = None,
        partitions: int | None = None,
    ) -> Stream:
        """Repartition the stream by a new key.

        ``key`` is a model field (``Order.account``) or a function of the value.
        Values are sent to the internal topic
        ``<app_id>-<name>-repartition`` keyed by the new key, so every value
        with the same key reaches the same worker, and the returned stream
        reads from that topic. ``name`` is required when ``key`` is a function.
        """
        getter = getattr(key, "getattr", None)
        if getter is not None:
            field_name = str(getattr(key, "field", "key"))
            key_of: Callable[[Any], Any] = getter
        elif callable(key):
            if name is None:
                raise ImproperlyConfigured(
                    "group_by(function) needs name=...: it names the "
                    "repartition topic, which must be the same on every worker."
                )
            field_name = name
            key_of = key
        else:
            raise ImproperlyConfigured(
                f"group_by() takes a model field or a function, not {key!r}."
            )
        source = self.channel
        if not source.is_topic:
            suffix = name or field_name
        else:
            suffix = name or f"{'-'.join(source.topics)}-{field_name}"  # type: ignore[attr-defined]
        topic_name = f"{self.app.conf.id}-{suffix}-repartition"
        target = self.app.topic(
            topic_name,
            key_type=None,
            value_type=source.value_type,
            key_serializer=getattr(source, "key_serializer", None) or "json",
            value_serializer=getattr(source, "value_serializer", None),
            partitions=partitions,
            internal=True,
        )
        return self._relay(target, key_of=key_of)

    def _relay(self, target: Channel, key_of: Callable[[Any], Any] | None) -> Stream:
        """A stream over ``target``, fed by forwarding this stream to it."""
        parent = self
        child = Stream(target)
        self._children.append(child)

        async def forward() -> None:
            if target.is_topic:
                await target.declare()  # type: ignore[attr-defined]
            async for event in parent.events():
                new_key = event.key if key_of is None else key_of(event.value)
                await target.send(key=new_key, value=event.value, headers=event.headers)

        child._forward = forward
        return child

    async def take(
        self, max_: int, within: float | None = None
    ) -> AsyncIterator[list[Any]]:
        """Iterate over lists of up to ``max_`` values.

        With ``within`` (seconds), a non-empty list is also yielded when that
        much time passed since its first value arrived. Events in a list are
        acknowledged after the reader comes back for the next list.
        """
        if max_ < 1:
            raise ValueError("take() needs max_ >= 1")
        noack_before = self._noack
        self._noack = True
        events = self.events()
        buffer: list[Any] = []
        held: list[Event] = []
        pending: asyncio.Future[Event] | None = None
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        sub = self.subscription
        try:
            while True:
                timed_out = False
                if pending is None and (within is None or sub.has_ready()):
                    event = await events.__anext__()
                else:
                    if pending is None:
                        pending = asyncio.ensure_future(events.__anext__())
                    timeout = None
                    if deadline is not None:
                        timeout = max(0.0, deadline - loop.time())
                    done, _ = await asyncio.wait({pending}, timeout=timeout)
                    if done:
                        event = pending.result()
                        pending = None
                    else:
                        timed_out = True
                if not timed_out:
                    if not buffer and within is not None:
                        deadline = loop.time() + within
                    buffer.append(event.value)
                    held.append(event)
                if buffer and (len(buffer) >= max_ or timed_out):
                    out, buffer = buffer, []
                    deadline = None
                    yield out
                    if not noack_before:
                        for ev in held:
                            ev.ack()
                    held = []
                elif timed_out:
                    deadline = None
        finally:
            if pending is not None:
                pending.cancel()
            self._noack = noack_before

    # -- shutdown ---------------------------------------------------------------

    def request_stop(self) -> asyncio.Future[None]:
        """Stop handing out events; the future resolves when the reader is idle.

        The reader finishes the event it holds (it is acknowledged as usual)
        and then waits, so it can be cancelled without losing work.
        """
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []
        for child in self._children:
            futures.append(child.request_stop())
        fut = self._stop_future
        if fut is None:
            fut = self._stop_future = loop.create_future()
            if self._waiting or not self._started:
                fut.set_result(None)
        futures.append(fut)
        return asyncio.ensure_future(asyncio.gather(*futures))  # type: ignore[arg-type]

    async def _park(self) -> None:
        fut = self._stop_future
        if fut is not None and not fut.done():
            fut.set_result(None)
        await asyncio.get_running_loop().create_future()

    async def stop(self) -> None:
        """Cancel the background forwarders of this stream and its children."""
        for child in self._children:
            await child.stop()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                logger.exception("Forwarder of %r failed", self)
