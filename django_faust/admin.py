"""Django admin pages for the stream processor: tables, their keys, workers.

Registered with the default admin site when ``django.contrib.admin`` is
installed (the admin autodiscovers this module). The pages use the admin's
own look, breadcrumbs and permission checks: a user must be active, staff,
and hold ``django_faust.view_table`` (superusers hold every permission).
Nothing is stored in the database; see `django_faust.admin_models` for the
unmanaged models the pages and the permission hang on.

What the pages show comes from `django_faust.admin_data.get_admin_data`:
the app of this process when the worker serves the admin.
"""

from __future__ import annotations

import datetime
import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
)
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from .admin_data import (
    AdminData,
    answer,
    get_admin_data,
    jsonable,
    row_id,
    search_key,
)
from .admin_edits import edits_topic, send_edit
from .admin_models import StreamTable, StreamWorker
from .web import signing

__all__ = ["PERMISSION", "TableAdmin", "WorkerAdmin"]

#: The permission every page of ours asks for.
PERMISSION = "django_faust.view_table"
#: The permission to edit keys (of tables made editable).
CHANGE_PERMISSION = "django_faust.change_table"
#: Keys per page of a table.
PAGE_SIZE = 50


class _ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Shared by our pages: view-only, checked against `PERMISSION`."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        user: Any = request.user
        return bool(user.is_active and user.is_staff and user.has_perm(PERMISSION))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def data(self) -> AdminData:
        return get_admin_data()

    def _context(
        self, request: HttpRequest, title: str, **extra: Any
    ) -> dict[str, Any]:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "app_label": self.model._meta.app_label,
            "has_view_permission": True,
            **extra,
        }

    def _names(self) -> tuple[str, str]:
        meta = self.model._meta
        return meta.app_label, meta.model_name or ""


@admin.register(StreamTable)
class TableAdmin(_ReadOnlyAdmin):
    """Every table; one table's keys, paginated, with search and windows."""

    def get_urls(self) -> list[URLPattern]:
        app_label, model = self._names()
        wrap = self.admin_site.admin_view
        return [
            path(
                "", wrap(self.changelist_view), name=f"{app_label}_{model}_changelist"
            ),
            # Not behind the admin's login: answers only signed questions of
            # a web process (`admin_data.RemoteAdminData`).
            path(
                "_data/<str:question>/",
                self.data_view,
                name=f"{app_label}_{model}_data",
            ),
            path(
                "<path:name>/edit/",
                wrap(self.edit_view),
                name=f"{app_label}_{model}_edit",
            ),
            path(
                "<path:name>/", wrap(self.table_view), name=f"{app_label}_{model}_table"
            ),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = self._context(request, "Tables", tables=self.data().tables())
        return TemplateResponse(request, "admin/django_faust/tables.html", context)

    def table_view(self, request: HttpRequest, name: str) -> HttpResponse:
        data = self.data()
        context = self._context(request, f"Table {name}")
        try:
            info = data.table(name)
        except LookupError as exc:
            raise Http404(str(exc)) from None
        search = request.GET.get("q", "").strip()
        exact = request.GET.get("match", "prefix") == "exact"
        cursor = request.GET.get("cursor") or None
        windows = data.windows(name)
        window = _window(request.GET.get("window"), windows)
        error = None
        try:
            page = data.page(
                name,
                cursor=cursor,
                search=search,
                exact=exact,
                window=window,
                limit=PAGE_SIZE,
            )
        except ValueError as exc:
            error = str(exc)
            page = None
        context.update(
            table=info,
            page=page,
            rows=[_row(entry) for entry in page.entries] if page else [],
            error=error,
            search=search,
            exact=exact,
            windows=[(start, _when(start)) for start in windows],
            window=window,
            fields=info.value_fields,
            can_edit=self._editable(request, name) is not None,
            next_query=_query(request, cursor=page.next_cursor)
            if page and page.next_cursor
            else None,
            first_query=_query(request, cursor=None) if cursor else None,
        )
        return TemplateResponse(request, "admin/django_faust/table.html", context)

    def _editable(self, request: HttpRequest, name: str) -> Any:
        """The table if it is editable and the user may edit it, else None."""
        user: Any = request.user
        if not (self.has_view_permission(request) and user.has_perm(CHANGE_PERMISSION)):
            return None
        app = getattr(self.data(), "app", None)
        table = app.tables.get(name) if app is not None else None
        if table is None or edits_topic(table) is None:
            return None
        return table

    def edit_view(self, request: HttpRequest, name: str) -> HttpResponse:
        """Set or delete a key: sent as an event the owning worker applies."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        table = self._editable(request, name)
        if table is None:
            raise PermissionDenied
        text = request.POST.get("key", "").strip()
        delete = "delete" in request.POST
        back = reverse("admin:django_faust_streamtable_table", args=[name])
        try:
            if not text:
                raise ValueError("give the key to change")
            key, _ = search_key(table, text, exact=True)
            value = None
            if not delete:
                try:
                    value = json.loads(request.POST.get("value", ""))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"the value is not JSON ({exc})") from None
            send_edit(table, key, value, delete=delete)
        except (ValueError, TypeError) as exc:
            messages.error(request, f"Table {name}: {exc}")
            return HttpResponseRedirect(back)
        action = "deletion" if delete else "new value"
        messages.success(
            request,
            f"Sent the {action} of key {text!r}; the worker that owns it "
            "applies it in a moment.",
        )
        return HttpResponseRedirect(
            f"{back}?{urlencode({'q': text, 'match': 'exact'})}"
        )

    def data_view(self, request: HttpRequest, question: str) -> HttpResponse:
        """A worker's answer to a web process's signed question, as JSON."""
        if not signing.verify(
            request.get_full_path(),
            request.headers.get(signing.TIMESTAMP_HEADER),
            request.headers.get(signing.SIGNATURE_HEADER),
        ):
            raise PermissionDenied
        try:
            result = answer(self.data(), question, request.GET)
        except LookupError as exc:
            return JsonResponse({"error": str(exc)}, status=404)
        except (KeyError, ValueError) as exc:
            return JsonResponse({"error": str(exc)}, status=400)
        return JsonResponse(result, safe=False)


@admin.register(StreamWorker)
class WorkerAdmin(_ReadOnlyAdmin):
    """The workers of the group: assignment, lag, rate, commits, recovery."""

    def get_urls(self) -> list[URLPattern]:
        app_label, model = self._names()
        wrap = self.admin_site.admin_view
        return [
            path(
                "", wrap(self.changelist_view), name=f"{app_label}_{model}_changelist"
            ),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = self._context(request, "Workers", workers=self.data().workers())
        return TemplateResponse(request, "admin/django_faust/workers.html", context)


def _window(raw: str | None, choices: list[float]) -> float | None:
    """The selected window start: the ``window`` parameter, else the latest."""
    if raw == "all":
        return None
    if raw:
        try:
            return float(raw)
        except ValueError:
            raise Http404(f"window {raw!r} is not a window start") from None
    return choices[0] if choices else None


def _when(start: float) -> str:
    return datetime.datetime.fromtimestamp(start, datetime.UTC).strftime(
        "%Y-%m-%d %H:%M:%S UTC"
    )


def _row(entry: Any) -> dict[str, Any]:
    return {
        "key": row_id(entry.key, entry.window_start),
        "key_text": entry.key
        if isinstance(entry.key, str)
        else json.dumps(jsonable(entry.key)),
        "value": json.dumps(jsonable(entry.value)),
        "fields": entry.fields,
        "partition": entry.partition,
        "window": _when(entry.window_start) if entry.window_start is not None else None,
    }


def _query(request: HttpRequest, **changes: Any) -> str:
    query = request.GET.copy()
    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return "?" + query.urlencode()
