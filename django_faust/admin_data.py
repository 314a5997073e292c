"""What the admin pages and live views show, read from one place.

The admin (`django_faust.admin`) and the WebSocket consumers
(`django_faust.consumers`) never reach into tables, stores or the consumer
themselves: they ask an `AdminData` for "the tables described", "a page of
keys" and "the workers described". `LocalAdminData` answers from the app of
this process, which is right when the worker serves the admin (the embedded
default: ``manage.py faust worker`` serves the project's site).

A web process that runs no worker holds no table data; there the answers
come from the workers, whose URLs the router knows (`RemoteAdminData` with
`router_worker_urls`). `get_admin_data` is the one place that decides which
source is used (`default_admin_data`): nothing to configure; set
`admin_data_factory` only to answer from elsewhere.

A page of keys never reads a whole table: each served partition is read in
the order of its encoded keys from a cursor (`Store.page`), and the pages
are merged. The cursor is the last encoded key shown, in URL-safe base64.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import heapq
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .exceptions import ImproperlyConfigured
from .web import signing
from .windows import HoppingWindow, SlidingWindow, TumblingWindow

if TYPE_CHECKING:
    from .app.base import App
    from .tables.table import Listener, Table

__all__ = [
    "AdminData",
    "Entry",
    "LocalAdminData",
    "Page",
    "RemoteAdminData",
    "TableInfo",
    "WorkerInfo",
    "admin_data_factory",
    "decode_cursor",
    "default_admin_data",
    "encode_cursor",
    "get_admin_data",
    "jsonable",
    "router_worker_urls",
    "row_id",
    "runs_worker",
]

#: Entries read per partition at most while looking for a page of one
#: window: a window filter cannot seek, so the scan is bounded and the page
#: may come back short, with a cursor to continue from.
MAX_SCAN = 10_000
#: How many past windows the window selector offers.
WINDOW_CHOICES = 10


@dataclass
class TableInfo:
    """One table, as the tables page lists it."""

    name: str
    kind: str
    window: str | None
    changelog_topic: str
    store: str
    keys: int
    #: worker (its URL) -> active partitions of the table there.
    partitions: dict[str, list[int]]
    standby_partitions: dict[str, list[int]]
    #: "partition" -> {"done": n, "left": n}, while recovering.
    recovery: dict[str, dict[str, int]]
    recovered: bool
    help: str = ""
    value_fields: list[str] = field(default_factory=list)


@dataclass
class Entry:
    """One key of a table page."""

    key: Any
    value: Any
    partition: int
    #: The window start of a windowed table's entry, else None.
    window_start: float | None = None
    #: The value's fields when the table has a Record ``value_type``.
    fields: dict[str, Any] | None = None
    #: The encoded (stored) key: the order of pages, and their cursor.
    raw: bytes = b""


@dataclass
class Page:
    entries: list[Entry]
    #: Pass as ``cursor`` for the next page; None on the last one.
    next_cursor: str | None


@dataclass
class WorkerInfo:
    """One worker of the group, as the workers page lists it."""

    name: str
    url: str
    active: list[str]
    standby: list[str]
    lag: int | None
    events_per_second: float | None
    last_commit: dict[str, int]
    recovery: dict[str, dict[str, int]]
    recovered: bool


class AdminData(Protocol):
    """The questions the admin asks; `LocalAdminData` answers them locally."""

    def tables(self) -> list[TableInfo]: ...

    def table(self, name: str) -> TableInfo: ...

    def page(
        self,
        name: str,
        *,
        cursor: str | None = None,
        search: str = "",
        exact: bool = False,
        window: float | None = None,
        limit: int = 50,
    ) -> Page: ...

    def windows(self, name: str) -> list[float]: ...

    def workers(self) -> list[WorkerInfo]: ...

    def subscribe(self, name: str, listener: Listener) -> Callable[[], None]:
        """Call ``listener(table, key, value)`` on each change; returns the undo."""
        ...


# -- helpers ------------------------------------------------------------------------


def encode_cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_cursor(cursor: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(cursor.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise ValueError(f"cursor {cursor!r} is not a page cursor") from None


def jsonable(value: Any) -> Any:
    """``value`` as JSON can hold it: Records as dicts, sets sorted, tuples as lists."""
    asdict = getattr(value, "asdict", None)
    if callable(asdict):
        return {k: jsonable(v) for k, v in asdict().items()}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((jsonable(v) for v in value), key=repr)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def row_id(key: Any, window_start: float | None = None) -> str:
    """The identity of a key (and window) that pages and live updates share."""
    text = json.dumps(jsonable(key), sort_keys=True)
    return text if window_start is None else f"{text}@{window_start!r}"


def describe_window(table: Table) -> str | None:
    return None if table.window is None else repr(table.window)


def record_fields(table: Table) -> list[str]:
    """The field names of the table's Record ``value_type`` (else none)."""
    options = getattr(table.value_type, "_options", None)
    names = getattr(options, "field_names", None)
    return list(names) if names else []


def search_key(table: Table, text: str, *, exact: bool) -> tuple[Any, bytes]:
    """The key typed in the search box, and the encoded prefix to search for.

    An exact search looks the key up (as ``key_type`` if it is int or float);
    a prefix search compares encoded keys: for JSON string keys the closing
    quote is left off, so that ``ali`` finds ``"alice"``.
    """
    key: Any = text
    key_type = table.key_type
    if key_type in (int, float):
        try:
            key = key_type(text)
        except ValueError:
            raise ValueError(
                f"Table {table.name!r} has {key_type.__name__} keys; "
                f"{text!r} is not one."
            ) from None
    if exact:
        return key, b""
    encoded = table.changelog_topic.encode_key(key) or b""
    if isinstance(key, str) and encoded.endswith(b'"') and len(encoded) >= 2:
        encoded = encoded[:-1]
    if table.window is not None and encoded.startswith((b'"', b"[", b"{")):
        # Windowed keys are stored as [key, start].
        encoded = b"[" + encoded
    return key, encoded


# -- the local source ---------------------------------------------------------------

F = TypeVar("F", bound=Callable[..., Any])


def on_owner_loop(method: F) -> F:
    """Run the method on the app's event loop when called from another thread.

    Stores are not thread-safe and the agents write them from the app's
    loop; Django runs sync views (the admin's) in a worker thread. Such a
    call is handed to the loop and waited for, so a read never races a write.
    """

    @functools.wraps(method)
    def wrapper(self: LocalAdminData, *args: Any, **kwargs: Any) -> Any:
        from .client import owner_loop

        loop = owner_loop(self.app)
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if loop is None or loop is here:
            return method(self, *args, **kwargs)

        async def call() -> Any:
            return method(self, *args, **kwargs)

        return asyncio.run_coroutine_threadsafe(call(), loop).result(self.timeout)

    return wrapper  # type: ignore[return-value]


class LocalAdminData:
    """Answers from the app of this process (the worker serving the admin)."""

    #: Seconds a call from another thread waits for the app's loop.
    timeout: float = 10.0

    def __init__(self, app: App) -> None:
        self.app = app

    # -- tables ---------------------------------------------------------------------

    def _consumer(self) -> Any:
        consumer = self.app._consumer
        if consumer is not None and not self.app.client_only:
            return consumer
        return None

    def _table(self, name: str) -> Table:
        try:
            return self.app.tables[name]
        except KeyError:
            known = ", ".join(sorted(self.app.tables)) or "none"
            raise LookupError(
                f"No table named {name!r} in app {self.app.conf.id!r} "
                f"(tables: {known})."
            ) from None

    def _served(self, table: Table) -> list[int]:
        if table.active_partitions is not None:
            return sorted(table.active_partitions)
        if table._store is None:
            return []
        return sorted(table.store.partitions())

    @on_owner_loop
    def table(self, name: str) -> TableInfo:
        table = self._table(name)
        consumer = self._consumer()
        manager = self.app.tables
        served = self._served(table)
        me = self.worker_url()
        standby: list[int] = []
        if consumer is not None:
            standby = sorted(
                tp.partition
                for tp in consumer.standby_assignment()
                if tp.topic == table.changelog_topic_name
            )
        store = table.store if table._store is not None or served else None
        keys = sum(store.approximate_count(p) for p in served) if store else 0
        return TableInfo(
            name=table.name,
            kind=_kind(table),
            window=describe_window(table),
            changelog_topic=table.changelog_topic_name,
            store=table.store_url or self.app.conf.store,
            keys=keys,
            partitions={me: served},
            standby_partitions={me: standby},
            recovery={
                str(partition): dict(counts)
                for (owner, partition), counts in sorted(manager.recovery.items())
                if owner == table.name
            },
            recovered=manager.recovered.is_set(),
            help=table.help,
            value_fields=record_fields(table),
        )

    @on_owner_loop
    def tables(self) -> list[TableInfo]:
        return [self.table(name) for name in sorted(self.app.tables)]

    @on_owner_loop
    def windows(self, name: str) -> list[float]:
        """Starts of the latest windows of a windowed table, newest first."""
        table = self._table(name)
        window = table.window
        if window is None or isinstance(window, SlidingWindow):
            return []
        if isinstance(window, HoppingWindow):
            step = window.step
        elif isinstance(window, TumblingWindow):
            step = window.size
        else:
            return []
        latest = window.current(time.time()).start
        return [latest - i * step for i in range(WINDOW_CHOICES)]

    @on_owner_loop
    def page(
        self,
        name: str,
        *,
        cursor: str | None = None,
        search: str = "",
        exact: bool = False,
        window: float | None = None,
        limit: int = 50,
    ) -> Page:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        table = self._table(name)
        served = self._served(table)
        if not served:
            return Page([], None)
        store = table.store
        fields = bool(record_fields(table))
        if search and exact:
            key, _ = search_key(table, search, exact=True)
            entries = []
            if table.window is not None:
                starts = [window] if window is not None else self.windows(name)
                for start in starts:
                    found = table.locate((key, start))
                    if found is not None:
                        value = store.get(found, (key, start))
                        entries.append(_entry(key, value, found, start, fields))
            else:
                found = table.locate(key)
                if found is not None:
                    entries.append(
                        _entry(key, store.get(found, key), found, None, fields)
                    )
            return Page(entries, None)
        prefix = search_key(table, search, exact=False)[1] if search else b""
        after = decode_cursor(cursor) if cursor else None
        streams = [
            self._partition_entries(store, p, after, prefix, limit, window, table)
            for p in served
        ]
        merged = heapq.merge(*streams, key=lambda item: item[0])
        out: list[Entry] = []
        last: bytes | None = None
        exhausted = True
        for raw, key, value, partition in merged:
            if key is _CUT:
                # A partition stopped scanning for the window: the page ends
                # here, and the next one goes on from where it stopped.
                exhausted = False
                last = raw
                break
            if len(out) >= limit:
                exhausted = False
                break
            last = raw
            window_start: float | None = None
            if table.window is not None and isinstance(key, tuple):
                key, window_start = key
            entry = _entry(key, value, partition, window_start, fields)
            entry.raw = raw
            out.append(entry)
        if exhausted or last is None:
            return Page(out, None)
        return Page(out, encode_cursor(last))

    def _partition_entries(
        self,
        store: Any,
        partition: int,
        after: bytes | None,
        prefix: bytes,
        limit: int,
        window: float | None,
        table: Table,
    ) -> Any:
        """The entries of one partition in key order, read a page at a time."""
        scanned = 0
        while True:
            chunk = store.page(partition, after=after, prefix=prefix, limit=limit + 1)
            for raw, key, value in chunk:
                scanned += 1
                if window is not None and (
                    not isinstance(key, tuple) or key[1] != window
                ):
                    if scanned >= MAX_SCAN:
                        yield (raw, _CUT, None, partition)
                        return
                    continue
                yield (raw, key, value, partition)
            if len(chunk) <= limit:
                return
            after = chunk[-1][0]

    def subscribe(self, name: str, listener: Listener) -> Callable[[], None]:
        # Called from the loop the consumer runs on; the listener list is
        # only read by the agents, so appending from here is safe.
        table = self._table(name)
        table.add_listener(listener)
        return lambda: table.remove_listener(listener)

    # -- workers ----------------------------------------------------------------------

    def worker_url(self) -> str:
        conf = self.app.conf
        url = getattr(conf, "canonical_url", None)
        if url:
            return str(url)
        return f"http://{getattr(conf, 'web_host', 'localhost')}:{conf.web_port}/"

    @on_owner_loop
    def workers(self) -> list[WorkerInfo]:
        consumer = self._consumer()
        if consumer is None:
            return []
        active = sorted(consumer.assignment())
        standby = sorted(consumer.standby_assignment())
        lag = 0
        last_commit: dict[str, int] = {}
        for tp, tracker in sorted(consumer.trackers.items()):
            highwater = consumer.highwater(tp)
            committed = tracker.committed
            if committed is not None:
                last_commit[f"{tp.topic}[{tp.partition}]"] = committed
            if highwater is not None:
                lag += max(0, highwater - (committed or 0))
        manager = self.app.tables
        return [
            WorkerInfo(
                name=self.app.conf.id,
                url=self.worker_url(),
                active=[f"{tp.topic}[{tp.partition}]" for tp in active],
                standby=[f"{tp.topic}[{tp.partition}]" for tp in standby],
                lag=lag,
                events_per_second=_rate(consumer),
                last_commit=last_commit,
                recovery={
                    f"{name}[{partition}]": dict(counts)
                    for (name, partition), counts in sorted(manager.recovery.items())
                },
                recovered=manager.recovered.is_set(),
            )
        ]


#: Marks a partition that stopped scanning for a window (see MAX_SCAN).
_CUT: Any = object()

#: consumer id -> (time, messages received) of the previous rate sample.
_samples: dict[int, tuple[float, int]] = {}


def _rate(consumer: Any) -> float | None:
    """Events per second since the previous call (None on the first)."""
    now, received = time.monotonic(), consumer.messages_received
    before = _samples.get(id(consumer))
    _samples[id(consumer)] = (now, received)
    if before is None or now <= before[0]:
        return None
    return (received - before[1]) / (now - before[0])


def _kind(table: Table) -> str:
    from .tables.table import GlobalTable, SetGlobalTable, SetTable

    if isinstance(table, SetGlobalTable):
        kind = "global set"
    elif isinstance(table, SetTable):
        kind = "set"
    elif isinstance(table, GlobalTable):
        kind = "global"
    else:
        kind = "table"
    if table.window is not None:
        kind = f"windowed {kind}"
    return kind


def _entry(
    key: Any, value: Any, partition: int, start: float | None, fields: bool
) -> Entry:
    data = jsonable(value) if fields else None
    return Entry(
        key=key,
        value=value,
        partition=partition,
        window_start=start,
        fields=data if isinstance(data, dict) else None,
    )


# -- asking the workers (a web process without a worker) -----------------------------

#: ``fetch(url, headers) -> (status, body)``; the signature headers are given.
Fetch = Callable[[str, dict[str, str]], tuple[int, bytes]]


def answer(data: AdminData, question: str, query: Any) -> Any:
    """A worker's JSON answer to a web process's question (see `RemoteAdminData`)."""
    if question == "tables":
        return [asdict(info) for info in data.tables()]
    if question == "workers":
        return [asdict(info) for info in data.workers()]
    if question == "page":
        window = query.get("window")
        page = data.page(
            query["name"],
            cursor=query.get("cursor") or None,
            search=query.get("search", ""),
            exact=query.get("exact") == "1",
            window=float(window) if window else None,
            limit=int(query.get("limit", 50)),
        )
        return {
            "entries": [
                {
                    "raw": encode_cursor(entry.raw),
                    "key": jsonable(entry.key),
                    "value": jsonable(entry.value),
                    "partition": entry.partition,
                    "window_start": entry.window_start,
                    "fields": entry.fields,
                }
                for entry in page.entries
            ],
            "next_cursor": page.next_cursor,
        }
    raise LookupError(f"no admin question {question!r}")


def _fetch_http(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class RemoteAdminData:
    """Answers by asking every worker (for a web process that runs none).

    ``worker_urls()`` gives the base URL of each worker's site; by default
    (`router_worker_urls`) the router's: the group's assignment carries
    each worker's web URL, and a web process reads it from the routes topic.
    Each worker answers from its own tables at ``<admin>/django_faust/
    streamtable/_data/<question>/``, a URL the admin mounts, open only to
    questions signed with the ``SECRET_KEY`` both processes share
    (`django_faust.web.signing`). Pages of
    the workers are merged in key order, as a worker merges its partitions.
    `subscribe` is refused: the live views relay the workers' own
    WebSockets instead (`django_faust.consumers`).
    """

    def __init__(
        self,
        app: App,
        worker_urls: Callable[[], list[str]],
        *,
        admin_prefix: str = "/admin/",
        fetch: Fetch = _fetch_http,
    ) -> None:
        self.app = app
        self.worker_urls = worker_urls
        self.admin_prefix = "/" + admin_prefix.strip("/") + "/"
        self.fetch = fetch

    def _ask(self, question: str, **params: Any) -> list[Any]:
        from urllib.parse import urlencode

        target = f"{self.admin_prefix}django_faust/streamtable/_data/{question}/"
        query = urlencode({k: v for k, v in params.items() if v is not None})
        if query:
            target += f"?{query}"
        answers = []
        for url in self.worker_urls():
            status, body = self.fetch(url.rstrip("/") + target, signing.headers(target))
            if status == 404 and question == "page":
                continue  # that worker has no such table (not declared there)
            if status != 200:
                raise RuntimeError(
                    f"Asking worker {url} for {question!r}: HTTP {status}: "
                    f"{body[:200]!r}"
                )
            answers.append(json.loads(body))
        return answers

    def tables(self) -> list[TableInfo]:
        merged: dict[str, TableInfo] = {}
        for answer_ in self._ask("tables"):
            for raw in answer_:
                info = TableInfo(**raw)
                known = merged.get(info.name)
                if known is None:
                    merged[info.name] = info
                    continue
                if "global" not in info.kind:  # a global table is whole on each
                    known.keys += info.keys
                known.partitions.update(info.partitions)
                known.standby_partitions.update(info.standby_partitions)
                known.recovery.update(info.recovery)
                known.recovered = known.recovered and info.recovered
        return [merged[name] for name in sorted(merged)]

    def table(self, name: str) -> TableInfo:
        for info in self.tables():
            if info.name == name:
                return info
        raise LookupError(f"No table named {name!r} on any worker.")

    def windows(self, name: str) -> list[float]:
        # The windows follow from the table's declaration, which this
        # process has too.
        return LocalAdminData(self.app).windows(name)

    def page(
        self,
        name: str,
        *,
        cursor: str | None = None,
        search: str = "",
        exact: bool = False,
        window: float | None = None,
        limit: int = 50,
    ) -> Page:
        answers = self._ask(
            "page",
            name=name,
            cursor=cursor,
            search=search or None,
            exact="1" if exact else None,
            window=repr(window) if window is not None else None,
            limit=limit,
        )
        entries = [
            Entry(
                key=_as_key(item["key"]),
                value=item["value"],
                partition=item["partition"],
                window_start=item["window_start"],
                fields=item["fields"],
                raw=decode_cursor(item["raw"]),
            )
            for page in answers
            for item in page["entries"]
        ]
        entries.sort(key=lambda entry: entry.raw)
        more = any(page["next_cursor"] for page in answers) or len(entries) > limit
        entries = entries[:limit]
        if exact or not more or not entries:
            return Page(entries, None)
        return Page(entries, encode_cursor(entries[-1].raw))

    def workers(self) -> list[WorkerInfo]:
        return [
            WorkerInfo(**raw) for answer_ in self._ask("workers") for raw in answer_
        ]

    def subscribe(self, name: str, listener: Listener) -> Callable[[], None]:
        raise LookupError(
            f"Live updates of table {name!r} come from the worker that holds it; "
            "this process runs none (route the WebSocket to a worker)."
        )


def _as_key(value: Any) -> Any:
    """A key back from JSON: lists were tuples (keys are hashable)."""
    if isinstance(value, list):
        return tuple(_as_key(item) for item in value)
    return value


def router_worker_urls(app: App) -> Callable[[], list[str]]:
    """The web URLs of the group's workers, as the router knows them.

    For sync code (the admin's views run in a thread): the router reads the
    routes topic on the app's loop (the client's in a web process), at most
    every ``ROUTES_MAX_AGE`` seconds. Workers serving no web announce no URL.
    """

    def worker_urls() -> list[str]:
        from .client import call_sync

        group = call_sync(
            app,
            app.router.refresh,
            timeout=LocalAdminData.timeout,
            sync_name="worker_urls",
            async_name="app.router.refresh",
        )
        if group is None:
            return []
        return sorted({url for url in group.urls.values() if url})

    return worker_urls


def runs_worker(app: App) -> bool:
    """Whether this process runs the app's worker (so it holds table data).

    True on the ``memory://`` transport (one process holds everything),
    and once the worker has started the app (not a client-only start).
    """
    if app.transport.driver_name == "memory":
        return True
    return app.running_loop is not None and not app.client_only


def _admin_prefix() -> str:
    from django.urls import NoReverseMatch, reverse

    try:
        return reverse("admin:index")
    except NoReverseMatch:
        return "/admin/"


def default_admin_data(app: App) -> AdminData:
    """Local data where the worker runs; else ask the router's workers."""
    if runs_worker(app):
        return LocalAdminData(app)
    return RemoteAdminData(app, router_worker_urls(app), admin_prefix=_admin_prefix())


#: Builds the `AdminData` the admin uses, from the project's app: by default
#: `default_admin_data`. Replace it to answer from elsewhere.
admin_data_factory: Callable[[App], AdminData] = default_admin_data


def get_admin_data(app: App | None = None) -> AdminData:
    """The source of the admin's answers for ``app`` (the project's by default)."""
    if app is None:
        from .app.project import get_project_app

        app = get_project_app()
    if app is None:
        raise ImproperlyConfigured("No django-faust app in this project.")
    return admin_data_factory(app)


def dumps(data: Any) -> str:
    return json.dumps(jsonable(data))
