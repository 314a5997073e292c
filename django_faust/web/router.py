"""The router: which worker holds a table key, and asking it.

A key of a table lives in one partition, on the worker the consumer group
gave that partition to. The partition is the one Kafka's default
partitioner picks for the key *as the table's changelog encodes it* (its
``key_serializer``, JSON by default), which is the partition of the event
that wrote it when the source topic encodes keys the same way (as
``group_by`` does). A table fed straight from a topic that encodes keys
otherwise (the default ``raw`` for ``str`` keys) names that topic:
``table_route(..., topic=orders)``, ``router.ask(table, key, topic=orders)``. The
group's assignment, with every worker's web URL, comes from our assignor
(`~django_faust.transport.kafka.assignor.GroupAssignment`).

A worker knows the assignment from its own consumer. A web process with no
worker in it (gunicorn, uvicorn) learns it from the small compacted topic
``<app id>-web-routes`` every worker writes the group's assignment to after
each rebalance: the Kafka way (``DescribeGroups``) would do, but brokers do
not all return the members' assignments (the test broker returns none).

On the ``memory://`` transport there is one process: every key is local.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..exceptions import ImproperlyConfigured
from ..transport.memory import partition_for_key
from ..types import TP
from . import signing
from .http import HTTPClient, WorkerUnreachable

if TYPE_CHECKING:
    from ..app.base import App
    from ..tables import Table
    from ..topics import Topic
    from ..transport.kafka.assignor import GroupAssignment

__all__ = [
    "FORWARDED_HEADER",
    "Route",
    "RouteUnavailable",
    "Router",
]

logger = logging.getLogger(__name__)

#: Request header of a forwarded request: the receiver never forwards again.
FORWARDED_HEADER = "X-Faust-Forwarded"
#: Seconds a web process trusts the assignment it read from the routes topic.
ROUTES_MAX_AGE = 2.0
#: Seconds a client is told to wait (``Retry-After``) while a key has no owner.
RETRY_AFTER = 1


class RouteUnavailable(Exception):
    """Nobody can answer for the key now: recovering or being reassigned."""

    def __init__(self, message: str, retry_after: int = RETRY_AFTER) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Route:
    """Where a key is: here (``url`` None) or at another worker's ``url``."""

    table: str
    partition: int
    url: str | None = None
    #: Why nobody can answer now (recovering, reassigning); else None.
    unavailable: str | None = None

    @property
    def local(self) -> bool:
        return self.url is None and self.unavailable is None


class Router:
    """``app.router``: the owner of a key, and its value from wherever it is."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.http = HTTPClient()
        self._remote: GroupAssignment | None = None
        self._remote_read_at = 0.0
        self._routes_topic: Topic | None = None
        self._counts: dict[str, int] = {}
        self._counts_of: GroupAssignment | None = None
        self._reading: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, asyncio.Task[GroupAssignment | None]
        ] = weakref.WeakKeyDictionary()

    # -- where --------------------------------------------------------------------

    @property
    def url(self) -> str:
        """This process's URL as the assignor announces it to the group."""
        conf = self.app.conf
        return f"http://{conf.web_host}:{conf.web_port}/"

    def table(self, table: Table | str) -> Table:
        if isinstance(table, str):
            try:
                return self.app.tables[table]
            except KeyError:
                known = ", ".join(sorted(self.app.tables)) or "none"
                raise ImproperlyConfigured(
                    f"No table named {table!r} (tables: {known})."
                ) from None
        return table

    def partition_for(
        self, table: Table | str, key: Any, topic: Topic | None = None
    ) -> int:
        """The partition of ``table`` that holds ``key``.

        Kafka's default partitioner on the key as the table's changelog
        encodes it, or as ``topic`` (the table's source) does when given.
        """
        table = self.table(table)
        encoded = (topic or table.changelog_topic).encode_key(key)
        if encoded is None:
            raise ValueError(f"Table {table.name!r}: a routed key cannot be None.")
        return partition_for_key(encoded, self._partition_count(table))

    def _partition_count(self, table: Table) -> int:
        """The changelog's partitions: as the group has them, else as declared.

        The group's assignment covers every partition of the topic, so it
        is right even for a topic created with another count than declared.
        """
        declared = table.partitions or self.app.conf.topic_partitions
        group = None if self.local_only else self.group()
        if group is None or table.is_global:
            return declared
        if self._counts_of is not group:
            counts: dict[str, int] = {}
            for tp in group.owners:
                counts[tp.topic] = max(counts.get(tp.topic, 0), tp.partition + 1)
            self._counts, self._counts_of = counts, group
        return self._counts.get(table.changelog_topic_name, declared)

    @property
    def local_only(self) -> bool:
        """One process holds everything (the memory transport)."""
        return self.app.transport.driver_name == "memory"

    def _worker_consumer(self) -> Any:
        consumer = self.app._consumer
        if consumer is not None and consumer.started and not self.app.client_only:
            return consumer
        return None

    def group(self) -> GroupAssignment | None:
        """The last group assignment known here (None: none known yet)."""
        consumer = self._worker_consumer()
        if consumer is not None:
            group: GroupAssignment | None = consumer.group_assignment()
            return group
        return self._remote

    def route(self, table: Table | str, key: Any, topic: Topic | None = None) -> Route:
        """Where ``key`` is, from what this process knows now."""
        table = self.table(table)
        partition = self.partition_for(table, key, topic)
        route = Route(table.name, partition)
        consumer = self._worker_consumer()
        if self.local_only or (table.is_global and consumer is not None):
            return self._local_route(route, table)
        group = self.group()
        if table.is_global:
            # Every worker holds all of it: ask any.
            urls = sorted(group.urls.values()) if group is not None else []
            if urls:
                return Route(table.name, partition, url=urls[0])
            return Route(table.name, partition, unavailable="no worker is known")
        tp = TP(table.changelog_topic_name, partition)
        if consumer is not None and tp in consumer.assignment():
            return self._local_route(route, table)
        url = group.url_for(tp) if group is not None else None
        if url is None:
            return Route(
                table.name,
                partition,
                unavailable=f"partition {partition} of table {table.name!r} "
                "has no owner yet (the group is rebalancing)",
            )
        if consumer is not None and url == self.url:
            # The group says it is ours, the consumer has not taken it yet.
            return Route(
                table.name,
                partition,
                unavailable=f"partition {partition} of table {table.name!r} "
                "is being assigned to this worker",
            )
        return Route(table.name, partition, url=url)

    def _local_route(self, route: Route, table: Table) -> Route:
        consumer = self._worker_consumer()
        recovering = not self.app.tables.recovered.is_set() or (
            consumer is not None and consumer.rebalancing
        )
        if consumer is None and not self.local_only:
            return Route(
                route.table,
                route.partition,
                unavailable="no worker runs in this process",
            )
        if recovering:
            return Route(
                route.table,
                route.partition,
                unavailable=f"table {table.name!r} is recovering",
            )
        return route

    def owner(
        self, table: Table | str, key: Any, topic: Topic | None = None
    ) -> str | None:
        """The web URL of the worker that owns ``key`` (None: not known now).

        On the memory transport, and for a key this worker holds, that is
        this worker's own URL.
        """
        route = self.route(table, key, topic)
        if route.url is not None:
            return route.url
        if route.local:
            return self.url
        return None

    async def refresh(self) -> GroupAssignment | None:
        """In a web process: read the group's assignment if it is old."""
        if self._worker_consumer() is not None or self.local_only:
            return self.group()
        if time.monotonic() - self._remote_read_at < ROUTES_MAX_AGE:
            return self._remote
        loop = asyncio.get_running_loop()
        reading = self._reading.get(loop)
        if reading is None:
            # One read at a time per loop; concurrent requests wait for it.
            reading = self._reading[loop] = loop.create_task(self._read_routes())
        try:
            group = await asyncio.shield(reading)
        finally:
            if reading.done() and self._reading.get(loop) is reading:
                del self._reading[loop]
        self._remote = group
        self._remote_read_at = time.monotonic()
        return group

    def forget(self) -> None:
        """Drop the assignment a web process read (a worker did not answer)."""
        self._remote_read_at = 0.0

    # -- asking ---------------------------------------------------------------------

    async def ask(
        self,
        table: Table | str,
        key: Any,
        *,
        topic: Topic | None = None,
        timeout: float = 10.0,
    ) -> Any:
        """The value of ``key`` in ``table``, from the worker that holds it.

        Raises `RouteUnavailable` while nobody can answer (recovering,
        rebalancing); the table's default (or KeyError) when the key is
        absent, as ``table[key]`` does.
        """
        table = self.table(table)
        await self.refresh()
        route = self.route(table, key, topic)
        if route.local:
            return table[key]
        if route.url is None:
            raise RouteUnavailable(route.unavailable or "no owner")
        from django.urls import reverse

        path = reverse("django_faust:table-key", args=[table.name])
        encoded = table.changelog_topic.encode_key(key) or b""
        query = base64.urlsafe_b64encode(encoded).decode()
        if topic is not None:
            query += f"&partition={route.partition}"
        target = f"{path}?key={query}"
        try:
            response = await self.http.request(
                "GET",
                f"{route.url.rstrip('/')}{target}",
                headers={FORWARDED_HEADER: "1", **signing.headers(target)},
                timeout=timeout,
            )
        except WorkerUnreachable as exc:
            self.forget()
            raise RouteUnavailable(str(exc)) from exc
        if response.status == 503:
            self.forget()
            raise RouteUnavailable(
                response.body.decode(errors="replace"),
                int(response.header("retry-after") or RETRY_AFTER),
            )
        if response.status == 404:
            raise KeyError(key)
        if response.status != 200:
            raise RuntimeError(
                f"Asking {route.url} for {key!r} in table {table.name!r}: "
                f"HTTP {response.status}: {response.body[:200]!r}"
            )
        return table.changelog_topic.decode_value(response.body)

    # -- the assignment, for web processes ------------------------------------------

    @property
    def routes_topic(self) -> Topic:
        """``<app id>-web-routes``: the group's assignment, for web processes."""
        if self._routes_topic is None:
            self._routes_topic = self.app.topic(
                f"{self.app.conf.id}-web-routes",
                partitions=1,
                compacting=True,
                internal=True,
                key_serializer="raw",
                value_serializer="raw",
            )
        return self._routes_topic

    async def publish(self) -> None:
        """Write the group's assignment to the routes topic (workers do)."""
        group = self.group()
        if group is None or self.local_only:
            return
        document = {
            "version": 1,
            "at": time.time(),
            "urls": dict(group.urls),
            "assignments": {
                member: sorted([tp.topic, tp.partition] for tp in tps)
                for member, tps in group.partitions.items()
            },
            "standbys": {
                member: sorted([tp.topic, tp.partition] for tp in tps)
                for member, tps in group.standbys.items()
            },
        }
        topic = self.routes_topic
        await topic.declare()
        fut = await topic.send(
            key=b"group", value=json.dumps(document).encode(), partition=0
        )
        await fut

    async def _read_routes(self) -> GroupAssignment | None:
        from ..transport.kafka.assignor import GroupAssignment

        tp = TP(self.routes_topic.get_topic_name(), 0)
        reader = self.app.transport.create_reader({tp: 0})
        await reader.start()
        last: bytes | None = None
        try:
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                for message in await reader.getmany(timeout=0.2):
                    last = message.value
                highwater = reader.highwater(tp)
                if highwater is not None and reader.position(tp) >= highwater:
                    break
        finally:
            await reader.stop()
        if not last:
            return None
        try:
            info = json.loads(last)
        except ValueError:
            logger.warning("Ignoring an unreadable record in %s", tp.topic)
            return None
        return GroupAssignment(
            urls=dict(info.get("urls") or {}),
            partitions={
                member: frozenset(TP(t, p) for t, p in tps)
                for member, tps in (info.get("assignments") or {}).items()
            },
            standbys={
                member: frozenset(TP(t, p) for t, p in tps)
                for member, tps in (info.get("standbys") or {}).items()
            },
        )
