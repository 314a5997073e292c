"""Fresh, isolated apps for tests."""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from ..app.base import App


def make_app(id: str | None = None, **options: Any) -> App:
    """A new App on its own ``memory://`` broker, not started.

    Each call gets a broker of its own, so tests never see each other's
    topics or offsets.
    """
    options.setdefault("broker", f"memory://test-{uuid.uuid4().hex[:12]}")
    options.setdefault("web_enabled", False)
    options.setdefault("topic_partitions", 4)
    app = App(id or f"test-{uuid.uuid4().hex[:8]}", **options)
    app.shutdown_timeout = 5.0
    return app


@asynccontextmanager
async def running(app: App) -> AsyncIterator[App]:
    """Start ``app`` (agents, consumer, timers) for the block, then stop it."""
    await app.start()
    try:
        yield app
    finally:
        await app.stop()
