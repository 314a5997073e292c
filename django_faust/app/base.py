"""The App: the registry of a project's stream processing, and its service tree.

An `App` is created once per project (`django_faust.app`, built from
``settings.FAUST``) or by hand (``App("id", broker="memory://")``). Its
decorators register agents, tasks, timers, services, commands and tables at
import time; `start()` builds the services that run them, in this order:
producer, conductor, tables, agents, user services, consumer — so every
stream is subscribed before the first fetch. Stopping reverses it, after the
agents have finished their in-flight events and the last offsets are
committed.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from dataclasses import dataclass, field
from typing import (
    TYPE_CHECKING,
    Any,
    AsyncIterable,
    Awaitable,
    Callable,
    Iterable,
    Sequence,
    overload,
)

from mode import Service, Signal, SyncSignal
from mode.utils.times import Seconds, want_seconds

from ..agents import Agent
from ..agents.replies import ReplyConsumer
from ..channels import Channel
from ..conf import Settings
from ..dead_letters import DeadLetters
from ..exceptions import ImproperlyConfigured
from ..sensors import Monitor
from ..streams import Stream
from ..tables import GlobalTable, SetGlobalTable, SetTable, Table, TableManager
from ..topics import Topic
from ..transport import by_url
from ..transport.conductor import Conductor

if TYPE_CHECKING:
    from ..tables.wrappers import WindowWrapper
    from ..transport.base import Consumer, Producer, Transport
    from ..types import RecordMetadata
    from ..windows import Window

__all__ = ["App", "CommandSpec", "TaskSpec"]

logger = logging.getLogger(__name__)


@dataclass
class TaskSpec:
    """A function the app runs once at start (`task`) or periodically (`timer`)."""

    name: str
    fun: Callable[..., Awaitable[Any]]
    interval: float | None = None
    on_leader: bool = False


@dataclass
class CommandSpec:
    """A command added to ``manage.py faust`` with ``@app.command``."""

    name: str
    fun: Callable[..., Any]
    options: Sequence[Callable[[Any], Any]] = ()
    help: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _takes_app(fun: Callable[..., Any]) -> bool:
    """Whether a task/timer function wants the app as its argument."""
    try:
        params = inspect.signature(fun).parameters
    except (TypeError, ValueError):
        return False
    return len(params) >= 1


def _qualname(fun: Any) -> str:
    return f"{fun.__module__}.{fun.__qualname__}"


class App(Service):
    """A django-faust application: agents, topics, tables and their worker."""

    #: Sent before settings are read (``sender`` only).
    on_before_configured: SyncSignal = SyncSignal()
    #: Sent with the `Settings` just read (use ``conf.replace()`` for variants).
    on_configured: SyncSignal = SyncSignal()
    #: Sent once the app is configured.
    on_after_configured: SyncSignal = SyncSignal()
    #: Sent by the worker before it starts the app.
    on_worker_init: SyncSignal = SyncSignal()
    #: Sent with the set of partitions assigned after each rebalance.
    on_partitions_assigned: Signal = Signal()
    #: Sent with the set of partitions revoked at each rebalance.
    on_partitions_revoked: Signal = Signal()

    mundane_level = "debug"

    def __init__(
        self,
        id: str | None = None,
        *,
        config_source: Callable[[], Settings] | None = None,
        **options: Any,
    ) -> None:
        self._id = id
        self._options = options
        self._config_source = config_source
        self._conf: Settings | None = None
        self.agents: dict[str, Agent] = {}
        self.tasks: dict[str, TaskSpec] = {}
        self.timers: dict[str, TaskSpec] = {}
        self.commands: dict[str, CommandSpec] = {}
        self.service_classes: dict[str, Any] = {}
        self.tables = TableManager(self)
        self.monitor = Monitor(self)
        self.dead_letters = DeadLetters(self)
        self.client_only = False
        self._transport: Transport | None = None
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self._conductor: Conductor | None = None
        self._replies: ReplyConsumer | None = None
        self._services: list[Service] = []
        self._task_futures: list[asyncio.Future[Any]] = []
        self.shutdown_timeout = 30.0
        super().__init__()
        for name in (
            "on_before_configured",
            "on_configured",
            "on_after_configured",
            "on_worker_init",
            "on_partitions_assigned",
            "on_partitions_revoked",
        ):
            signal = getattr(type(self), name)
            setattr(self, name, signal.with_default_sender(self))

    # -- configuration -------------------------------------------------------------

    @property
    def conf(self) -> Settings:
        """The app's `Settings`, read on first use."""
        if self._conf is None:
            self._configure()
        assert self._conf is not None
        return self._conf

    def _configure(self) -> None:
        self.on_before_configured.send()
        if self._config_source is not None:
            conf = self._config_source()
        else:
            options = dict(self._options)
            if self._id is not None:
                options.setdefault("id", self._id)
            conf = Settings(**options)
        self.on_configured.send(conf)
        self._conf = conf
        self.on_after_configured.send()

    def reconfigure(self) -> None:
        """Read settings again (after ``override_settings(FAUST=...)``).

        Registered agents, tables and commands are kept; the transport is
        rebuilt from the new settings on next use.
        """
        if self.started and not self.should_stop:
            raise ImproperlyConfigured("Cannot change FAUST settings of a running app.")
        self._conf = None
        self._transport = self._producer = self._consumer = None
        self._replies = None

    @property
    def label(self) -> str:
        return f"App: {self._id or (self._conf.id if self._conf else '?')}"

    def __repr__(self) -> str:
        return f"<{self.label}>"

    # -- the parts, built on first use ---------------------------------------------

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            url = self.conf.broker_url
            self._transport = by_url(url)(url, self)
        return self._transport

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = self.transport.create_producer()
        return self._producer

    @property
    def consumer(self) -> Consumer:
        if self._consumer is None:
            self._consumer = self.transport.create_consumer()
        return self._consumer

    @property
    def conductor(self) -> Conductor:
        """Topic name -> subscriptions; ``"name" in app.conductor`` works."""
        if self._conductor is None:
            self._conductor = Conductor(self)
        return self._conductor

    topics = conductor

    async def maybe_start_producer(self) -> Producer:
        """The producer, started if it was not (client code may send anytime)."""
        producer = self.producer
        if not producer.started:
            await producer.maybe_start()
        return producer

    async def maybe_start_replies(self) -> ReplyConsumer:
        """The reader of this process's reply topic, started on first ask."""
        if self._replies is None:
            self._replies = ReplyConsumer(self)
        replies = self._replies
        if not replies.started:
            if self.started:
                await self.add_runtime_dependency(replies)
            else:
                await replies.start()
        return replies

    # -- declaring things -----------------------------------------------------------

    def topic(self, *topics: str, **kwargs: Any) -> Topic:
        """Describe a topic on the broker (`Topic` arguments as keywords)."""
        return Topic(self, topics=topics, **kwargs)

    def channel(
        self,
        *,
        key_type: Any = None,
        value_type: Any = None,
        maxsize: int | None = None,
    ) -> Channel:
        """A local, in-memory channel (no broker, no serialization)."""
        return Channel(self, key_type=key_type, value_type=value_type, maxsize=maxsize)

    def agent(
        self,
        channel: Channel | str | None = None,
        *,
        name: str | None = None,
        concurrency: int = 1,
        supervisor_strategy: Any = None,
        sink: Iterable[Any] | None = None,
        on_error: Callable[[Agent, BaseException], Any] | None = None,
        help: str | None = None,
        **kwargs: Any,
    ) -> Callable[[Callable[..., Any]], Agent]:
        """Decorate an ``async def`` stream processor.

        Without ``channel``, the agent reads its own topic named
        ``<app_id>-<module>.<function>``; extra keyword arguments configure
        that topic (``value_type=Order``, ``partitions=4``, ...).
        """

        def _decorate(fun: Callable[..., Any]) -> Agent:
            agent_name = name or _qualname(fun)
            agent = Agent(
                fun,
                app=self,
                name=agent_name,
                channel=channel,
                concurrency=concurrency,
                sink=sink,
                on_error=on_error,
                supervisor_strategy=supervisor_strategy,
                help=help,
                **kwargs,
            )
            self.agents[agent_name] = agent
            return agent

        return _decorate

    actor = agent

    def task(  # type: ignore[override]
        self,
        fun: Callable[..., Awaitable[Any]] | None = None,
        *,
        on_leader: bool = False,
        name: str | None = None,
    ) -> Any:
        """Run an ``async def`` function once, when the app has started.

        The function may take the app as its one argument.
        """

        def _decorate(
            f: Callable[..., Awaitable[Any]],
        ) -> Callable[..., Awaitable[Any]]:
            self._check_async(f, "@app.task")
            task_name = name or _qualname(f)
            self.tasks[task_name] = TaskSpec(task_name, f, on_leader=on_leader)
            return f

        return _decorate(fun) if fun is not None else _decorate

    def timer(  # type: ignore[override]
        self, interval: Seconds, *, on_leader: bool = False, name: str | None = None
    ) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
        """Run an ``async def`` function every ``interval`` seconds.

        The first run is one interval after start. With ``on_leader=True`` it
        runs only on the worker that leads the consumer group.
        """
        seconds = want_seconds(interval)
        if seconds <= 0:
            raise ImproperlyConfigured(
                f"@app.timer interval must be > 0, got {interval!r}."
            )

        def _decorate(
            f: Callable[..., Awaitable[Any]],
        ) -> Callable[..., Awaitable[Any]]:
            self._check_async(f, "@app.timer")
            timer_name = name or _qualname(f)
            self.timers[timer_name] = TaskSpec(timer_name, f, seconds, on_leader)
            return f

        return _decorate

    def service(self, cls: Any) -> Any:
        """Start a `mode.Service` (class or instance) with the app."""
        key = (
            _qualname(cls)
            if isinstance(cls, type)
            else f"{_qualname(type(cls))}@{id(cls)}"
        )
        self.service_classes[key] = cls
        return cls

    def command(
        self,
        *options: Callable[[Any], Any],
        name: str | None = None,
        help: str | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Add a subcommand to ``manage.py faust``.

        ``options`` are click decorators (``click.option("--n", type=int)``).
        The function may be ``async``.
        """

        def _decorate(f: Callable[..., Any]) -> Callable[..., Any]:
            command_name = name or f.__name__.replace("_", "-")
            self.commands[command_name] = CommandSpec(
                command_name, f, options, help or inspect.getdoc(f) or ""
            )
            return f

        return _decorate

    @overload
    def Table(
        self,
        name: str,
        *,
        default: Callable[[], Any] | None = None,
        window: None = None,
        **kwargs: Any,
    ) -> Table: ...

    @overload
    def Table(
        self,
        name: str,
        *,
        default: Callable[[], Any] | None = None,
        window: Window,
        **kwargs: Any,
    ) -> WindowWrapper: ...

    def Table(
        self,
        name: str,
        *,
        default: Callable[[], Any] | None = None,
        window: Window | None = None,
        **kwargs: Any,
    ) -> Table | WindowWrapper:
        """A dict-like table, kept per partition of the stream that updates it.

        With ``window`` (``TumblingWindow(60)``...) it returns the windowed
        table's wrapper, as ``app.Table(name).using_window(window)`` does.
        """
        table = self.tables.add(Table(self, name=name, default=default, **kwargs))
        return table if window is None else table.using_window(window)

    def GlobalTable(
        self, name: str, *, default: Callable[[], Any] | None = None, **kwargs: Any
    ) -> GlobalTable:
        """A table every worker holds completely (reads of any key anywhere)."""
        table = GlobalTable(self, name=name, default=default, **kwargs)
        self.tables.add(table)
        return table

    def SetTable(self, name: str, **kwargs: Any) -> SetTable:
        """A table of sets, with ``add(key, member)`` and ``discard(...)``."""
        table = SetTable(self, name=name, **kwargs)
        self.tables.add(table)
        return table

    def SetGlobalTable(self, name: str, **kwargs: Any) -> SetGlobalTable:
        """A global table of sets: every worker holds every key's set."""
        table = SetGlobalTable(self, name=name, **kwargs)
        self.tables.add(table)
        return table

    def stream(
        self,
        channel: Channel | str | Iterable[Any] | AsyncIterable[Any],
        **kwargs: Any,
    ) -> Stream:
        """A stream over a channel, topic, topic name, or any (async) iterable."""
        if isinstance(channel, (Channel, str)):
            return self._resolve_channel(channel).stream(**kwargs)
        source = channel
        local = self.channel()
        stream = local.stream(**kwargs)

        async def feed() -> None:
            if isinstance(source, AsyncIterable):
                async for item in source:
                    await local.send(value=item)
            else:
                for item in source:
                    await local.send(value=item)

        stream._forward = feed
        return stream

    def _resolve_channel(self, channel: Any) -> Channel:
        if isinstance(channel, Channel):
            return channel
        if isinstance(channel, Agent):
            return channel.channel
        if isinstance(channel, str):
            return self.topic(channel)
        raise ImproperlyConfigured(
            f"Expected a channel, topic, agent or topic name, got {channel!r}."
        )

    @staticmethod
    def _check_async(fun: Callable[..., Any], what: str) -> None:
        if not inspect.iscoroutinefunction(fun):
            raise ImproperlyConfigured(
                f"{what} needs an 'async def' function; {_qualname(fun)} is not one."
            )

    # -- sending ------------------------------------------------------------------

    async def send(
        self,
        channel: Channel | Agent | str,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Any = None,
        key_serializer: Any = None,
        value_serializer: Any = None,
        callback: Callable[[asyncio.Future[RecordMetadata]], Any] | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        """Send to a channel, topic, agent or topic name.

        Returns once the message is accepted; await the returned future for
        the broker's `RecordMetadata`.
        """
        target = self._resolve_channel(channel)
        return await target.send(
            key=key,
            value=value,
            partition=partition,
            timestamp=timestamp,
            headers=headers,
            key_serializer=key_serializer,
            value_serializer=value_serializer,
            callback=callback,
        )

    # -- running ---------------------------------------------------------------------

    def is_leader(self) -> bool:
        """Whether this worker leads its consumer group."""
        consumer = self._consumer
        return consumer is not None and consumer.started and consumer.is_leader()

    def on_init_dependencies(self) -> Iterable[Any]:
        if self.client_only:
            return [self.producer]
        self._services = [
            cls() if isinstance(cls, type) else cls
            for cls in self.service_classes.values()
        ]
        return [
            self.producer,
            self.conductor,
            self.tables,
            *self.agents.values(),
            *self._services,
            self.consumer,
        ]

    async def on_started(self) -> None:
        if self.client_only:
            return
        # Plain tasks, not add_future(): stopping cancels and awaits them
        # first, before the producer they may send with goes away.
        for spec in self.tasks.values():
            self._task_futures.append(asyncio.ensure_future(self._run_task(spec)))
        for spec in self.timers.values():
            self._task_futures.append(asyncio.ensure_future(self._run_timer(spec)))

    async def start_client(self) -> None:
        """Start only what sending needs (no agents, no consumer)."""
        self.client_only = True
        await self.maybe_start()

    async def _call(self, spec: TaskSpec) -> None:
        if _takes_app(spec.fun):
            await spec.fun(self)
        else:
            await spec.fun()

    async def _run_task(self, spec: TaskSpec) -> None:
        if spec.on_leader:
            consumer = self._consumer
            if consumer is not None:
                # Joining the group finishes after start: wait to know.
                await consumer.assigned.wait()
            if not self.is_leader():
                return
        try:
            await self._call(spec)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Task %s raised", spec.name)

    async def _run_timer(self, spec: TaskSpec) -> None:
        assert spec.interval is not None
        while not self.should_stop:
            await self.sleep(spec.interval)
            if self.should_stop:
                break
            if spec.on_leader and not self.is_leader():
                continue
            try:
                await self._call(spec)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Timer %s raised; it keeps running", spec.name)

    async def on_stop(self) -> None:
        """Finish in-flight work and commit before the services stop."""
        futures, self._task_futures = self._task_futures, []
        for fut in futures:
            fut.cancel()
        await asyncio.gather(*futures, return_exceptions=True)
        replies = self._replies
        if replies is not None and replies not in self._children:
            await replies.stop()  # started before the app was
        if self.client_only:
            return
        consumer = self._consumer
        if consumer is not None:
            consumer.stop_fetching()
        await asyncio.gather(
            *(
                agent.drain(self.shutdown_timeout)
                for agent in self.agents.values()
                if agent.started
            )
        )
        if consumer is not None and consumer.started:
            try:
                await consumer.commit()
            except Exception as exc:
                logger.error("Final commit failed: %r", exc, exc_info=exc)

    def is_running(self) -> bool:
        return self.started and not self.should_stop
