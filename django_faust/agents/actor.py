"""Actors: the running instances of an agent, and how they are supervised.

An agent with ``concurrency=n`` has ``n`` actors. Each actor runs the agent
function over its own `Stream`; all of them read the same subscription, so
each event goes to one actor and an actor that is replaced loses nothing.

When the function raises, the actor sends the event it was holding aside (so
nothing is lost and the partition can move on), reports the error, and then
follows the agent's `Supervision` (``supervision.py`` maps mode's strategy
classes, named as in Faust, to what happens).

Restarts are immediate; an actor that keeps failing without consuming
anything (a bug before its ``async for``) backs off, up to a few seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, AsyncIterator

from mode import Service

from .supervision import Supervision

if TYPE_CHECKING:
    from ..streams import Stream
    from ..types import TP
    from .agent import Agent

__all__ = ["Actor"]

logger = logging.getLogger(__name__)

#: Restarts closer together than this count as "failing fast".
FAST_FAILURE = 1.0
MAX_BACKOFF = 5.0


class Actor(Service):
    """One concurrent instance of an agent."""

    mundane_level = "debug"

    def __init__(
        self, agent: Agent, stream: Stream, index: int, *, tp: TP | None = None
    ) -> None:
        self.agent = agent
        self.stream = stream
        self.index = index
        #: The one partition this actor reads (``isolated_partitions=True``).
        self.tp = tp
        self.restarts = 0
        self._task: asyncio.Future[Any] | None = None
        # Hang under the agent in the service tree, so a crash can take the
        # app (and the worker) down.
        super().__init__(beacon=agent.beacon)

    @property
    def label(self) -> str:
        if self.tp is not None:
            return f"Actor {self.agent.name}[{self.tp.topic}/{self.tp.partition}]"
        return f"Actor {self.agent.name}[{self.index}]"

    async def on_start(self) -> None:
        self._task = self.add_future(self._supervise())

    async def _supervise(self) -> None:
        agent = self.agent
        supervision = agent.supervision
        backoff = 0.0
        while True:
            started = time.monotonic()
            try:
                await self._run_once()
                return  # the agent function finished by itself
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                progressed = self.stream.events_total > 0
                await agent.actor_failed(self, exc)
                if agent.app.dead_letters.stopped_at is not None:
                    return  # POISON_POLICY 'stop': the app is stopping
                if supervision is Supervision.CRASH:
                    await self.crash(exc)
                    return
                if supervision.reaches_siblings:
                    agent.add_future(agent.supervise_siblings(self, supervision))
                if not supervision.restarts:
                    logger.warning("%s stopped after an error (forfeit).", self.label)
                    return
                await self._fresh_stream()
                if progressed or time.monotonic() - started > FAST_FAILURE:
                    backoff = 0.0
                else:
                    # Failing before taking a single event: a bug in the
                    # agent's setup. Don't spin.
                    backoff = min(MAX_BACKOFF, max(0.01, backoff * 2))
                    await asyncio.sleep(backoff)

    async def _fresh_stream(self) -> None:
        await self.stream.stop()
        self.stream = self.agent.new_stream(self.tp)
        self.restarts += 1
        logger.info("%s restarted (%d restarts)", self.label, self.restarts)

    async def _run_once(self) -> None:
        agent = self.agent
        result = agent.fun(self.stream)
        if isinstance(result, AsyncIterator):
            async for value in result:
                await agent.actor_yielded(self, value)
        else:
            await result

    async def restart_after_event(self, timeout: float) -> bool:
        """Restart on a fresh stream once the event in hand is finished.

        Returns False (and leaves the actor running) when it was still busy
        with its event after ``timeout``: cancelling it then would strand the
        event, which could never be committed or handed out again.
        """
        if not await self.drain(timeout):
            self.stream._stop_future = None
            return False
        task = self._task
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._fresh_stream()
        self._task = self.add_future(self._supervise())
        return True

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
