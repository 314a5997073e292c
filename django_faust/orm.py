"""The ORM from agents, with the connection hygiene of Django's request cycle.

Django closes stale and broken database connections at the start and end of
every request (``close_old_connections`` on ``request_started`` and
``request_finished``). A worker has no requests: an agent that calls the ORM
through plain ``sync_to_async`` keeps one connection for days, and once the
database drops it (a restart, an idle timeout, a failover) every later query
fails with "connection already closed" (faust-streaming issue #666).

`database_sync_to_async` runs a function in Django's sync thread like
``sync_to_async`` does, and around each call does what a request does, plus
a health check: before the call it closes connections that are obsolete
(``CONN_MAX_AGE``), had errors, or no longer answer, so the call gets a
fresh one; after it, it closes those that are obsolete or had errors.
``channels.db.database_sync_to_async`` does the first and last part only: a
connection that died silently still fails its next query there.

::

    from django_faust.orm import database_sync_to_async

    @database_sync_to_async
    def save_order(order):
        Order.objects.create(account=order.account, amount=order.amount)

    @app.agent(orders_topic)
    async def store(orders):
        async for order in orders:
            await save_order(order)

The worker also closes obsolete connections of that thread between
batches, as the end of a request would: once per fetch that handed events
out (`CloseOldConnections`, the consumer's ``between_batches`` callback),
never per event, and never twice at once. A worker that receives nothing
closes nothing, as a site without requests does; `database_sync_to_async`
checks its connections before each call anyway.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgiref.sync import SyncToAsync, sync_to_async
from django.db import close_old_connections, connections

__all__ = [
    "CloseOldConnections",
    "DatabaseSyncToAsync",
    "close_unusable_connections",
    "database_sync_to_async",
]

logger = logging.getLogger(__name__)


def _answers(conn: Any) -> bool:
    """Whether an open connection still works (a round trip to the database).

    SQLite's backend always claims to be usable; its connection can still
    have been closed under Django, so it is asked directly.
    """
    if conn.vendor == "sqlite":
        try:
            conn.connection.execute("SELECT 1")
        except Exception:
            return False
        return True
    return bool(conn.is_usable())


def close_unusable_connections() -> None:
    """Close this thread's connections that are obsolete, broken or dead.

    Connections inside an ``atomic()`` block are left alone: closing them
    would lose the transaction.
    """
    close_old_connections()
    for conn in connections.all(initialized_only=True):
        if conn.connection is None or conn.in_atomic_block:
            continue
        if not _answers(conn):
            logger.info(
                "Database connection %r no longer answers: reconnecting.", conn.alias
            )
            conn.close()


class DatabaseSyncToAsync(SyncToAsync):
    """`sync_to_async` that keeps Django's database connections healthy."""

    def thread_handler(self, loop: Any, *args: Any, **kwargs: Any) -> Any:
        close_unusable_connections()
        try:
            return super().thread_handler(loop, *args, **kwargs)
        finally:
            close_old_connections()


#: Use as a decorator or a call, like ``asgiref.sync.sync_to_async``.
database_sync_to_async = DatabaseSyncToAsync


class CloseOldConnections:
    """Close obsolete connections of the agents' sync thread, in the background.

    Call it between batches (the worker gives it to the consumer): it
    queues ``close_old_connections`` on the thread the agents'
    ``sync_to_async`` calls use (the one thread-sensitive executor), so it
    runs between two of their calls and never closes a connection in use.
    A call while the previous one is still queued does nothing: the cost
    on the fetch path is one attribute check.
    """

    def __init__(self) -> None:
        self._close = sync_to_async(close_old_connections, thread_sensitive=True)
        self._running: asyncio.Future[None] | None = None
        #: How many times connections were checked (for tests and stats).
        self.runs = 0

    def __call__(self) -> None:
        if self._running is None:
            self._running = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            await self._close()
            self.runs += 1
        except Exception as exc:  # a broken database must not stop the worker
            logger.warning("Closing old database connections failed: %r", exc)
        finally:
            self._running = None

    async def wait(self) -> None:
        """Wait for a queued check to finish (at shutdown)."""
        if self._running is not None:
            await asyncio.shield(self._running)
