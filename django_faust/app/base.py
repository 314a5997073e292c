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
import datetime
import importlib.util
import inspect
import logging
import socket
import time
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    AbstractSet,
    Any,
    AsyncIterable,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
    overload,
)

from mode import Service, Signal, SyncSignal
from mode.utils.times import Seconds, want_seconds

from ..agents import Agent
from ..agents.replies import ReplyConsumer
from ..channels import Channel
from ..conf import Settings
from ..conf.sources import settings_from_source
from ..dead_letters import DeadLetters
from ..exceptions import DeliveryError, ImproperlyConfigured, TransactionError
from ..sensors import Monitor, SensorDelegate
from ..streams import Stream
from ..tables import GlobalTable, SetGlobalTable, SetTable, Table, TableManager
from ..topics import Topic
from ..transport import by_url
from ..transport.base import ConsumerCallbacks
from ..transport.conductor import Conductor
from ..types import TP
from .crontab import Crontab, want_timezone

if TYPE_CHECKING:
    from ..cli.base import AppCommand
    from ..tables.wrappers import WindowWrapper
    from ..transport.base import Consumer, Producer, Transport
    from ..types import RecordMetadata
    from ..web.pages import Page
    from ..web.router import Router
    from ..windows import Window

__all__ = ["App", "CommandSpec", "TaskSpec"]

logger = logging.getLogger(__name__)

#: The longest single sleep of a crontab job before it looks at the clock again.
CRONTAB_MAX_SLEEP = 60.0


@dataclass
class TaskSpec:
    """A function the app runs once at start (`task`) or periodically.

    Periodically means every ``interval`` seconds (`timer`) or on a cron
    schedule (`crontab`).
    """

    name: str
    fun: Callable[..., Awaitable[Any]]
    interval: float | None = None
    on_leader: bool = False
    crontab: Crontab | None = None


@dataclass
class CommandSpec:
    """A command added to ``manage.py faust`` with ``@app.command``."""

    name: str
    fun: Callable[..., Any]
    options: Sequence[Callable[[Any], Any]] = ()
    help: str = ""
    #: The class of ``self`` for a function taking it (`cli.base.AppCommand`).
    base: type[AppCommand] | None = None


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
    #: Sent when a rebalance begins, before any partition is revoked.
    on_rebalance_start: Signal = Signal()
    #: Sent when the group's new assignment arrived (revocation done),
    #: before its tables are recovered.
    on_rebalance_return: Signal = Signal()
    #: Sent when the rebalance is over: tables recovered, events flow again.
    on_rebalance_complete: Signal = Signal()

    mundane_level = "debug"

    def __init__(
        self,
        id: str | None = None,
        *,
        config_source: Any = None,
        **options: Any,
    ) -> None:
        self._id = id
        self._options = options
        self._config_source = config_source
        self._config_silent = False
        self._conf: Settings | None = None
        self.agents: dict[str, Agent] = {}
        self.tasks: dict[str, TaskSpec] = {}
        self.timers: dict[str, TaskSpec] = {}
        self.commands: dict[str, CommandSpec] = {}
        self.service_classes: dict[str, Any] = {}
        self.tables = TableManager(self)
        self.monitor = Monitor(self)
        #: Observers of the app's moments (`~django_faust.sensors.Sensor`);
        #: the Monitor is the first.
        self.sensors = SensorDelegate(self.monitor)
        if importlib.util.find_spec("prometheus_client") is not None:
            from ..sensors.prometheus import sensor_for

            sensor_for(self)
        #: ``@app.page`` views by path (Django syntax), for ``django_faust.urls``.
        self.pages: dict[str, Page] = {}
        self._router: Router | None = None
        self._commit_started_at: float | None = None
        self._rebalance_started_at: float | None = None
        self.dead_letters = DeadLetters(self)
        self.client_only = False
        #: The event loop the app runs on while started (see ``client.py``).
        self.running_loop: asyncio.AbstractEventLoop | None = None
        #: Called between fetched batches (the worker closes obsolete
        #: database connections there; see `django_faust.orm`).
        self.housekeeping: Callable[[], object] | None = None
        self._transport: Transport | None = None
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self._conductor: Conductor | None = None
        self._replies: ReplyConsumer | None = None
        self._services: list[Service] = []
        self._task_futures: list[asyncio.Future[Any]] = []
        self._shutdown_timeout: float | None = None
        super().__init__()
        for name in (
            "on_before_configured",
            "on_configured",
            "on_after_configured",
            "on_worker_init",
            "on_partitions_assigned",
            "on_partitions_revoked",
            "on_rebalance_start",
            "on_rebalance_return",
            "on_rebalance_complete",
        ):
            signal = getattr(type(self), name)
            setattr(self, name, signal.with_default_sender(self))

    # -- configuration -------------------------------------------------------------

    @property
    def shutdown_timeout(self) -> float:
        """Seconds a stop waits for in-flight work (WORKER_SHUTDOWN_TIMEOUT)."""
        if self._shutdown_timeout is not None:
            return self._shutdown_timeout
        return self.conf.worker_shutdown_timeout

    @shutdown_timeout.setter
    def shutdown_timeout(self, seconds: float) -> None:
        self._shutdown_timeout = seconds

    @property
    def conf(self) -> Settings:
        """The app's `Settings`, read on first use."""
        if self._conf is None:
            self._configure()
        assert self._conf is not None
        return self._conf

    def _configure(self) -> None:
        self.on_before_configured.send()
        options = dict(self._options)
        if self._id is not None:
            options.setdefault("id", self._id)
        if self._config_source is not None:
            conf = settings_from_source(
                self._config_source, options=options, silent=self._config_silent
            )
        else:
            conf = Settings(**options)
        with conf.editable():  # receivers may set conf.broker = ..., as in Faust
            self.on_configured.send(conf)
        self._conf = conf
        self.on_after_configured.send()

    def config_from_object(
        self, obj: Any, *, silent: bool = False, force: bool = False
    ) -> None:
        """Read settings from ``obj``: a module, its dotted path, an object, a dict.

        They are read when first needed (``force=True``: now), and win over
        the keyword arguments given to the App; see
        `django_faust.conf.sources`.  ``silent=True`` ignores a path that
        cannot be imported.
        """
        self._config_source = obj
        self._config_silent = silent
        if force or self._conf is not None:
            self.reconfigure()
            self._configure()

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
            self._transport = by_url(url)(url, self.conf)
        return self._transport

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = self.transport.create_producer()
        return self._producer

    @property
    def consumer(self) -> Consumer:
        if self._consumer is None:
            self._consumer = self.transport.create_consumer(self.consumer_callbacks())
        return self._consumer

    def consumer_callbacks(self) -> ConsumerCallbacks:
        """What the consumer does at commit and rebalance time, for this app.

        The consumer never reaches into the app: these are its only ways in.
        """
        conductor = self.conductor
        sensors = self.sensors
        conductor_deliver = conductor.deliver

        def deliver(batch: Any) -> None:
            sensors.on_batch(batch.tp, len(batch.messages))
            conductor_deliver(batch)

        return ConsumerCallbacks(
            topics=conductor.topic_names,
            deliver=deliver,
            between_batches=self._between_batches,
            passive=lambda: conductor.passive,
            before_commit=self._before_commit,
            commit_transaction=(
                self._commit_transaction if self.exactly_once else None
            ),
            abort_transaction=self._abort_transaction,
            after_commit=self._after_commit,
            on_revoking=conductor.revoke,
            finish_in_hand=self._finish_in_hand,
            on_revoked=lambda tps: self.on_partitions_revoked.send(tps),
            on_assigning=lambda tps, standbys: self.tables.on_partitions_assigned(
                tps, standbys
            ),
            on_assigned=lambda tps: self.on_partitions_assigned.send(tps),
            on_rebalance_start=self._rebalance_started,
            on_rebalance_return=lambda: self.on_rebalance_return.send(),
            on_rebalance_complete=self._rebalance_completed,
            standby_topics=lambda: self.tables.standby_topics(),
            copartitioned=getattr(self, "assignor_copartitioned_groups", None),
        )

    def _between_batches(self) -> None:
        if self.housekeeping is not None:
            self.housekeeping()

    async def _finish_in_hand(self, revoked: set[TP]) -> None:
        """Wait for agents to finish the events of ``revoked`` they hold.

        Up to WORKER_SHUTDOWN_TIMEOUT, as a stop does: the revoke's commit
        then covers them, and no worker processes them again.
        """
        waits = [
            fut
            for agent in self.agents.values()
            for actor in agent.actors
            for fut in actor.stream.in_hand(revoked)
        ]
        if not waits:
            return
        _, pending = await asyncio.wait(waits, timeout=self.shutdown_timeout)
        if pending:
            logger.warning(
                "A rebalance took partitions from %d agent event(s) still being "
                "processed after %.1fs; their next owner processes them again.",
                len(pending),
                self.shutdown_timeout,
            )

    async def _rebalance_started(self) -> None:
        self._rebalance_started_at = time.monotonic()
        self.sensors.on_rebalance_start()
        await self.on_rebalance_start.send()

    async def _rebalance_completed(self) -> None:
        started = self._rebalance_started_at
        self.sensors.on_rebalance_complete(
            time.monotonic() - started if started is not None else 0.0
        )
        if not self.router.local_only:
            # For web processes without a worker (see web.router).
            self._task_futures.append(asyncio.ensure_future(self._publish_routes()))
        await self.on_rebalance_complete.send()

    async def _publish_routes(self) -> None:
        try:
            await self.router.publish()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("Could not publish the group's assignment: %r", exc)

    @property
    def exactly_once(self) -> bool:
        """Whether PROCESSING_GUARANTEE is "exactly_once" (Kafka transactions)."""
        return self.conf.processing_guarantee == "exactly_once"

    @property
    def transactional_id(self) -> str:
        """The worker's transactional id: the app id, the host and web port.

        Stable across restarts of the same worker, so the restarted worker's
        producer fences the one it replaces and aborts its open transaction.
        """
        conf = self.conf
        return f"{conf.id}-{socket.gethostname()}-{conf.web_port}"

    async def _commit_transaction(self, offsets: Mapping[TP, int]) -> None:
        """Exactly-once: commit the producer's transaction with ``offsets``."""
        try:
            await self.producer.commit_transaction(offsets, self.conf.id)
        except Exception as exc:
            error = TransactionError(f"Committing the transaction failed: {exc!r}")
            error.__cause__ = exc
            await self._abort_transaction(error)
            raise error from exc

    async def _abort_transaction(self, exc: BaseException) -> None:
        """Abort the open transaction and stop: a restart replays its events.

        The events since the last commit were processed, and their tables'
        changes and sends are in the aborted transaction: the worker stops
        (rather than go on with tables ahead of their committed offsets),
        and its next start reads from the committed offsets again.
        """
        try:
            await self.producer.abort_transaction()
        except Exception as abort_exc:
            # The broker aborts it anyway when the transaction times out or
            # the restarted producer takes the transactional id over.
            logger.warning("Aborting the transaction failed: %r", abort_exc)
        if not self.crashed:
            logger.critical("%s", exc)
            self._crash(exc)

    def _after_commit(self, offsets: Mapping[TP, int]) -> None:
        """Offsets were committed: tables persist what they cover."""
        self.tables.checkpoint(offsets)
        started = self._commit_started_at
        seconds = time.monotonic() - started if started is not None else 0.0
        self.sensors.on_commit(offsets, seconds)

    async def _before_commit(self) -> None:
        """Make durable what acked events produced, before their offsets.

        Table changes first (the changelog must hold them before the offsets
        of the events that made them are committed), then whatever else is
        still in the producer's buffer.
        """
        self._commit_started_at = time.monotonic()
        consumer = self._consumer
        await self.tables.flush(consumer.committing if consumer is not None else None)
        producer = self._producer
        if producer is not None and producer.started:
            await producer.flush()
            try:
                producer.check_delivered()
            except DeliveryError as exc:
                if not self.crashed:
                    # Stop rather than process on without committing: a
                    # restart replays from the last good commit.
                    logger.critical("%s", exc)
                    self._crash(exc)
                raise

    @property
    def broker_available(self) -> bool:
        """Whether the broker answers (False during an outage; see ready)."""
        transport = self._transport
        return transport is None or transport.broker_available

    @property
    def conductor(self) -> Conductor:
        """Topic name -> subscriptions; ``"name" in app.conductor`` works."""
        if self._conductor is None:
            self._conductor = Conductor(lambda: self._consumer)
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
        isolated_partitions: bool = False,
        help: str | None = None,
        poison_policy: str | None = None,
        **kwargs: Any,
    ) -> Callable[[Callable[..., Any]], Agent]:
        """Decorate an ``async def`` stream processor.

        Without ``channel``, the agent reads its own topic named
        ``<app_id>-<module>.<function>``; extra keyword arguments configure
        that topic (``value_type=Order``, ``partitions=4``, ...). With
        ``isolated_partitions=True`` it runs one actor per assigned
        partition, each reading only that partition. ``poison_policy``
        ('dead_letter', 'skip' or 'stop') overrides POISON_POLICY for the
        events this agent cannot decode or process.
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
                isolated_partitions=isolated_partitions,
                help=help,
                poison_policy=poison_policy,
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
        self, interval: Seconds, on_leader: bool = False, *, name: str | None = None
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

    def crontab(  # type: ignore[override]
        self,
        cron_format: str,
        *,
        timezone: datetime.tzinfo | str | None = None,
        on_leader: bool = False,
        name: str | None = None,
    ) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
        """Run an ``async def`` function on a cron schedule (``"0 9 * * mon-fri"``).

        Times are wall-clock times in ``timezone`` (a tzinfo or a zone
        name), by default the ``TIMEZONE`` setting (UTC unless set). With
        ``on_leader=True`` the job runs only on the worker that leads the
        consumer group. Listed with the timers (``app.timers``).
        """
        zone = (
            None
            if timezone is None
            else want_timezone(timezone, what=f"@app.crontab({cron_format!r})")
        )

        def _decorate(
            f: Callable[..., Awaitable[Any]],
        ) -> Callable[..., Awaitable[Any]]:
            self._check_async(f, "@app.crontab")
            job_name = name or _qualname(f)
            schedule = Crontab(
                cron_format,
                timezone=zone,
                what=f"@app.crontab({cron_format!r}) on {job_name}",
            )
            self.timers[job_name] = TaskSpec(
                job_name, f, on_leader=on_leader, crontab=schedule
            )
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
        base: type[AppCommand] | None = None,
        name: str | None = None,
        help: str | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Add a subcommand to ``manage.py faust``.

        ``options`` are click decorators (``click.option("--n", type=int)``);
        their values are passed as keyword arguments. The function may be
        ``async``. If its first parameter is ``self`` it gets an `AppCommand`
        (``self.app``, ``self.say(...)``), as in Faust; ``base`` is the
        `AppCommand` subclass to use.
        """

        def _decorate(f: Callable[..., Any]) -> Callable[..., Any]:
            command_name = name or f.__name__.replace("_", "-")
            self.commands[command_name] = CommandSpec(
                command_name, f, options, help or inspect.getdoc(f) or "", base
            )
            return f

        return _decorate

    def page(self, path: str, *, name: str | None = None) -> Callable[[Any], Any]:
        """Serve an async view at ``path`` under ``include("django_faust.urls")``.

        ``path`` is in Django's syntax relative to the mount
        (``"count/<str:account>/"``; Faust's ``"/count/{account}/"`` works
        too). The view is ``async def view(request, **kwargs)``, Faust's
        ``async def view(web, request, **kwargs)``, or a class with async
        ``get``/``post``/... methods (see `django_faust.web.pages`).
        """
        from ..web.pages import Page

        def _decorate(view: Any) -> Any:
            page = Page(self, path, view, name)
            self.pages[page.route_path] = page
            return view

        return _decorate

    def table_route(
        self,
        table: Table,
        shard_param: str | None = None,
        *,
        match_info: str | None = None,
        query_param: str | None = None,
        exact_key: Any = None,
        topic: Topic | None = None,
    ) -> Callable[[Any], Any]:
        """Answer a page from the worker that owns its table key.

        The key is the URL argument ``match_info``, the query parameter
        ``query_param`` (or ``shard_param``, which may be given second, as
        in ``app.table_route(table, "account")``), or ``exact_key``. Elsewhere
        the request is forwarded to the owner; while nobody holds the key
        the answer is 503 with ``Retry-After``. ``topic``: the table's source
        topic, when it encodes keys unlike the table (`django_faust.web.router`).
        """
        from ..web.pages import table_route

        return table_route(
            table,
            match_info=match_info,
            query_param=query_param,
            shard_param=shard_param,
            exact_key=exact_key,
            topic=topic,
        )

    @property
    def router(self) -> Router:
        """Which worker owns a table key (``owner``), and its value (``ask``)."""
        if self._router is None:
            from ..web.router import Router

            self._router = Router(self)
        return self._router

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
        if self.exactly_once and not self.producer.transactional:
            self.producer.use_transactions(self.transactional_id)
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

    async def on_start(self) -> None:
        # Sync code in other threads hands its sends to this loop.
        self.running_loop = asyncio.get_running_loop()
        if not self.client_only:
            # Before any agent runs: a failed event must find its topic.
            await self.dead_letters.declare()

    async def on_started(self) -> None:
        if self.client_only:
            return
        # Plain tasks, not add_future(): stopping cancels and awaits them
        # first, before the producer they may send with goes away.
        for spec in self.tasks.values():
            self._task_futures.append(asyncio.ensure_future(self._run_task(spec)))
        for spec in self.timers.values():
            run = self._run_crontab if spec.crontab is not None else self._run_timer
            self._task_futures.append(asyncio.ensure_future(run(spec)))

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

    async def _run_crontab(self, spec: TaskSpec) -> None:
        schedule = spec.crontab
        assert schedule is not None
        zone = self.conf.timezone
        fire_at = schedule.next_run(schedule.clock(), zone).timestamp()
        while not self.should_stop:
            delay = fire_at - schedule.clock()
            if delay > 0:
                # In short steps, so a wall-clock jump (NTP, a suspended
                # machine) delays a run by at most one step.
                await self.sleep(min(delay, CRONTAB_MAX_SLEEP))
                continue
            if not spec.on_leader or self.is_leader():
                try:
                    await self._call(spec)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception(
                        "Crontab job %s raised; it keeps running", spec.name
                    )
            # Strictly after this run, even if the clock is behind it: never
            # twice for one scheduled time; runs missed while busy are skipped.
            after = max(schedule.clock(), fire_at)
            fire_at = schedule.next_run(after, zone).timestamp()

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
        # One deadline for the whole wait (buffered events, then the events
        # in hand): the stop takes about WORKER_SHUTDOWN_TIMEOUT at most,
        # plus the final flush and commit.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.shutdown_timeout
        consumer = self._consumer
        if consumer is not None:
            consumer.stop_fetching()
            # Stopped at a poison event: it will never be acknowledged.
            poisoned = self.dead_letters.stopped_at is not None
            waits = self.conf.stream_wait_empty and consumer.started and not poisoned
            if waits and not await consumer.wait_empty(self.shutdown_timeout):
                logger.warning(
                    "Events fetched before shutdown were still unprocessed "
                    "after %.1fs; they will be processed again after restart.",
                    self.shutdown_timeout,
                )
        left = max(0.1, deadline - loop.time())
        await asyncio.gather(
            *(agent.drain(left) for agent in self.agents.values() if agent.started)
        )
        if consumer is not None and consumer.started:
            try:
                await consumer.commit()
            except Exception as exc:
                logger.error("Final commit failed: %r", exc, exc_info=exc)

    async def commit(self, topics: AbstractSet[str | TP] | None) -> bool:
        """Commit the acked offsets of these topics or partitions now.

        ``topics`` is a set of topic names (every assigned partition of
        each) and `TP` s; ``None`` commits every assigned partition. As the
        periodic commit does, only offsets whose earlier events are all
        acknowledged are committed, after tables and the producer are
        flushed. Returns whether anything was committed (False on a process
        that does not consume, or when nothing new was acked).
        """
        if isinstance(topics, (str, TP)):
            raise TypeError(
                f"app.commit() takes a set of topic names and TPs, got {topics!r}; "
                f"write app.commit({{{topics!r}}})."
            )
        names: set[str] = set()
        tps: set[TP] = set()
        for item in topics or ():
            if isinstance(item, TP):
                tps.add(item)
            elif isinstance(item, str):
                names.add(item)
            else:
                raise TypeError(
                    "app.commit() takes topic names and TPs; "
                    f"got {item!r} ({type(item).__name__})."
                )
        consumer = self._consumer
        if consumer is None or not consumer.started:
            return False
        if topics is None:
            return await consumer.commit()
        tps.update(tp for tp in consumer.trackers if tp.topic in names)
        return await consumer.commit(tps)

    async def on_shutdown(self) -> None:
        self.running_loop = None

    def is_running(self) -> bool:
        return self.started and not self.should_stop
