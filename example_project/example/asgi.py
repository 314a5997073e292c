"""ASGI entry point of the example project: HTTP and WebSockets.

``manage.py faust worker`` serves this application from the worker's own
event loop (``ASGI_APPLICATION`` in settings), so views, admin, the live
dashboard's WebSockets and the agents share one process. Any ASGI server can
also serve it on its own, e.g. ``uvicorn example.asgi:application``; views
then send through their own producer (live updates need the worker's tables,
so they come only from a worker).

WebSockets go to ``django_faust.consumers``: ``ws/faust/tables/<name>/``
pushes a table's changes. The dashboard's tables are public; any other
table (the admin's live table page) needs a staff user with the
``django_faust.view_table`` permission, hence ``AuthMiddlewareStack``.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")

# Django first: the consumers import models and the app registry.
django_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from django_faust.consumers import TableUpdatesConsumer  # noqa: E402

DASHBOARD_TABLES = ["order-counts", "order-totals", "orders-per-minute"]

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": AuthMiddlewareStack(
            URLRouter(
                [
                    path(
                        "ws/faust/tables/<str:name>/",
                        TableUpdatesConsumer.as_asgi(public=DASHBOARD_TABLES),
                    ),
                ]
            )
        ),
    }
)
