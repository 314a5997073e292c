"""Running one agent in a test: `AgentTestWrapper`, behind ``agent.test_context()``.

The wrapper runs a copy of the agent (same function, sinks, concurrency and
supervisor strategy) over a local channel, so a test can put values in and
look at what the agent yielded and raised, without a broker or a worker.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from ..agents.agent import Agent
from ..events import Batch, Event
from ..streams import current_event

__all__ = ["AgentTestWrapper"]


class AgentTestWrapper:
    """A copy of an agent reading an in-memory channel, for tests.

    `put` sends a value and returns once the agent has finished processing it
    (the event was acknowledged). Values the agent yields are collected in
    `results`, keyed by the offset of the event being processed.
    """

    def __init__(self, agent: Agent) -> None:
        self.original = agent
        self.channel = agent.app.channel()
        self.results: dict[int, Any] = {}
        self.errors: list[BaseException] = []
        self.agent = Agent(
            agent.fun,
            app=agent.app,
            name=agent.name,
            channel=self.channel,
            concurrency=agent.concurrency,
            sink=[self._collect, *agent.sinks],
            on_error=self._on_error,
            supervisor_strategy=agent.supervisor_strategy,
        )

    def _collect(self, value: Any) -> None:
        event = current_event()
        offset = event.message.offset if event is not None else len(self.results)
        self.results[offset] = value

    async def _on_error(self, agent: Agent, exc: BaseException) -> None:
        self.errors.append(exc)
        if self.original.on_error is not None:
            result = self.original.on_error(self.original, exc)
            if inspect.isawaitable(result):
                await result

    async def start(self) -> None:
        await self.agent.start()

    async def stop(self) -> None:
        await self.agent.stop()

    async def put(
        self,
        value: Any = None,
        key: Any = None,
        *,
        headers: Any = None,
        timeout: float = 10.0,
    ) -> Event:
        """Send one value and wait until the agent has processed it."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        message = self.channel._make_message(key, value, None, None, headers)
        batch = Batch(None, [message], on_done=lambda b: done.set_result(None))
        batch.retain(1)
        await self.channel.subscribe().put(batch)
        await asyncio.wait_for(asyncio.shield(done), timeout)
        return Event(self.channel, key, value, message, batch)
