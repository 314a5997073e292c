"""Who may see the built-in views: the settings that open them.

The built-in views show what a worker does (statistics, tables, the
group's assignment); in production they are closed unless opened:

- ``WEB_EXPOSE_STATS`` (default: ``DEBUG``): ``stats/``, ``agents/``,
  ``tables/``, ``assignment/``, ``lag/``;
- ``WEB_EXPOSE_METRICS`` (default: ``DEBUG``): ``metrics/``;
- ``WEB_EXPOSE_HEALTH`` (default: True): ``health/live/``, ``health/ready/``;
- ``WEB_EXPOSE_TABLES`` (default: ``DEBUG``): ``tables/<name>/key/`` for
  anyone; a worker's own ``app.router.ask`` of another worker is signed
  with the project's ``SECRET_KEY`` and always let in;
- ``WEB_PERMISSION``: a callable (or its dotted path)
  ``(request, view_name) -> bool`` that, when set, decides for every
  built-in view instead of the settings above (a staff check, a token).

They are declared with the other settings (``django_faust.conf``) and read
here, in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.module_loading import import_string

from ..exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from ..app.base import App

__all__ = ["SECTIONS", "allowed"]

#: Built-in view name -> the setting that opens it.
SECTIONS: dict[str, str] = {
    "stats": "web_expose_stats",
    "agents": "web_expose_stats",
    "tables": "web_expose_stats",
    "assignment": "web_expose_stats",
    "lag": "web_expose_stats",
    "metrics": "web_expose_metrics",
    "health-live": "web_expose_health",
    "health-ready": "web_expose_health",
    "table-key": "web_expose_tables",
}


def setting(app: App, name: str) -> Any:
    """A web setting's value, with ``None`` resolved (see the module docstring)."""
    conf = app.conf
    values = {
        "web_expose_stats": conf.web_expose_stats,
        "web_expose_metrics": conf.web_expose_metrics,
        "web_expose_health": conf.web_expose_health,
        "web_expose_tables": conf.web_expose_tables,
        "web_permission": conf.web_permission,
    }
    value = values[name]
    if value is None and name != "web_permission":
        return bool(settings.DEBUG)
    return value


def permission(app: App) -> Callable[[HttpRequest, str], bool] | None:
    check = setting(app, "web_permission")
    if check is None:
        return None
    if isinstance(check, str):
        try:
            check = import_string(check)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f'FAUST["WEB_PERMISSION"]: cannot import {check!r}: {exc}'
            ) from exc
    if not callable(check):
        raise ImproperlyConfigured(
            f'FAUST["WEB_PERMISSION"] must be a callable (request, view_name) -> '
            f"bool or its dotted path, got {check!r}."
        )
    return check  # type: ignore[no-any-return]


def allowed(app: App, request: HttpRequest, view_name: str) -> bool:
    """Whether ``request`` may see the built-in view ``view_name``."""
    check = permission(app)
    if check is not None:
        return bool(check(request, view_name))
    return bool(setting(app, SECTIONS[view_name]))
