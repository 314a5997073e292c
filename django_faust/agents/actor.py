"""Actors: the running instances of an agent.

An agent with ``concurrency=n`` has ``n`` actors. Each actor is a service
running the agent function over its own `Stream`; all of them read the same
subscription, so each event goes to one actor. When the function raises, the
actor sends the event it was holding aside (so nothing is lost and the
partition can move on), reports the error, and crashes; the agent's
supervisor then starts a replacement that continues with the next event.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, AsyncIterator

from mode import Service

if TYPE_CHECKING:
    from ..streams import Stream
    from .agent import Agent

__all__ = ["Actor"]


class Actor(Service):
    """One concurrent instance of an agent."""

    mundane_level = "debug"

    def __init__(self, agent: Agent, stream: Stream, index: int) -> None:
        self.agent = agent
        self.stream = stream
        self.index = index
        self._task: asyncio.Future[Any] | None = None
        # Hang under the agent in the service tree, so a crashing supervisor
        # strategy can take the app (and the worker) down.
        super().__init__(beacon=agent.beacon)

    @property
    def label(self) -> str:
        return f"Actor {self.agent.name}[{self.index}]"

    async def on_start(self) -> None:
        self._task = self.add_future(self._run())

    async def _run(self) -> None:
        agent = self.agent
        try:
            result = agent.fun(self.stream)
            if isinstance(result, AsyncIterator):
                async for value in result:
                    await agent._on_yield(self, value)
            else:
                await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await agent._on_actor_error(self, exc)
            raise

    async def drain(self, timeout: float) -> bool:
        """Let the event in hand finish, then stop taking new ones.

        Returns False when the actor was still busy after ``timeout``.
        """
        waiter = self.stream.request_stop()
        task = self._task
        waits: set[asyncio.Future[Any]] = {waiter}
        if task is not None:
            waits.add(task)
        done, _ = await asyncio.wait(
            waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        return bool(done)

    async def on_stop(self) -> None:
        await self.stream.stop()
