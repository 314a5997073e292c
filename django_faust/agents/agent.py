"""Agents: async stream processors declared with ``@app.agent``.

An agent owns one subscription to its channel and runs ``concurrency``
actors over it (see ``actor.py`` and ``supervision.py``), or, with
``isolated_partitions=True``, one actor per assigned partition (see
``partitions.py``). Values an agent ``yield``s go to its
sinks (other agents, topics, channels or callables). Events that made the
agent raise are sent to the dead-letter topic, never silently dropped.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from contextlib import asynccontextmanager
from typing import (
    TYPE_CHECKING,
    Any,
    AsyncIterator,
    Callable,
    Iterable,
    Mapping,
)

from mode import Service

from .. import client
from ..channels import Channel, Subscription
from ..dead_letters import check_policy
from ..exceptions import ImproperlyConfigured
from ..streams import Stream, current_event
from .actor import Actor
from .partitions import PartitionedSubscription
from .replies import CORRELATION_ID, REPLY_TO, encode_reply, reply_target
from .supervision import Supervision, supervision_for

if TYPE_CHECKING:
    from ..app.base import App
    from ..testing.agents import AgentTestWrapper
    from ..types import TP

__all__ = ["Agent"]

logger = logging.getLogger(__name__)

AgentFun = Callable[[Stream], Any]


class Agent(Service):
    """An async function that processes a stream, run by the worker."""

    mundane_level = "debug"

    def __init__(
        self,
        fun: AgentFun,
        *,
        app: App,
        name: str,
        channel: Channel | str | None = None,
        concurrency: int = 1,
        sink: Iterable[Any] | None = None,
        on_error: Callable[[Agent, BaseException], Any] | None = None,
        supervisor_strategy: type[Any] | str | None = None,
        isolated_partitions: bool = False,
        help: str | None = None,
        poison_policy: str | None = None,
        **topic_options: Any,
    ) -> None:
        if not inspect.iscoroutinefunction(fun) and not inspect.isasyncgenfunction(fun):
            raise ImproperlyConfigured(
                f"@app.agent needs an 'async def' function; {name} is not one."
            )
        if concurrency < 1:
            raise ImproperlyConfigured(
                f"Agent {name}: concurrency must be at least 1, got {concurrency}."
            )
        if isolated_partitions and concurrency != 1:
            raise ImproperlyConfigured(
                f"Agent {name}: isolated_partitions=True runs one actor per "
                f"partition; it cannot be combined with concurrency={concurrency}."
            )
        if (
            isolated_partitions
            and isinstance(channel, Channel)
            and not channel.is_topic
        ):
            raise ImproperlyConfigured(
                f"Agent {name}: isolated_partitions=True needs a topic; a local "
                "channel has no partitions."
            )
        self.fun = fun
        self.app = app
        #: One actor per assigned partition, each reading only its partition.
        self.isolated_partitions = isolated_partitions
        self.name = name
        self.concurrency = concurrency
        self.sinks: list[Any] = list(sink or [])
        self.on_error = on_error
        #: 'dead_letter', 'skip' or 'stop' for this agent's poison events;
        #: None follows POISON_POLICY.
        self.poison_policy = check_policy(poison_policy, f"Agent {name}")
        self.help = help or inspect.getdoc(fun) or ""
        self._channel_arg = channel
        self._topic_options = topic_options
        self._channel: Channel | None = None
        self.supervisor_strategy = supervisor_strategy
        self._supervision: Supervision | None = None
        if supervisor_strategy is not None:
            # Refuse an unknown strategy where it is written, not at start.
            self._supervision = supervision_for(supervisor_strategy, agent=name)
        self._subscription: Subscription | None = None
        self.actors: list[Actor] = []
        self._partitioned: PartitionedSubscription | None = None
        self._partition_actors: dict[TP, Actor] = {}
        self._retiring: set[Actor] = set()
        self.errors_total = 0
        super().__init__()

    # -- identity ----------------------------------------------------------

    @property
    def label(self) -> str:
        return f"Agent: {self.name}"

    @property
    def shortlabel(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    @property
    def channel(self) -> Channel:
        """The channel or topic this agent reads (created on first use)."""
        if self._channel is None:
            arg = self._channel_arg
            if arg is None:
                topic_name = f"{self.app.conf.id}-{self.name}"
                self._channel = self.app.topic(topic_name, **self._topic_options)
            elif isinstance(arg, str):
                self._channel = self.app.topic(arg, **self._topic_options)
            elif isinstance(arg, Channel):
                if self._topic_options:
                    raise ImproperlyConfigured(
                        f"Agent {self.name}: topic options "
                        f"{sorted(self._topic_options)} only apply when the "
                        "agent makes its own topic."
                    )
                self._channel = arg
            else:
                raise ImproperlyConfigured(
                    f"Agent {self.name}: expected a channel, topic or topic "
                    f"name, got {arg!r}."
                )
        return self._channel

    def __repr__(self) -> str:
        return f"<{self.label}>"

    # -- lifecycle -----------------------------------------------------------

    @property
    def supervision(self) -> Supervision:
        """What a crash of one of this agent's actors does (see ``supervision.py``).

        The agent's own ``supervisor_strategy``, else the ``AGENT_SUPERVISOR``
        setting.
        """
        if self._supervision is None:
            self._supervision = supervision_for(
                self.app.conf.agent_supervisor, agent=self.name
            )
        return self._supervision

    async def on_start(self) -> None:
        self.supervision  # noqa: B018 -- an unknown AGENT_SUPERVISOR fails the start
        channel = self.channel
        if channel.is_topic:
            await channel.declare()  # type: ignore[attr-defined]
        if self.isolated_partitions:
            await self._start_isolated(channel)
            return
        self._subscription = channel.subscribe()
        self.actors = [
            Actor(self, self.new_stream(), i) for i in range(self.concurrency)
        ]
        for actor in self.actors:
            await actor.start()

    def new_stream(self, tp: TP | None = None) -> Stream:
        """A stream for an actor (re)starting.

        It reads the agent's subscription or, with ``isolated_partitions``,
        the queue of partition ``tp``.
        """
        if tp is not None:
            assert self._partitioned is not None
            stream = Stream(
                self.channel, subscription=self._partitioned.for_partition(tp)
            )
        else:
            assert self._subscription is not None
            stream = Stream(self.channel, subscription=self._subscription)
            stream.concurrency = self.concurrency
        stream.agent = self
        return stream

    # -- isolated partitions: an actor per assigned partition ----------------------

    async def _start_isolated(self, channel: Channel) -> None:
        # A local channel was refused in __init__: this is a topic.
        sub = PartitionedSubscription(
            channel, channel.buffer_size(), on_new_partition=self._partition_found
        )
        self._partitioned = self._subscription = sub
        self.app.conductor.add(sub)
        self.app.on_partitions_assigned.connect(self._on_partitions_assigned)
        self.app.on_partitions_revoked.connect(self._on_partitions_revoked)
        # Agents start before the consumer, so every assignment is signalled
        # to us; events of a partition we were not told of still start its
        # actor (`_partition_found`).

    def _is_mine(self, tp: TP) -> bool:
        return tp.topic in self.channel.topic_names

    async def _start_partition(self, tp: TP) -> None:
        if tp in self._partition_actors or self.should_stop:
            return
        actor = Actor(self, self.new_stream(tp), tp.partition, tp=tp)
        self._partition_actors[tp] = actor
        self.actors.append(actor)
        await actor.start()

    def _partition_found(self, tp: TP) -> None:
        # Events of a partition before its assignment signal: start its
        # actor now; it reads the queue the events are waiting in.
        if tp not in self._partition_actors:
            self.add_future(self._start_partition(tp))

    # Receivers of the app's rebalance signals: ``(app, tps, signal=...)``.

    async def _on_partitions_assigned(
        self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any
    ) -> None:
        assigned: set[TP] = args[0]
        for tp in sorted(assigned):
            if self._is_mine(tp):
                await self._start_partition(tp)

    async def _on_partitions_revoked(
        self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any
    ) -> None:
        revoked: set[TP] = args[0]
        for tp in sorted(revoked):
            actor = self._partition_actors.pop(tp, None)
            if actor is not None:
                self.actors.remove(actor)
                self._retiring.add(actor)
                # Not awaited: the rebalance does not wait for the event in
                # hand (its offset was not committed; the new owner redoes it).
                self.add_future(self._retire(actor))

    async def _retire(self, actor: Actor) -> None:
        try:
            await actor.drain(self.app.shutdown_timeout)
            await actor.stop()
        finally:
            self._retiring.discard(actor)

    async def supervise_siblings(self, failed: Actor, supervision: Supervision) -> None:
        """Restart or stop every actor but ``failed``, each after its event.

        Called by an actor that raised, when its `Supervision` reaches the
        whole agent (``OneForAllSupervisor``, ``ForfeitOneForAllSupervisor``).
        """
        timeout = self.app.shutdown_timeout
        if supervision is Supervision.FORFEIT_ALL:
            logger.warning(
                "%s: every actor stops after an error (forfeit).", self.label
            )
        for actor in list(self.actors):  # a rebalance may change the list
            if actor is failed:
                continue
            if supervision is Supervision.FORFEIT_ALL:
                await actor.drain(timeout)
                await actor.stop()
            elif not await actor.restart_after_event(timeout):
                logger.warning(
                    "%s was busy for %.0fs and was not restarted.",
                    actor.label,
                    timeout,
                )

    async def drain(self, timeout: float) -> None:
        """Let every actor finish the event in hand, then stop taking new ones."""
        results = await asyncio.gather(*(a.drain(timeout) for a in self.actors))
        if not all(results):
            logger.warning(
                "%s: an event was still being processed after %.1fs; it "
                "will be processed again after restart.",
                self.label,
                timeout,
            )

    async def on_stop(self) -> None:
        if self._partitioned is not None:
            self.app.on_partitions_assigned.disconnect(self._on_partitions_assigned)
            self.app.on_partitions_revoked.disconnect(self._on_partitions_revoked)
        for actor in [*self.actors, *self._retiring]:
            await actor.stop()
        self._partition_actors.clear()
        if self._subscription is not None:
            self.app.conductor.discard(self._subscription)

    # -- results and errors ----------------------------------------------------

    async def actor_yielded(self, actor: Actor, value: Any) -> None:
        """Deliver a value an actor yielded: the RPC reply, then the sinks."""
        message = actor.stream.current_message
        if message is not None and message.headers:
            target = reply_target(message.headers)
            if target is not None:
                reply_to, correlation_id = target
                producer = await self.app.maybe_start_producer()
                await producer.send(
                    reply_to,
                    correlation_id.encode(),
                    encode_reply(correlation_id, value),
                )
        for sink in self.sinks:
            if isinstance(sink, Agent | Channel):
                await sink.send(value=value)
            elif isinstance(sink, str):
                await self.app.send(sink, value=value)
            else:
                result = sink(value)
                if inspect.isawaitable(result):
                    await result

    async def actor_failed(self, actor: Actor, exc: Exception) -> None:
        """An actor raised: dead-letter its event, count it, call ``on_error``."""
        self.errors_total += 1
        self.app.sensors.on_agent_error(self.name, exc)
        held = actor.stream.take_held()
        if held is not None:
            message, batch, index = held
            moves_on = self.app.dead_letters.failed(self, message, exc)
            if batch is not None and moves_on:
                batch.release(index)
        else:
            logger.error("%s raised %r", self.label, exc, exc_info=exc)
        if self.on_error is not None:
            try:
                result = self.on_error(self, exc)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("on_error callback of %s failed", self.label)

    # -- sending to the agent -----------------------------------------------------

    async def send(
        self,
        *,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        headers: Any = None,
        **kwargs: Any,
    ) -> asyncio.Future[Any]:
        """Send a value to this agent's channel or topic."""
        return await self.channel.send(
            key=key, value=value, partition=partition, headers=headers, **kwargs
        )

    async def cast(
        self,
        value: Any = None,
        *,
        key: Any = None,
        partition: int | None = None,
        headers: Any = None,
    ) -> None:
        """Send a value to the agent without waiting for any reply."""
        await self.send(key=key, value=value, partition=partition, headers=headers)

    async def ask(
        self,
        value: Any = None,
        *,
        key: Any = None,
        partition: int | None = None,
        headers: Any = None,
        correlation_id: str | None = None,
        timeout: float | None = 30.0,
    ) -> Any:
        """Send a value and return what the agent yields for it.

        Works from a worker and from a client-only process. Raises
        `asyncio.TimeoutError` after ``timeout`` seconds (``None``: wait
        forever) when no reply came: the agent did not yield for it.
        """
        if self.app.running_loop is not asyncio.get_running_loop() and (
            owner := await client.target_loop_async(self.app)
        ):
            # Replies are read on the App's loop (an async view elsewhere).
            return await client.run_in_owner(
                owner,
                self.ask(
                    value,
                    key=key,
                    partition=partition,
                    headers=headers,
                    correlation_id=correlation_id,
                    timeout=timeout,
                ),
            )
        if self.app.exactly_once and current_event() is not None:
            # The request goes in this worker's open transaction, visible only
            # at its commit, which waits for this very event to finish.
            raise ImproperlyConfigured(
                f"{self.name}.ask() inside an agent's event cannot work with "
                'PROCESSING_GUARANTEE="exactly_once": the request is seen only '
                "once the worker commits, and the commit waits for this event. "
                "Use cast() or send() and handle the reply in another agent."
            )
        fut = await self._request(value, key, partition, headers, correlation_id)
        return await asyncio.wait_for(fut, timeout)

    async def _request(
        self,
        value: Any,
        key: Any,
        partition: int | None,
        headers: Any,
        correlation_id: str | None,
    ) -> asyncio.Future[Any]:
        replies = await self.app.maybe_start_replies()
        correlation_id = correlation_id or uuid.uuid4().hex
        fut = replies.expect(correlation_id)
        pairs = list(headers.items() if isinstance(headers, Mapping) else headers or ())
        pairs += [
            (REPLY_TO, replies.topic_name.encode()),
            (CORRELATION_ID, correlation_id.encode()),
        ]
        await self.send(key=key, value=value, partition=partition, headers=pairs)
        return fut

    async def map(
        self,
        values: Iterable[Any],
        *,
        key: Any = None,
        timeout: float | None = 30.0,
    ) -> AsyncIterator[Any]:
        """Ask for every value at once; yield the replies in input order."""
        futures = [
            await self._request(value, key, None, None, None) for value in values
        ]
        for fut in futures:
            yield await asyncio.wait_for(fut, timeout)

    async def kvmap(
        self,
        items: Mapping[Any, Any] | Iterable[tuple[Any, Any]],
        *,
        timeout: float | None = 30.0,
    ) -> AsyncIterator[tuple[Any, Any]]:
        """Ask for every ``(key, value)`` at once; yield ``(key, reply)``."""
        pairs = list(items.items() if isinstance(items, Mapping) else items)
        futures = [(k, await self._request(v, k, None, None, None)) for k, v in pairs]
        for k, fut in futures:
            yield k, await asyncio.wait_for(fut, timeout)

    async def join(
        self, values: Iterable[Any], *, key: Any = None, timeout: float | None = 30.0
    ) -> list[Any]:
        """`map`, gathered into a list in input order."""
        if self.app.running_loop is not asyncio.get_running_loop() and (
            owner := await client.target_loop_async(self.app)
        ):
            return await client.run_in_owner(
                owner, self.join(values, key=key, timeout=timeout)
            )
        return [reply async for reply in self.map(values, key=key, timeout=timeout)]

    async def kvjoin(
        self,
        items: Mapping[Any, Any] | Iterable[tuple[Any, Any]],
        *,
        timeout: float | None = 30.0,
    ) -> dict[Any, Any]:
        """`kvmap`, gathered into a dict."""
        if self.app.running_loop is not asyncio.get_running_loop() and (
            owner := await client.target_loop_async(self.app)
        ):
            return await client.run_in_owner(owner, self.kvjoin(items, timeout=timeout))
        return {k: reply async for k, reply in self.kvmap(items, timeout=timeout)}

    # -- testing ------------------------------------------------------------------

    @asynccontextmanager
    async def test_context(self) -> AsyncIterator[AgentTestWrapper]:
        """Run a copy of this agent over a local channel, for unit tests.

        ::

            async with my_agent.test_context() as agent:
                event = await agent.put({"id": 1})
                assert agent.results[event.message.offset] == ...
        """
        from ..testing.agents import AgentTestWrapper

        wrapper = AgentTestWrapper(self)
        await wrapper.start()
        try:
            yield wrapper
        finally:
            await wrapper.stop()

    # -- sending from sync code (see client.py) -----------------------------------

    def ask_sync(
        self,
        value: Any = None,
        *,
        key: Any = None,
        partition: int | None = None,
        headers: Any = None,
        correlation_id: str | None = None,
        timeout: float | None = 30.0,
    ) -> Any:
        """`ask` from sync code: wait (in this thread) for the agent's reply.

        Safe from any thread; from a running event loop it raises
        `SyncCallInAsyncContext` (use ``await agent.ask(...)``). Raises
        `TimeoutError` when no reply came within ``timeout`` seconds.
        """
        return client.call_sync(
            self.app,
            lambda: self.ask(
                value,
                key=key,
                partition=partition,
                headers=headers,
                correlation_id=correlation_id,
                timeout=timeout,
            ),
            # The ask times out on the loop; this only guards a stuck loop.
            timeout=None
            if timeout is None
            else timeout + self.app.conf.client_start_timeout,
            sync_name="Agent.ask_sync",
            async_name="agent.ask",
        )

    def cast_sync(
        self,
        value: Any = None,
        *,
        key: Any = None,
        partition: int | None = None,
        headers: Any = None,
        timeout: client.Timeout = client.SEND_TIMEOUT,
    ) -> None:
        """`cast` from sync code: returns once the broker has the value."""
        self.channel.send_sync(
            key=key, value=value, partition=partition, headers=headers, timeout=timeout
        )

    def cast_on_commit(
        self,
        value: Any = None,
        *,
        key: Any = None,
        partition: int | None = None,
        headers: Any = None,
        using: str | None = None,
    ) -> None:
        """`cast` once the current database transaction commits (never on rollback)."""
        self.channel.send_on_commit(  # type: ignore[attr-defined]
            key=key, value=value, partition=partition, headers=headers, using=using
        )
