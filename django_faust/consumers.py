"""Channels WebSocket consumers: a table's changes, live, to the browser.

Route them in the project's ``asgi.py`` (see docs/admin.rst)::

    from channels.auth import AuthMiddlewareStack
    from channels.routing import ProtocolTypeRouter, URLRouter
    from django_faust.consumers import websocket_urlpatterns

    application = ProtocolTypeRouter({
        "http": get_asgi_application(),
        "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    })

``ws/faust/tables/<name>/`` then sends a JSON message at most `rate` times
a second with the changes since the previous one, coalesced per key (a key
written a thousand times between two messages is sent once, with its last
value). ``?key=<key>`` watches one key. The agents never wait for a client:
a change is noted in a dict in the agent's write (`Table.add_listener`), and
a task of the consumer sends it. A client that does not keep up is dropped
(closed with code 4008) once more than `max_pending` keys wait for it or
a send takes longer than `send_timeout`: memory stays bounded and the
agent unaffected.

In a web process that runs no worker (`~django_faust.admin_data.get_admin_data`
gives a `RemoteAdminData` there, with the router's worker URLs), the
consumer relays: it connects to the same URL on every worker, signed with
the ``SECRET_KEY`` they share (`django_faust.web.signing`), and passes their
messages on.

By default only staff users with ``django_faust.view_table`` may connect
(the admin's permission, so ``AuthMiddlewareStack`` is needed); set
``permission=None`` (``TableUpdatesConsumer.as_asgi(permission=None,
tables=[...])``) for a public dashboard, or name the tables anyone may
watch with ``public=[...]`` (the others keep needing the permission).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Collection
from typing import Any
from urllib.parse import parse_qs, urlencode

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.urls import path

from .admin_data import (
    AdminData,
    RemoteAdminData,
    get_admin_data,
    jsonable,
    row_id,
    search_key,
)
from .web import signing

__all__ = ["TableUpdatesConsumer", "websocket_urlpatterns"]

logger = logging.getLogger(__name__)

#: Close codes: not allowed, no such table, dropped for not keeping up.
FORBIDDEN, NOT_FOUND, TOO_SLOW = 4403, 4404, 4008

_UNSET: Any = object()
#: Query parameters of a web process's signed relay connection to a worker.
RELAY_TIME, RELAY_SIGNATURE = "faust_time", "faust_signature"


class TableUpdatesConsumer(AsyncWebsocketConsumer):
    """Pushes the changes of one table (or one key of it) to one client."""

    #: The permission a user needs (staff too); None lets anyone watch.
    permission: str | None = "django_faust.view_table"
    #: Names of the tables that may be watched; None: every table.
    tables: Collection[str] | None = None
    #: Names of tables anyone may watch, without `permission` (a public
    #: dashboard's); the others still need it.
    public: Collection[str] = ()
    #: Messages per second at most, per client.
    rate: float = 4.0
    #: Keys waiting to be sent beyond which the client is dropped.
    max_pending: int = 10_000
    #: Seconds one send may take before the client is dropped.
    send_timeout: float = 10.0

    table_name: str
    _pending: dict[Any, Any]
    _unsubscribe: Callable[[], None] | None = None
    _sender: asyncio.Future[Any] | None = None
    _dropped = False
    _closing: asyncio.Future[None] | None = None
    _relays: list[Any] = []

    #: What ``as_asgi(...)`` may set (Channels passes its keywords here).
    options = ("permission", "tables", "public", "rate", "max_pending", "send_timeout")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # As Django's as_view(): keywords of as_asgi() set the options above,
        # and a misspelt one is an error rather than silently ignored.
        for name, value in kwargs.items():
            if name not in self.options:
                raise TypeError(
                    f"{type(self).__name__}.as_asgi() got {name!r}; "
                    f"it takes {', '.join(self.options)}."
                )
            setattr(self, name, value)
        if self.rate <= 0:
            raise ValueError(f"{type(self).__name__}: rate must be positive.")
        super().__init__()

    async def connect(self) -> None:
        self.table_name = self.scope["url_route"]["kwargs"]["name"]
        if not self._allowed():
            await self.close(code=FORBIDDEN)
            return
        if self.tables is not None and self.table_name not in self.tables:
            await self.close(code=FORBIDDEN)
            return
        data = self.admin_data()
        if isinstance(data, RemoteAdminData):
            # A web process: the workers hold the table; pass on theirs.
            await self._start_relay(data)
            return
        app = getattr(data, "app", None)
        table = app.tables.get(self.table_name) if app is not None else None
        self._key = _UNSET
        query = parse_qs(self.scope.get("query_string", b"").decode())
        if "key" in query and table is not None:
            self._key, _ = search_key(table, query["key"][0], exact=True)
        self._windowed = table is not None and table.window is not None
        self._pending = {}
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        try:
            self._unsubscribe = data.subscribe(self.table_name, self._on_change)
        except LookupError:
            await self.close(code=NOT_FOUND)
            return
        await self.accept()
        self._sender = asyncio.ensure_future(self._send_changes())

    def admin_data(self) -> AdminData:
        """Where the table's changes come from (see `django_faust.admin_data`)."""
        return get_admin_data()

    def _allowed(self) -> bool:
        if self.permission is None or self.table_name in self.public:
            return True
        query = parse_qs(self.scope.get("query_string", b"").decode())
        if signing.verify(
            self.scope.get("path", ""),
            query.get(RELAY_TIME, [None])[0],
            query.get(RELAY_SIGNATURE, [None])[0],
        ):
            return True  # a web process relaying for a user it checked
        user = self.scope.get("user")
        if user is None:
            logger.warning(
                "Live table updates need the user: wrap the websocket router "
                "in channels.auth.AuthMiddlewareStack (see docs/admin.rst), "
                "or route TableUpdatesConsumer.as_asgi(permission=None)."
            )
            return False
        return bool(user.is_active and user.is_staff and user.has_perm(self.permission))

    # -- in the agent's write: note and return ---------------------------------------

    def _on_change(self, table: Any, key: Any, value: Any) -> None:
        if self._key is not _UNSET:
            plain = key[0] if self._windowed and isinstance(key, tuple) else key
            if plain != self._key:
                return
        pending = self._pending
        pending[key] = value
        if len(pending) > self.max_pending:
            self._drop(f"more than {self.max_pending} changes waiting")
            return
        if asyncio._get_running_loop() is self._loop:
            self._wake.set()
        else:
            self._loop.call_soon_threadsafe(self._wake.set)

    # -- the consumer's own task -------------------------------------------------------

    async def _send_changes(self) -> None:
        interval = 1.0 / self.rate
        while True:
            await self._wake.wait()
            self._wake.clear()
            changes, self._pending = self._pending, {}
            if not changes:
                continue
            message = json.dumps(
                {"table": self.table_name, "changes": self._describe(changes)}
            )
            try:
                await asyncio.wait_for(self.send(text_data=message), self.send_timeout)
            except TimeoutError:
                self._drop(f"a send took more than {self.send_timeout}s")
                return
            await asyncio.sleep(interval)

    def _describe(self, changes: dict[Any, Any]) -> list[dict[str, Any]]:
        out = []
        for key, value in changes.items():
            start = None
            plain = key
            if self._windowed and isinstance(key, tuple):
                plain, start = key
            out.append(
                {
                    "id": row_id(plain, start),
                    "key": jsonable(plain),
                    "window": start,
                    "value": jsonable(value),
                    "deleted": value is None,
                }
            )
        return out

    def _drop(self, reason: str) -> None:
        """Stop listening and close: the client does not keep up."""
        if self._dropped:
            return
        self._dropped = True
        self._stop_listening()
        self._pending = {}
        logger.warning(
            "Live updates of table %r: dropped a client (%s).", self.table_name, reason
        )
        self._loop.call_soon_threadsafe(self._close_dropped)

    def _close_dropped(self) -> None:
        sender = self._sender
        if sender is not None and sender is not asyncio.current_task():
            sender.cancel()
        self._closing = asyncio.ensure_future(self._close_quietly())

    async def _close_quietly(self) -> None:
        await self._close_relays()
        try:
            await asyncio.wait_for(self.close(code=TOO_SLOW), self.send_timeout)
        except (TimeoutError, Exception):  # the client is gone either way
            logger.debug("closing a dropped client failed", exc_info=True)

    def _stop_listening(self) -> None:
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()

    # -- relaying, in a web process ----------------------------------------------------

    async def _start_relay(self, data: RemoteAdminData) -> None:
        """Connect to the table's consumer on every worker and pass messages on.

        Each worker coalesces its own changes; messages are forwarded as
        they come, and a browser that does not take them within
        `send_timeout` is dropped, as with a worker.
        """
        import websockets

        path = self.scope.get("path", "")
        timestamp = repr(time.time())
        query = {RELAY_TIME: timestamp, RELAY_SIGNATURE: signing.sign(path, timestamp)}
        key = parse_qs(self.scope.get("query_string", b"").decode()).get("key")
        if key:
            query["key"] = key[0]
        connections = []
        # The router may read the routes topic: not on this loop's time.
        for url in await sync_to_async(data.worker_urls, thread_sensitive=False)():
            target = url.rstrip("/").replace("http", "ws", 1) + path
            try:
                connections.append(
                    await websockets.connect(f"{target}?{urlencode(query)}")
                )
            except (OSError, websockets.InvalidHandshake) as exc:
                logger.warning("Live updates: worker %s refused: %s", url, exc)
        if not connections:
            await self.close(code=NOT_FOUND)
            return
        self._loop = asyncio.get_running_loop()
        self._relays = connections
        await self.accept()
        self._sender = asyncio.ensure_future(
            asyncio.gather(*(self._relay(c) for c in connections))
        )

    async def _relay(self, connection: Any) -> None:
        try:
            async for message in connection:
                try:
                    await asyncio.wait_for(
                        self.send(text_data=message), self.send_timeout
                    )
                except TimeoutError:
                    self._drop(f"a send took more than {self.send_timeout}s")
                    return
        except Exception:  # the worker went away
            logger.info("Live updates: a worker closed the relay", exc_info=True)

    async def _close_relays(self) -> None:
        relays, self._relays = self._relays, []
        for connection in relays:
            await connection.close()

    async def disconnect(self, code: int) -> None:
        await self._close_relays()
        self._stop_listening()
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.cancel()


#: ``URLRouter(websocket_urlpatterns)`` in the project's asgi.py.
websocket_urlpatterns = [
    path("ws/faust/tables/<str:name>/", TableUpdatesConsumer.as_asgi()),
]
