"""``@app.page`` and ``@app.table_route``: views in Django's URLconf.

A page is an async Django view the app registers; ``include("django_faust.urls")``
mounts every page under the include's prefix, with Django's path syntax
(``"count/<str:account>/"``; Faust's ``"/count/{account}/"`` is accepted).

Three shapes of view work, so that code from the Faust docs runs:

- a Django view, ``async def view(request, account) -> HttpResponse``;
- Faust's form, ``async def view(web, request, account)``, answering with
  ``web.json(...)`` (`Web`);
- a class with ``get``/``post``/... methods (a `View` subclass gets
  ``self.json(...)`` and friends).

``@app.table_route`` under ``@app.page`` makes the page answer from the
worker that owns the key: elsewhere the request is forwarded to the owner
(one hop: a forwarded request is never forwarded again), and while nobody
can answer the client gets 503 with ``Retry-After`` rather than a default.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseNotAllowed,
    JsonResponse,
)

from ..exceptions import ImproperlyConfigured
from .http import WorkerUnreachable
from .router import FORWARDED_HEADER, RETRY_AFTER

if TYPE_CHECKING:
    from ..app.base import App
    from ..tables import Table
    from ..topics import Topic

__all__ = ["Page", "TableRoute", "View", "Web", "django_route"]

logger = logging.getLogger(__name__)

#: Faust's ``{name}`` placeholders.
_FAUST_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: Headers not passed on when forwarding (hop-by-hop, or recomputed).
_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "upgrade",
        "host",
        "content-length",
        "proxy-authorization",
        "proxy-connection",
    }
)
_HTTP_METHODS = ("get", "post", "put", "patch", "delete", "head", "options")
#: The attribute `table_route` sets on the view it decorates.
ROUTE_ATTR = "__faust_table_route__"


def django_route(path: str) -> str:
    """``path`` in Django's syntax, relative to the mount.

    ``"/count/{account}/"`` becomes ``"count/<str:account>/"``; a path
    already in Django's syntax only loses its leading slash.
    """
    if not isinstance(path, str):
        raise ImproperlyConfigured(f"@app.page needs a path string, got {path!r}.")
    route = _FAUST_PLACEHOLDER.sub(r"<str:\1>", path)
    return route.lstrip("/")


class Web:
    """Faust's ``web`` argument: builds responses (``web.json(value)``)."""

    def json(
        self,
        value: Any,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> HttpResponse:
        return JsonResponse(value, status=status, headers=headers, safe=False)

    def text(
        self,
        value: str,
        *,
        content_type: str = "text/plain",
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> HttpResponse:
        return HttpResponse(
            value,
            content_type=f"{content_type}; charset=utf-8",
            status=status,
            headers=headers,
        )

    def html(
        self, value: str, *, status: int = 200, headers: dict[str, str] | None = None
    ) -> HttpResponse:
        return self.text(
            value, content_type="text/html", status=status, headers=headers
        )

    def bytes(
        self,
        value: bytes,
        *,
        content_type: str = "application/octet-stream",
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> HttpResponse:
        return HttpResponse(
            value, content_type=content_type, status=status, headers=headers
        )

    def error(self, status: int, reason: str, **extra: Any) -> HttpResponse:
        return self.json({"error": reason, **extra}, status=status)


class View(Web):
    """Base of a class-based page: ``async def get(self, request, ...)``."""

    def __init__(self, app: App | None = None, web: Web | None = None) -> None:
        self.app = app
        self.web = web or Web()


@dataclass(frozen=True)
class TableRoute:
    """How a page finds its key: which table, and where the key is."""

    table: Table
    match_info: str | None = None
    query_param: str | None = None
    shard_param: str | None = None
    exact_key: Any = None
    #: The table's source topic, when it encodes keys unlike the changelog.
    topic: Topic | None = None

    def key(self, request: HttpRequest, kwargs: dict[str, Any]) -> Any:
        if self.exact_key is not None:
            return self.exact_key
        if self.match_info is not None:
            if self.match_info not in kwargs:
                raise ImproperlyConfigured(
                    f"@app.table_route(match_info={self.match_info!r}): the page's "
                    f"path has no <{self.match_info}> (it has {sorted(kwargs)})."
                )
            return self._typed(kwargs[self.match_info])
        param = self.query_param or self.shard_param
        assert param is not None
        value = request.GET.get(param)
        if value is None:
            raise _MissingKey(param)
        return self._typed(value)

    def _typed(self, raw: str) -> Any:
        """A URL's text as the table's key type, when that is a plain type."""
        key_type = self.table.key_type
        if key_type in (int, float):
            try:
                return key_type(raw)
            except ValueError:
                raise _MissingKey(raw, f"is not a valid {key_type.__name__}") from None
        return raw


class _MissingKey(Exception):
    def __init__(self, param: str, why: str = "is required") -> None:
        super().__init__(f"{param!r} {why}")


def table_route(
    table: Table,
    *,
    match_info: str | None = None,
    query_param: str | None = None,
    shard_param: str | None = None,
    exact_key: Any = None,
    topic: Topic | None = None,
) -> Callable[[Any], Any]:
    """Make a page answer from the worker that owns its key (`Page`).

    ``topic`` is the table's source topic, needed only when it encodes keys
    unlike the table's changelog (see `.router`).
    """
    given = [
        name
        for name, value in (
            ("match_info", match_info),
            ("query_param", query_param),
            ("shard_param", shard_param),
            ("exact_key", exact_key),
        )
        if value is not None
    ]
    if len(given) != 1:
        raise ImproperlyConfigured(
            "@app.table_route needs exactly one of match_info, query_param, "
            f"shard_param or exact_key (got {given or 'none'})."
        )
    if not hasattr(table, "changelog_topic"):
        raise ImproperlyConfigured(
            f"@app.table_route(table=...) needs a table, got {table!r}."
        )
    spec = TableRoute(table, match_info, query_param, shard_param, exact_key, topic)

    def _decorate(view: Any) -> Any:
        if isinstance(view, Page):
            view.route = spec
        else:
            setattr(view, ROUTE_ATTR, spec)
        return view

    return _decorate


class Page:
    """One ``@app.page``: its route, its view, and the dispatch to it.

    Calling the page (Django calls it with the request and the path's
    arguments) routes to the key's owner when the view has a table route,
    then calls the view in the shape it was written.
    """

    def __init__(self, app: App, path: str, view: Any, name: str | None) -> None:
        self.app = app
        self.path = path
        self.route_path = django_route(path)
        self.view = view
        self.name = name or _view_name(view)
        self.route: TableRoute | None = getattr(view, ROUTE_ATTR, None)
        self._check(view)

    def __repr__(self) -> str:
        return f"<Page {self.route_path!r} -> {self.name}>"

    def _check(self, view: Any) -> None:
        if inspect.isclass(view):
            methods = [m for m in _HTTP_METHODS if hasattr(view, m)]
            if not methods:
                raise ImproperlyConfigured(
                    f"@app.page({self.path!r}): class {view.__qualname__} has no "
                    f"get/post/... method."
                )
            for method in methods:
                if not inspect.iscoroutinefunction(getattr(view, method)):
                    raise ImproperlyConfigured(
                        f"@app.page({self.path!r}): {view.__qualname__}.{method} "
                        "must be 'async def'."
                    )
        elif not inspect.iscoroutinefunction(view):
            raise ImproperlyConfigured(
                f"@app.page({self.path!r}) needs an 'async def' view; "
                f"{_view_name(view)} is not one."
            )

    def as_view(self) -> Callable[..., Any]:
        """The Django view function for the URLconf."""

        async def view(request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
            return await self(request, **kwargs)

        view.__name__ = self.name.rsplit(".", 1)[-1]
        view.__qualname__ = self.name
        return view

    async def __call__(self, request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
        handler, route = self._handler(request)
        if handler is None:
            allowed = [m.upper() for m in _HTTP_METHODS if hasattr(self.view, m)]
            return HttpResponseNotAllowed(allowed)
        if route is not None:
            routed = await self._route(route, request, kwargs)
            if routed is not None:
                return routed
        response = await handler(request, **kwargs)
        if not isinstance(response, HttpResponseBase):
            raise TypeError(
                f"Page {self.name} returned {type(response).__name__}, not an "
                "HttpResponse (return web.json(...) or JsonResponse(...))."
            )
        return response

    def _handler(
        self, request: HttpRequest
    ) -> tuple[Callable[..., Any] | None, TableRoute | None]:
        view = self.view
        if inspect.isclass(view):
            method = getattr(view, (request.method or "GET").lower(), None)
            if method is None:
                return None, None
            instance = view(self.app, Web()) if issubclass(view, View) else view()
            bound = getattr(instance, (request.method or "GET").lower())
            return bound, self.route or getattr(method, ROUTE_ATTR, None)
        if _faust_style(view):
            web = Web()

            async def call(request: HttpRequest, **kwargs: Any) -> Any:
                return await view(web, request, **kwargs)

            return call, self.route or getattr(view, ROUTE_ATTR, None)
        return view, self.route or getattr(view, ROUTE_ATTR, None)

    async def _route(
        self, route: TableRoute, request: HttpRequest, kwargs: dict[str, Any]
    ) -> HttpResponseBase | None:
        """None to answer here; else the owner's answer (or a 503/400)."""
        try:
            key = route.key(request, kwargs)
        except _MissingKey as exc:
            return JsonResponse({"error": f"table key {exc}"}, status=400)
        router = self.app.router
        await router.refresh()
        where = router.route(route.table, key, route.topic)
        if where.local:
            return None
        forwarded = request.headers.get(FORWARDED_HEADER)
        if where.url is None or forwarded:
            reason = where.unavailable or (
                f"partition {where.partition} of table {where.table!r} is not "
                "held here (reassigned while forwarding)"
            )
            return unavailable(reason)
        return await forward(self.app, request, where.url)


def unavailable(reason: str, retry_after: int = RETRY_AFTER) -> HttpResponse:
    """503 with ``Retry-After``: the answer while nobody holds the key."""
    return JsonResponse(
        {"error": "unavailable", "reason": reason},
        status=503,
        headers={"Retry-After": str(retry_after)},
    )


async def forward(app: App, request: HttpRequest, url: str) -> HttpResponse:
    """Send ``request`` to the worker at ``url``; its answer, as ours."""
    headers = [
        (name, value)
        for name, value in request.headers.items()
        if name.lower() not in _HOP_HEADERS
    ]
    headers.append((FORWARDED_HEADER, "1"))
    target = url.rstrip("/") + request.get_full_path()
    try:
        answer = await app.router.http.request(
            request.method or "GET", target, headers=headers, body=request.body
        )
    except WorkerUnreachable as exc:
        app.router.forget()
        logger.info("Forward to %s failed: %s", url, exc)
        return unavailable(f"the owner at {url} did not answer")
    response = HttpResponse(
        answer.body,
        status=answer.status,
        content_type=answer.header("content-type", "application/octet-stream"),
    )
    for name in ("retry-after", "cache-control", "etag", "last-modified", "location"):
        value = answer.header(name)
        if value is not None:
            response[name] = value
    response["X-Faust-Forwarded-To"] = url
    if answer.status == 503:
        app.router.forget()
    return response


def _faust_style(view: Callable[..., Any]) -> bool:
    """Whether a function page takes Faust's ``web`` first (``(web, request)``)."""
    try:
        params = list(inspect.signature(view).parameters)
    except (TypeError, ValueError):
        return False
    return len(params) >= 2 and params[0] in ("web", "self") and params[1] == "request"


def _view_name(view: Any) -> str:
    return f"{getattr(view, '__module__', '?')}.{getattr(view, '__qualname__', view)}"
