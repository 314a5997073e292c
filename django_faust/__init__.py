"""django-faust: stream processing inside a Django project.

The public API is what this module exports::

    from django_faust import app, Record

    class Order(Record):
        account: str
        amount: int

    orders = app.topic("orders", value_type=Order)

    @app.agent(orders)
    async def process(stream):
        async for order in stream:
            ...

``app`` is the project's App, built from ``settings.FAUST`` on first use.
"""

from __future__ import annotations

from .agents import Agent
from .app import App
from .app import project_app as app
from .channels import Channel
from .conf import Settings
from .events import Event
from .models import Record
from .streams import Stream, current_event, current_message
from .tables import Table
from .topics import Topic
from .types import TP, RecordMetadata
from .worker import Worker

__version__ = "0.1.0"

__all__ = [
    "TP",
    "Agent",
    "App",
    "Channel",
    "Event",
    "Record",
    "RecordMetadata",
    "Settings",
    "Stream",
    "Table",
    "Topic",
    "Worker",
    "__version__",
    "app",
    "current_event",
    "current_message",
]
