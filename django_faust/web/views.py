"""The built-in views: what a worker is doing, without reading its logs.

Mounted by ``include("django_faust.urls")``: ``stats/``, ``agents/``,
``tables/``, ``assignment/``, ``lag/``, ``health/live/``,
``health/ready/``, ``metrics/`` and ``tables/<name>/key/`` (the router's
way to ask a worker for a key). JSON by default; HTML with
``Accept: text/html`` or ``?format=html``. Which are open is decided in
`.access`. No view shows settings values.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse

from ..types import TP
from . import signing
from .access import allowed
from .pages import forward, unavailable
from .router import FORWARDED_HEADER

if TYPE_CHECKING:
    from ..app.base import App

__all__ = [
    "agents",
    "assignment",
    "health_live",
    "health_ready",
    "lag",
    "metrics",
    "stats",
    "table_key",
    "tables",
]

View = Callable[..., Any]  # async; django-stubs types views as sync


def _app() -> App:
    from ..app.project import get_project_app

    return get_project_app()


def builtin(name: str) -> Callable[[Callable[..., Any]], View]:
    """A built-in view: access check, then JSON or HTML of what it returns."""

    def _decorate(fun: Callable[..., Any]) -> View:
        @wraps(fun)
        async def view(request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
            app = _app()
            if not allowed(app, request, name) and not _worker_asks(request, name):
                return JsonResponse(
                    {"error": "forbidden", "view": name, "hint": _HINT}, status=403
                )
            result = await fun(app, request, **kwargs)
            if isinstance(result, HttpResponseBase):
                return result
            status = 200
            if isinstance(result, tuple):
                result, status = result
            return render(request, name, result, status)

        return view

    return _decorate


_HINT = (
    'closed by default in production: open it with FAUST["WEB_EXPOSE_STATS"], '
    '["WEB_EXPOSE_METRICS"], ["WEB_EXPOSE_HEALTH"] or decide with '
    '["WEB_PERMISSION"]'
)


def _worker_asks(request: HttpRequest, name: str) -> bool:
    """A signed `Router.ask` of another worker of this project."""
    return name == "table-key" and signing.verify(
        request.get_full_path(),
        request.headers.get(signing.TIMESTAMP_HEADER),
        request.headers.get(signing.SIGNATURE_HEADER),
    )


def wants_html(request: HttpRequest) -> bool:
    fmt = request.GET.get("format")
    if fmt:
        return fmt == "html"
    accept = request.headers.get("Accept", "")
    return "text/html" in accept


def render(request: HttpRequest, title: str, data: Any, status: int) -> HttpResponse:
    if not wants_html(request):
        return JsonResponse(data, status=status, encoder=DjangoJSONEncoder, safe=False)
    body = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;vertical-align:top;"
        "text-align:left}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{_html(data)}</body></html>"
    )
    return HttpResponse(body, status=status, content_type="text/html; charset=utf-8")


def _html(data: Any) -> str:
    if isinstance(data, dict):
        if not data:
            return "<i>none</i>"
        rows = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{_html(v)}</td></tr>"
            for k, v in data.items()
        )
        return f"<table>{rows}</table>"
    if isinstance(data, (list, tuple)):
        if not data:
            return "<i>none</i>"
        return "<ul>" + "".join(f"<li>{_html(v)}</li>" for v in data) + "</ul>"
    text = json.dumps(data, cls=DjangoJSONEncoder)
    return html.escape(text if not isinstance(data, str) else data)


def _tp(tp: TP) -> str:
    return f"{tp.topic}[{tp.partition}]"


def _running_consumer(app: App) -> Any:
    consumer = app._consumer
    if consumer is not None and consumer.started and not app.client_only:
        return consumer
    return None


# -- the views ------------------------------------------------------------------


@builtin("stats")
async def stats(app: App, request: HttpRequest) -> Any:
    """Rates, latencies, recovery and dead letters (the Monitor's snapshot)."""
    if _running_consumer(app) is None:
        return {"app_id": app.conf.id, "worker": False}
    return {"worker": True, **app.monitor.asdict()}


@builtin("agents")
async def agents(app: App, request: HttpRequest) -> Any:
    events = app.monitor.agent_events()
    out = []
    for name, agent in sorted(app.agents.items()):
        channel = agent.channel
        topics = list(getattr(channel, "topics", ()) or ())
        out.append(
            {
                "name": name,
                "topics": topics,
                "concurrency": agent.concurrency,
                "isolated_partitions": agent.isolated_partitions,
                "actors": len(agent.actors),
                "events": events.get(name, 0),
                "errors": agent.errors_total,
                "help": agent.help,
            }
        )
    return {"agents": out}


@builtin("tables")
async def tables(app: App, request: HttpRequest) -> Any:
    consumer = _running_consumer(app)
    manager = app.tables
    out = []
    for table in manager.values():
        held = (
            sorted(table.active_partitions)
            if table.active_partitions is not None
            else None
        )
        standby = (
            sorted(
                tp.partition
                for tp in consumer.standby_assignment()
                if tp.topic == table.changelog_topic_name
            )
            if consumer is not None
            else []
        )
        recovery = {
            str(partition): counts
            for (name, partition), counts in sorted(manager.recovery.items())
            if name == table.name
        }
        out.append(
            {
                "name": table.name,
                "kind": type(table).__name__,
                "changelog_topic": table.changelog_topic_name,
                "partitions": held if consumer is not None else [],
                "standby_partitions": standby,
                "keys": len(table) if consumer is not None else 0,
                "recovery": recovery,
                "recovered": manager.recovered.is_set() if consumer else False,
                "help": table.help,
            }
        )
    return {"tables": out}


@builtin("assignment")
async def assignment(app: App, request: HttpRequest) -> Any:
    """Which worker owns which partition, and which keeps standbys."""
    router = app.router
    consumer = _running_consumer(app)
    if router.local_only:
        held = sorted(consumer.assignment()) if consumer is not None else []
        return {
            "transport": "memory",
            "members": {
                "local": {"url": router.url, "partitions": [_tp(t) for t in held]}
            },
        }
    group = await router.refresh()
    if group is None:
        return {"members": {}, "leader": None, "me": None}
    members = {}
    for member in sorted(set(group.urls) | set(group.partitions)):
        members[member] = {
            "url": group.urls.get(member),
            "partitions": [_tp(t) for t in sorted(group.partitions.get(member, ()))],
            "standbys": [_tp(t) for t in sorted(group.standbys.get(member, ()))],
        }
    return {"members": members, "leader": group.leader_id, "me": group.member_id}


@builtin("lag")
async def lag(app: App, request: HttpRequest) -> Any:
    """Per partition: committed offset, high watermark, lag."""
    consumer = _running_consumer(app)
    if consumer is None:
        return {"worker": False, "partitions": {}}
    partitions = {}
    for tp in sorted(consumer.trackers):
        tracker = consumer.trackers[tp]
        highwater = consumer.highwater(tp)
        committed = tracker.committed
        partitions[_tp(tp)] = {
            "committed": committed,
            "highwater": highwater,
            "lag": (
                None if highwater is None else max(0, highwater - (committed or 0))
            ),
        }
    return {"worker": True, "partitions": partitions}


@builtin("health-live")
async def health_live(app: App, request: HttpRequest) -> Any:
    """200 while the process answers (a liveness probe)."""
    crashed = bool(getattr(app, "crashed", False))
    if crashed:
        return {"status": "crashed"}, 503
    return {"status": "live"}


@builtin("health-ready")
async def health_ready(app: App, request: HttpRequest) -> Any:
    """200 once in the group with tables recovered; 503 otherwise."""
    reasons = readiness(app)
    if reasons:
        return {"status": "not ready", "reasons": reasons}, 503
    return {"status": "ready"}


def readiness(app: App) -> list[str]:
    """Why the worker is not ready (empty: ready)."""
    consumer = _running_consumer(app)
    if consumer is None:
        return ["no worker runs in this process"]
    reasons = []
    if not app.is_running():
        reasons.append("the app is not running")
    if not consumer.assigned.is_set():
        reasons.append("not in the consumer group yet")
    if consumer.rebalancing:
        reasons.append("rebalancing")
    if not app.tables.recovered.is_set():
        reasons.append("recovering tables")
    if not app.broker_available:
        reasons.append("the broker is not reachable")
    return reasons


@builtin("metrics")
async def metrics(app: App, request: HttpRequest) -> Any:
    """The Prometheus text format (needs ``django-faust[prometheus]``)."""
    from ..sensors.prometheus import exposition

    body, content_type = exposition(app)
    return HttpResponse(body, content_type=content_type)


def _route_partition(app: App, table: Any, partition: int, fallback: Any) -> Any:
    from .router import Route

    consumer = _running_consumer(app)
    tp = TP(table.changelog_topic_name, partition)
    if app.router.local_only or (consumer is not None and tp in consumer.assignment()):
        return app.router._local_route(Route(table.name, partition), table)
    group = app.router.group()
    url = group.url_for(tp) if group is not None else None
    if url is None or (consumer is not None and url == app.router.url):
        return Route(table.name, partition, unavailable="being reassigned")
    return Route(table.name, partition, url=url)


@builtin("table-key")
async def table_key(app: App, request: HttpRequest, name: str) -> Any:
    """The value of one key, encoded as the table's changelog encodes it.

    ``?key=`` is the key as the changelog encodes it, base64url. What
    `Router.ask` calls; answered by the owner (forwarded there if needed).
    """
    try:
        table = app.tables[name]
    except KeyError:
        return {"error": f"no table named {name!r}"}, 404
    topic = table.changelog_topic
    try:
        raw = base64.urlsafe_b64decode(request.GET.get("key", ""))
        key = topic.decode_key(raw)
    except (binascii.Error, ValueError) as exc:
        return {"error": f"bad key: {exc}"}, 400
    router = app.router
    await router.refresh()
    where = router.route(table, key)
    wanted = request.GET.get("partition")
    if wanted is not None and wanted.isdigit():
        # The asker routed by the source topic's encoding of the key.
        where = _route_partition(app, table, int(wanted), where)
    if not where.local:
        if where.url is None or request.headers.get(FORWARDED_HEADER):
            return unavailable(where.unavailable or "not held here")
        return await forward(app, request, where.url)
    try:
        value = table[key]
    except KeyError:
        return {"error": "no such key"}, 404
    return HttpResponse(
        topic.encode_value(value) or b"", content_type="application/octet-stream"
    )
