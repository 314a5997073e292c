"""Sending from anywhere in a Django process: the client loop and the sync facade.

Most Django code is synchronous and does not run inside the worker: WSGI
views, management commands, Celery tasks, signal handlers, the shell. The
producer, though, lives on one event loop. This module gives every process
exactly one place where the App's producer runs, and hands work to it:

* in the worker (or any process that started the App), that is the App's
  own loop;
* anywhere else, a `Client`: one background thread running an event loop
  with the App started in client-only mode. It starts on the first send,
  is shared by every thread of the process, and is stopped (flushing what
  was sent) at interpreter exit and on ``SIGTERM``.

Sync code calls `send_sync` (waits for the broker), `send_soon` (returns a
`concurrent.futures.Future` at once) or `send_on_commit` (after the current
database transaction commits). Async code that runs on another loop (an
async view under uvicorn or daphne) is handed over the same way, and gets
back a future of its own loop, so no future is ever left bound to a loop
that has gone away.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import logging
import os
import signal
import threading
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from .exceptions import DjangoFaustError, ImproperlyConfigured, UnknownTopicError

if TYPE_CHECKING:
    from .app.base import App
    from .conf import Settings
    from .topics import Topic
    from .types import RecordMetadata

__all__ = [
    "Client",
    "SyncCallInAsyncContext",
    "call_sync",
    "get_client",
    "install_sigterm_handler",
    "owner_loop",
    "run_in_owner",
    "send_on_commit",
    "send_soon",
    "stop_clients",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class FromSettings:
    """A ``timeout=`` default read from the app's settings at call time.

    ``topic.send_sync(..., timeout=SEND_TIMEOUT)`` waits
    ``FAUST["PRODUCER_SEND_TIMEOUT"]`` seconds: the signature shows where
    the value comes from, and a change of the setting is seen by every call.
    """

    def __init__(self, setting: str, read: Callable[[Settings], float]) -> None:
        self.setting = setting
        self.read = read

    def __repr__(self) -> str:
        return f"<the {self.setting} setting>"

    def of(self, app: App) -> float:
        return self.read(app.conf)


#: A timeout in seconds, None (wait forever), or a setting's (`FromSettings`).
Timeout = float | None | FromSettings

#: Default of the sync sends' ``timeout``: ``FAUST["PRODUCER_SEND_TIMEOUT"]``.
SEND_TIMEOUT = FromSettings(
    "PRODUCER_SEND_TIMEOUT", lambda conf: conf.producer_send_timeout
)


def timeout_for(app: App, timeout: Timeout) -> float | None:
    """``timeout`` in seconds, the setting's value for a `FromSettings`."""
    return timeout.of(app) if isinstance(timeout, FromSettings) else timeout


class SyncCallInAsyncContext(DjangoFaustError, RuntimeError):
    """A blocking call was made from a thread that runs an event loop.

    Waiting there would block the very loop that has to do the work (a
    deadlock in the worker, a stalled server elsewhere): use the ``async``
    call the message names instead.
    """


def refuse_in_event_loop(sync_name: str, async_name: str) -> None:
    """Raise `SyncCallInAsyncContext` when called from a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise SyncCallInAsyncContext(
        f"{sync_name}() blocks, and was called from a running event loop "
        f"(an async view, agent or task): use 'await {async_name}(...)' there "
        f"instead."
    )


# -- where the App runs ---------------------------------------------------------


def owner_loop(app: App) -> asyncio.AbstractEventLoop | None:
    """The running loop the App (or its client) was started on, if any."""
    loop: asyncio.AbstractEventLoop | None = getattr(app, "running_loop", None)
    if loop is None or loop.is_closed() or not loop.is_running():
        return None
    return loop


def needs_own_loop(app: App) -> bool:
    """Whether sending must go through one loop (the producer binds to it).

    The ``memory://`` producer appends to an in-process log and binds to no
    loop, so it can be used from whichever loop calls it; a Kafka producer
    cannot.
    """
    producer = app.producer
    if producer.started:
        return False  # started by hand on some loop: keep using it there
    return getattr(producer, "binds_to_loop", True)


class Client:
    """The App in client-only mode, on an event loop in a background thread.

    Created by `get_client`; one per App per process. `loop()` starts it on
    first use (connecting the producer to the broker) and is safe to call
    from any thread. When the start fails (the broker is down), the error
    goes to the callers waiting for it, and the next send tries again, on
    the same loop: the App's producer and its asyncio primitives belong to
    that loop for the lifetime of the process.
    """

    def __init__(self, app: App) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._startup: concurrent.futures.Future[asyncio.AbstractEventLoop] | None = (
            None
        )

    @property
    def running(self) -> bool:
        """Whether the App is started on this client's thread."""
        startup, thread = self._startup, self._thread
        return (
            thread is not None
            and thread.is_alive()
            and startup is not None
            and startup.done()
            and not startup.cancelled()
            and startup.exception() is None
        )

    def start(self) -> concurrent.futures.Future[asyncio.AbstractEventLoop]:
        """Start the App on the thread (once); resolves to the thread's loop."""
        with self._lock:
            startup = self._startup
            if startup is not None and not (
                startup.done() and startup.exception() is not None
            ):
                return startup
            # First start, or the last one failed (broker down): try again.
            loop = self._ensure_thread()
            startup = self._startup = asyncio.run_coroutine_threadsafe(
                self._start_app(), loop
            )
            install_sigterm_handler()
            return startup

    def loop(self, timeout: float | None = None) -> asyncio.AbstractEventLoop:
        """The client's loop, started (and connected) if it was not.

        Waits up to ``timeout`` seconds, ``FAUST["CLIENT_START_TIMEOUT"]``
        by default.
        """
        if timeout is None:
            timeout = self.app.conf.client_start_timeout
        return self.start().result(timeout)

    def _ensure_thread(self) -> asyncio.AbstractEventLoop:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            return loop
        loop = self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run,
            args=(loop,),
            name=f"django-faust-client-{self.app.conf.id}",
            daemon=True,
        )
        self._thread.start()
        return loop

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _start_app(self) -> asyncio.AbstractEventLoop:
        app = self.app
        try:
            await app.start_client()
        except BaseException as exc:
            logger.error("%s: the client could not start: %r", app.label, exc)
            with contextlib.suppress(Exception):
                await app.stop()
            app.service_reset()  # so that the next send can start it again
            raise
        return asyncio.get_running_loop()

    def stop(self, timeout: float | None = None) -> None:
        """Flush and stop the App, then the loop and its thread.

        Each step waits up to ``timeout`` seconds,
        ``FAUST["CLIENT_STOP_TIMEOUT"]`` by default.
        """
        if timeout is None:
            timeout = self.app.conf.client_stop_timeout
        with self._lock:
            loop, thread, startup = self._loop, self._thread, self._startup
            self._loop = self._thread = self._startup = None
        if loop is None or thread is None or not thread.is_alive():
            return
        started = False
        if startup is not None:
            with contextlib.suppress(Exception):
                startup.result(timeout)
                started = True
        if started:
            done = asyncio.run_coroutine_threadsafe(self.app.stop(), loop)
            try:
                done.result(timeout)
            except Exception as exc:
                logger.error("%s: stopping the client failed: %r", self.app.label, exc)
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)


_clients: dict[int, Client] = {}
_clients_lock = threading.Lock()


def get_client(app: App) -> Client:
    """The one `Client` of ``app`` in this process."""
    if id(app) in _inherited:
        raise ImproperlyConfigured(
            f"{app.label} started its client before this process was forked "
            "(gunicorn --preload?); the client thread does not survive a fork. "
            "Send from the forked processes only, not at import time."
        )
    with _clients_lock:
        client = _clients.get(id(app))
        if client is None or client.app is not app:
            client = _clients[id(app)] = Client(app)
        return client


def stop_clients(timeout: float | None = None) -> None:
    """Stop every client of this process, sending what they still hold.

    Each waits ``timeout`` seconds, its app's ``CLIENT_STOP_TIMEOUT`` by default.
    """
    with _clients_lock:
        clients = list(_clients.values())
    for client in clients:
        client.stop(timeout)


#: Ids of apps whose client was started in the parent of a fork.
_inherited: set[int] = set()


def _forget_clients_after_fork() -> None:
    # The client's thread does not exist in a forked child (gunicorn
    # --preload). An app that never sent before the fork starts its own
    # client on its first send; one whose client ran in the parent has a
    # producer bound to that thread's loop, which cannot be reused.
    global _clients_lock
    _clients_lock = threading.Lock()
    for client in _clients.values():
        if client._startup is not None:
            _inherited.add(id(client.app))
            if client.app.running_loop is client._loop:
                client.app.running_loop = None
    _clients.clear()
    _outboxes.clear()


atexit.register(stop_clients)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_clients_after_fork)


_sigterm_installed = False


def install_sigterm_handler() -> None:
    """Make ``SIGTERM`` a normal exit (so `stop_clients` flushes), if unhandled.

    Called by ``AppConfig.ready()`` (the main thread, at ``django.setup()``)
    and when a client starts. Only in the main thread, and only when nobody
    else handles ``SIGTERM``: gunicorn, uvicorn, Celery and the worker
    install their own handlers, which end with a normal exit that runs the
    `atexit` hook too (or replace this one).
    """
    global _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    _sigterm_installed = True
    with contextlib.suppress(ValueError, OSError):
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def target_loop(app: App) -> asyncio.AbstractEventLoop:
    """The loop to hand work to from sync code: the App's, or the client's."""
    loop = owner_loop(app)
    if loop is None:
        loop = get_client(app).loop()
    return loop


async def target_loop_async(app: App) -> asyncio.AbstractEventLoop | None:
    """For async code: the loop to hand over to, or None to run right here."""
    loop = owner_loop(app)
    if loop is None and needs_own_loop(app):
        # Connecting may take a moment: do not block the caller's loop.
        loop = await asyncio.wrap_future(get_client(app).start())
    if loop is asyncio.get_running_loop():
        return None
    return loop


# -- running coroutines on the owner loop ---------------------------------------


def call_sync(
    app: App,
    coro: Callable[[], Coroutine[Any, Any, T]],
    *,
    timeout: Timeout,
    sync_name: str,
    async_name: str,
) -> T:
    """Run ``coro()`` on the App's loop and wait for its result (sync code)."""
    refuse_in_event_loop(sync_name, async_name)
    timeout = timeout_for(app, timeout)
    loop = target_loop(app)
    future = asyncio.run_coroutine_threadsafe(coro(), loop)
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise TimeoutError(f"{sync_name}() got no result within {timeout}s.") from None


async def run_in_owner(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]
) -> T:
    """Await ``coro`` run on ``loop`` (another thread's), from this loop."""
    return await _bridge(asyncio.run_coroutine_threadsafe(coro, loop))


def _bridge(source: concurrent.futures.Future[T]) -> asyncio.Future[T]:
    """A future of the running loop that follows ``source``.

    Unlike `asyncio.wrap_future`, it never schedules onto a loop that was
    stopped or closed meanwhile (the temporary loop of ``async_to_sync``):
    the result is then set directly, so ``fut.result()`` still works.
    """
    loop = asyncio.get_running_loop()
    dest: asyncio.Future[T] = loop.create_future()

    def copy(src: concurrent.futures.Future[T]) -> None:
        if dest.done():
            return
        if loop.is_closed() or not loop.is_running():
            # Nobody runs that loop now: set it here, so it is not lost.
            with contextlib.suppress(Exception):
                _copy_state(src, dest)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_copy_state, src, dest)

    def cancel_source(d: asyncio.Future[T]) -> None:
        if d.cancelled():
            source.cancel()

    dest.add_done_callback(cancel_source)
    source.add_done_callback(copy)
    return dest


def _copy_state(src: Any, dest: Any) -> None:
    if dest.done():
        return
    if src.cancelled():
        dest.cancel()
        return
    exc = src.exception()
    if exc is not None:
        dest.set_exception(exc)
    else:
        dest.set_result(src.result())


# -- sending from other threads ------------------------------------------------------

#: One prepared message: topic name, key and value bytes, partition,
#: timestamp, headers, and the future handed to the caller.
_Outgoing = tuple[
    str,
    "bytes | None",
    "bytes | None",
    "int | None",
    "float | None",
    "tuple[tuple[str, bytes], ...]",
    "concurrent.futures.Future[RecordMetadata]",
]


class _Outbox:
    """Messages from other threads, handed to the producer on its loop.

    Threads append to a deque (thread-safe) and wake the loop only when no
    wake-up is pending, so a burst of sends costs one wake-up, not one per
    message; the loop then hands the whole burst to ``producer.send_soon``,
    which batches it.
    """

    def __init__(self, app: App, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.loop = loop
        self._items: deque[_Outgoing] = deque()
        self._wakeup_pending = False

    def put(self, item: _Outgoing) -> None:
        self._items.append(item)
        if not self._wakeup_pending:
            self._wakeup_pending = True
            try:
                self.loop.call_soon_threadsafe(self._pump)
            except RuntimeError:  # the loop closed under us
                self._wakeup_pending = False
                self._fail_all(RuntimeError(f"{self.app.label} has stopped."))

    def _pump(self) -> None:
        # Clear the flag *before* taking items: a thread that saw it set
        # appended before this point, so its item is taken below.
        self._wakeup_pending = False
        items = self._items
        producer = self.app.producer
        if not producer.started:
            self.loop.create_task(self._start_then_pump())
            return
        while items:
            topic, key, value, partition, timestamp, headers, result = items.popleft()
            try:
                fut = producer.send_soon(
                    topic,
                    key,
                    value,
                    partition=partition,
                    timestamp=timestamp,
                    headers=headers,
                )
            except Exception as exc:
                _set_exception(result, exc)
                continue
            fut.add_done_callback(_Resolver(result))

    async def _start_then_pump(self) -> None:
        try:
            await self.app.maybe_start_producer()
        except Exception as exc:
            self._fail_all(exc)
            return
        self._pump()

    def _fail_all(self, exc: BaseException) -> None:
        while self._items:
            _set_exception(self._items.popleft()[-1], exc)  # type: ignore[arg-type]


class _Resolver:
    """Done-callback copying a delivery future into the caller's future."""

    __slots__ = ("result",)

    def __init__(self, result: concurrent.futures.Future[Any]) -> None:
        self.result = result

    def __call__(self, fut: asyncio.Future[Any]) -> None:
        result = self.result
        if fut.cancelled():
            result.cancel()
            return
        exc = fut.exception()
        if exc is not None:
            _set_exception(result, exc)
        elif not result.done():
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                result.set_result(fut.result())


def _set_exception(result: concurrent.futures.Future[Any], exc: BaseException) -> None:
    if not result.done():
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            result.set_exception(exc)


_outboxes: dict[int, _Outbox] = {}


def _outbox(app: App, loop: asyncio.AbstractEventLoop) -> _Outbox:
    box = _outboxes.get(id(app))
    if box is None or box.loop is not loop or box.app is not app:
        box = _outboxes[id(app)] = _Outbox(app, loop)
    return box


def send_soon(
    topic: Topic,
    *,
    key: Any = None,
    value: Any = None,
    partition: int | None = None,
    timestamp: float | None = None,
    headers: Any = None,
    key_serializer: Any = None,
    value_serializer: Any = None,
    loop: asyncio.AbstractEventLoop | None = None,
) -> concurrent.futures.Future[RecordMetadata]:
    """Encode here, hand to the producer's loop; a future of the delivery.

    Encoding and validation happen in the calling thread, so a bad key or
    value raises right here, naming the topic and field, and nothing is
    sent. Callable from any thread that does not run the App's loop.
    """
    prepared = topic.prepare(key, value, headers, key_serializer, value_serializer)
    return dispatch(topic.app, prepared, partition, timestamp, loop=loop)


def dispatch(
    app: App,
    prepared: tuple[str, bytes | None, bytes | None, tuple[tuple[str, bytes], ...]],
    partition: int | None,
    timestamp: float | None,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
) -> concurrent.futures.Future[RecordMetadata]:
    """Hand one prepared message (see `Topic.prepare`) to the producer's loop."""
    name, key_bytes, value_bytes, header_pairs = prepared
    result: concurrent.futures.Future[RecordMetadata] = concurrent.futures.Future()
    if loop is None:
        loop = target_loop(app)
    _outbox(app, loop).put(
        (name, key_bytes, value_bytes, partition, timestamp, header_pairs, result)
    )
    return result


def send_on_commit(
    topic: Topic,
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
    """Send after the current transaction of ``using`` commits (see `Topic`)."""
    from django.db import transaction

    prepared = topic.prepare(key, value, headers, key_serializer, value_serializer)
    app = topic.app

    def send() -> None:
        try:
            result = dispatch(app, prepared, partition, timestamp)
        except Exception as exc:
            _log_failed(prepared[0], key, exc)
            return
        result.add_done_callback(
            lambda f: (
                None
                if f.cancelled() or not f.exception()
                else _log_failed(prepared[0], key, f.exception())
            )
        )

    transaction.on_commit(send, using=using)


def call_on_commit(
    what: str, fun: Callable[[], Any], *, using: str | None = None
) -> None:
    """Run ``fun`` after the transaction commits; log (not raise) its error."""
    from django.db import transaction

    def run() -> None:
        try:
            fun()
        except Exception as exc:
            logger.error("%s after commit failed: %r", what, exc, exc_info=exc)

    transaction.on_commit(run, using=using)


def _log_failed(topic_name: str, key: Any, exc: BaseException | None) -> None:
    logger.error(
        "Sending to topic %r (key %r) after commit failed: %r",
        topic_name,
        key,
        exc,
        exc_info=exc,
    )


def wait_delivery(
    topic_name: str,
    key: Any,
    result: concurrent.futures.Future[RecordMetadata],
    timeout: float | None,
) -> RecordMetadata:
    """The broker's metadata for ``result``; errors say which topic and key."""
    try:
        return result.result(timeout)
    except concurrent.futures.TimeoutError:
        result.cancel()
        raise TimeoutError(
            f"No acknowledgement from the broker for topic {topic_name!r} "
            f"(key {key!r}) within {timeout}s."
        ) from None
    except Exception as exc:
        from aiokafka.errors import UnknownTopicOrPartitionError

        if isinstance(exc, UnknownTopicOrPartitionError):
            raise UnknownTopicError(
                f"Topic {topic_name!r} does not exist on the broker, which does "
                "not create topics automatically: create it first (a topic the "
                "app declares, such as an agent's, is created when the worker "
                "starts).",
                topic=topic_name,
            ) from exc
        exc.add_note(f"While sending to topic {topic_name!r} (key {key!r}).")
        raise


async def send_from_other_loop(
    topic: Topic,
    loop: asyncio.AbstractEventLoop,
    callback: Callable[[asyncio.Future[RecordMetadata]], Any] | None,
    **kwargs: Any,
) -> asyncio.Future[RecordMetadata]:
    """`Topic.send` from a loop the producer does not run on.

    The message goes through the owner loop's outbox; the returned future
    belongs to the calling loop.
    """
    fut = _bridge(send_soon(topic, loop=loop, **kwargs))
    if callback is not None:
        fut.add_done_callback(callback)
    return fut
