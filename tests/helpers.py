"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
from typing import Any, Callable


async def wait_for(predicate: Callable[[], Any], timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` is true, failing the test after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        await asyncio.sleep(0.005)


def committed(app: Any) -> dict[Any, int]:
    """Offsets the app's consumer group has committed, by partition."""
    broker = app.transport.broker
    return {
        tp: o for (group, tp), o in broker.committed.items() if group == app.conf.id
    }


def log_of(app: Any, topic: str) -> list[Any]:
    """Every message of a memory topic, all partitions, in offset order."""
    return [m for part in app.transport.broker.logs.get(topic, []) for m in part]
