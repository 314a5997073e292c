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

The worker also closes obsolete connections of that thread every
`HOUSEKEEPING_INTERVAL` seconds, between the agents' calls, as the end of a
request would (`close_old_connections_periodically`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgiref.sync import SyncToAsync, sync_to_async
from django.db import close_old_connections, connections

__all__ = [
    "HOUSEKEEPING_INTERVAL",
    "DatabaseSyncToAsync",
    "close_old_connections_periodically",
    "close_unusable_connections",
    "database_sync_to_async",
]

logger = logging.getLogger(__name__)

#: Seconds between the worker's closing of obsolete connections.
HOUSEKEEPING_INTERVAL = 10.0


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


async def close_old_connections_periodically(
    interval: float = HOUSEKEEPING_INTERVAL,
) -> None:
    """Close obsolete connections of the sync thread every ``interval`` seconds.

    Runs in the thread the agents' ``sync_to_async`` calls use (the one
    thread-sensitive executor), so it never closes a connection in use.
    """
    close = sync_to_async(close_old_connections, thread_sensitive=True)
    while True:
        await asyncio.sleep(interval)
        try:
            await close()
        except Exception as exc:  # a broken database must not stop the worker
            logger.warning("Closing old database connections failed: %r", exc)
