"""The declarations: `Settings`, one `Setting` per FAUST key.

Every setting is declared exactly once, as a `Setting` in the body of
`Settings`: its accepted types, default, help text and validator live
together.  Validation (`find_problems`), the defaults, the reference
documentation (`reference_rst`), the `SETTINGS` table used by the docs and the
command line, and the typed, read-only attributes of `Settings` are all
derived from those declarations, so adding a setting is a one-place change.
"""

from __future__ import annotations

import collections.abc
import contextlib
import datetime
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from django_faust.exceptions import ImproperlyConfigured
from django_faust.utils.urls import ParsedURL, parse_url

from .django import faust_settings
from .problems import Given, Problem, Style, analyse, describe
from .schemes import BROKER_SCHEMES, STORE_SCHEMES
from .setting import Setting
from .validators import (
    at_least,
    between,
    broker_value,
    credentials,
    datadir_template,
    dead_letter_topic,
    default_client_id,
    fill_credentials,
    host_name,
    import_path,
    module_names,
    non_empty,
    non_negative_seconds,
    positive_seconds,
    to_seconds,
    topic_name,
    url_checker,
    versioned_id,
    zone_found,
    zone_name,
)

__all__ = ["SETTINGS", "Settings", "find_problems", "reference_rst"]

_UTC = datetime.UTC


def _seconds(default: float, help: str, *, allow_zero: bool = False) -> Setting[float]:
    """Declare a duration: int, float or timedelta, stored as float seconds."""
    return Setting(
        (int, float, datetime.timedelta),
        default=default,
        help=help,
        normalize=to_seconds,
        validators=(non_negative_seconds if allow_zero else positive_seconds,),
        expects="a number of seconds (int, float or timedelta)",
    )


class Settings:
    """The effective, validated configuration of one django-faust app.

    Read settings as lower-case attributes (``settings.topic_partitions``);
    they cannot be assigned to.  Build one with ``Settings(**kwargs)``
    (lower-case names, ``id`` for the app id), `from_mapping` (upper-case
    keys) or `from_django`.  All of them raise
    :exc:`~django_faust.exceptions.ImproperlyConfigured` listing every problem
    at once, so a broken FAUST dict is fixed in one round trip.

    ``base_dir`` anchors a relative DATADIR; `from_django` passes Django's
    ``BASE_DIR``.  Without it, relative paths are taken from the working
    directory at the time they are used.
    """

    # Each attribute below is one setting; its upper-case name is its key in
    # the FAUST dict.  Keep them grouped as in the reference documentation.

    app_id: Setting[str] = Setting(
        str,
        default="django-faust",
        default_doc="the project package (from ROOT_URLCONF) under Django, "
        "else 'django-faust'",
        help="Name shared by all workers of the app. With VERSION it makes the "
        "app's id, which is the Kafka consumer group and prefixes the topics "
        "the app names itself, so changing it starts afresh.",
        validators=(topic_name,),
    )
    version: Setting[int] = Setting(
        int,
        default=1,
        help="Version of the app. Above 1 the app's id is "
        "'<APP_ID>-v<VERSION>' (as in Faust), so bumping it gives a new "
        "consumer group that reads its topics from the start, new internal "
        "topics (table changelogs, repartition, agent and reply topics, the "
        "default DEAD_LETTER_TOPIC) and a new data directory; topics named "
        "in code are not renamed.",
        validators=(at_least(1),),
    )

    broker: Setting[str | list[str]] = Setting(
        (str, list, tuple),
        items=str,
        default="memory://",
        help="Transport URL, or a list of them: 'memory://' for tests and "
        "development, 'kafka://host:port;host:port' for Kafka (the port "
        "defaults to 9092).",
        normalize=broker_value,
        validators=(url_checker(BROKER_SCHEMES, "broker"),),
    )
    broker_client_id: Setting[str] = Setting(
        str,
        default_factory=default_client_id,
        default_doc="'django-faust-<django-faust version>'",
        help="Client id sent to the broker, identifying this software in the "
        "broker's logs and metrics.",
        validators=(non_empty,),
    )
    broker_credentials: Setting[dict[str, str] | None] = Setting(
        Mapping,
        nullable=True,
        default=None,
        help="TLS/SASL options as a dict with keys SECURITY_PROTOCOL (SASL_SSL, "
        "SASL_PLAINTEXT, SSL or PLAINTEXT; defaults to SASL_SSL when USERNAME "
        "is given, else SSL), SASL_MECHANISM (PLAIN, SCRAM-SHA-256 or "
        "SCRAM-SHA-512; default PLAIN), USERNAME, PASSWORD, and the CAFILE, "
        "CERTFILE and KEYFILE paths.",
        normalize=dict,
        validators=(credentials,),
        resolve=fill_credentials,
    )
    broker_session_timeout: Setting[float] = _seconds(
        10.0,
        "If the broker hears no heartbeat from a worker for this long, it "
        "declares the worker dead and gives its partitions to others.",
    )
    broker_heartbeat_interval: Setting[float] = _seconds(
        3.0,
        "How often a worker tells the broker it is alive; must be less than "
        "BROKER_SESSION_TIMEOUT.",
    )
    broker_request_timeout: Setting[float] = _seconds(
        30.0,
        "How long to wait for the broker to answer a request before failing it.",
    )
    broker_max_poll_interval: Setting[float] = _seconds(
        1000.0,
        "Longest pause allowed between two fetches before the broker considers "
        "the worker stuck and rebalances; raise it for agents that block.",
    )
    broker_max_poll_records: Setting[int | None] = Setting(
        int,
        nullable=True,
        default=None,
        help="Most records returned by one fetch; None lets the client decide.",
        validators=(at_least(1),),
    )
    broker_commit_every: Setting[int] = Setting(
        int,
        default=10000,
        help="Commit offsets as soon as this many messages were processed "
        "since the last commit (counted as fetched batches finish), besides "
        "every COMMIT_INTERVAL seconds.",
        validators=(at_least(1),),
    )
    commit_interval: Setting[float] = _seconds(
        2.8,
        "How often the offsets of fully processed (acked) messages are "
        "committed to the broker.",
    )

    store: Setting[str] = Setting(
        str,
        default="memory://",
        help="Table storage: 'memory://' (development; tables are rebuilt "
        "from their changelog at every start) or 'rocksdb://' (production; "
        "needs the rocksdb extra).",
        validators=(url_checker(STORE_SCHEMES, "store"),),
    )
    datadir: Setting[str] = Setting(
        (str, os.PathLike),
        default="{appid}-data",
        help="Directory for local state such as RocksDB tables; '{appid}' is "
        "replaced by APP_ID, and a relative path is taken from Django's "
        "BASE_DIR (or the working directory).",
        normalize=os.fspath,
        validators=(non_empty, datadir_template),
        expects="str or path",
    )

    topic_partitions: Setting[int] = Setting(
        int,
        default=8,
        help="Partitions of topics the app creates, table changelogs included; "
        "it caps how many workers can share the load of one topic.",
        validators=(at_least(1),),
    )
    topic_replication_factor: Setting[int] = Setting(
        int,
        default=1,
        help="Copies the broker keeps of each topic the app creates; use 3 on "
        "production Kafka clusters.",
        validators=(at_least(1),),
    )
    topic_allow_declare: Setting[bool] = Setting(
        bool,
        default=True,
        help="Let the app create the topics it needs (its own topics, such as "
        "table changelogs and the dead letter topic, and missing topics it "
        "reads). Turn it off when topics are managed outside the app: then "
        "every topic must exist before the worker starts, and a missing one "
        "stops it with an error naming the topic. Keep it on with memory://, "
        "whose topics only live as long as the process.",
    )

    key_serializer: Setting[str | None] = Setting(
        str,
        nullable=True,
        default="raw",
        help="Codec for message keys when a topic does not name one; None "
        "passes keys through unchanged.",
        validators=(non_empty,),
    )
    value_serializer: Setting[str] = Setting(
        str,
        default="json",
        help="Codec for message values when a topic does not name one.",
        validators=(non_empty,),
    )
    processing_guarantee: Setting[str] = Setting(
        str,
        default="at_least_once",
        choices=("at_least_once", "exactly_once"),
        help="'at_least_once': nothing is committed before it is processed, "
        "and a message may be processed again after a crash; tables still "
        "count it once (their changelog records name their source event, "
        "and recovery skips those whose offsets were never committed: see "
        '"Exact tables" in docs/tables.rst), but what agents send to '
        "other topics may be sent twice. 'exactly_once': a worker's sends, "
        "changelog records and consumed offsets go in one Kafka transaction "
        "per commit (every COMMIT_INTERVAL, after the events in hand are "
        "finished), and every internal reader uses read_committed, so a "
        "crash aborts them together and readers with "
        "isolation_level='read_committed' see each result once. Needs a "
        'broker with transactions (Kafka 0.11+); see "Exactly-once" in '
        "docs/guarantees.rst for what it covers and what it does not.",
    )

    poison_policy: Setting[str] = Setting(
        str,
        default="dead_letter",
        choices=("dead_letter", "skip", "stop"),
        help="What happens to an event whose key or value cannot be decoded, "
        "whose value fails its Record's validation, or that makes an agent "
        "raise: 'dead_letter' logs it and sends its original bytes to "
        "DEAD_LETTER_TOPIC with the error in headers, 'skip' only logs it; "
        "either way its partition moves on. 'stop' logs it and stops the "
        "worker with an error, committing nothing at or past the event, so "
        "it is read again once the cause is fixed. An agent can choose "
        "its own with @app.agent(poison_policy=...).",
    )
    worker_shutdown_timeout: Setting[float] = _seconds(
        30.0,
        "Seconds a stopping worker (SIGTERM, SIGINT) gives agents to finish "
        "the events in hand, and the producer and table changelogs to "
        "flush, before the final commit and leaving the group; an event "
        "still in hand then is processed again after the restart. "
        "'faust worker --shutdown-timeout' overrides it. A rebalance gives "
        "agents as long to finish the events in hand of the partitions it "
        "takes away, before their last commit.",
    )

    stream_buffer_maxsize: Setting[int] = Setting(
        int,
        default=4096,
        help="Events buffered per stream before the consumer pauses to let the "
        "agent catch up.",
        validators=(at_least(1),),
    )
    stream_wait_empty: Setting[bool] = Setting(
        bool,
        default=False,
        help="At shutdown, finish processing every event already fetched "
        "(waiting up to the worker's shutdown timeout) before the final "
        "commit, so none is processed again after the restart; off, only the "
        "event each agent has in hand is finished. A stream left with an "
        "unacknowledged event (noack, or a loop that returned) makes shutdown "
        "wait the whole timeout, hence off by default (Faust: on). At a "
        "rebalance the buffered events of revoked partitions are dropped "
        "either way, and read again by their new owner.",
    )

    consumer_auto_offset_reset: Setting[str] = Setting(
        str,
        default="earliest",
        choices=("earliest", "latest"),
        help="Where to start reading a partition that has no committed offset.",
    )
    consumer_max_fetch_size: Setting[int] = Setting(
        int,
        default=1024**2,
        help="Most bytes fetched from one partition per request.",
        validators=(at_least(1),),
    )

    producer_linger: Setting[float] = _seconds(
        0.005,
        "How long the producer waits for more messages to batch together "
        "before sending.",
        allow_zero=True,
    )
    producer_max_batch_size: Setting[int] = Setting(
        int,
        default=16384,
        help="Most bytes in one batch of messages for one partition.",
        validators=(at_least(1),),
    )
    producer_max_request_size: Setting[int] = Setting(
        int,
        default=1_000_000,
        help="Most bytes in one produce request, which also caps the size of a "
        "single message.",
        validators=(at_least(1),),
    )
    producer_acks: Setting[int] = Setting(
        (int, str),
        default=-1,
        choices=(-1, 0, 1, "all"),
        help="Acknowledgements a send waits for: 0 none, 1 the partition "
        "leader, -1 (or 'all') every in-sync replica.",
        normalize=lambda value: -1 if value == "all" else value,
        expects="int (-1, 0 or 1) or 'all'",
    )
    producer_compression_type: Setting[str | None] = Setting(
        str,
        nullable=True,
        default=None,
        choices=("gzip", "snappy", "lz4", "zstd"),
        help="Compression of produced batches: None, 'gzip', 'snappy', 'lz4' "
        "or 'zstd'.",
    )
    producer_send_timeout: Setting[float] = _seconds(
        30.0,
        "Default seconds a send from sync code (topic.send_sync, "
        "agent.cast_sync, channel.send_sync) waits for the broker's "
        "acknowledgement before raising TimeoutError; a call's timeout= "
        "overrides it.",
    )
    client_start_timeout: Setting[float] = _seconds(
        60.0,
        "In a process without a worker (web, shell, Celery), seconds the first "
        "send from sync code waits for the client to start and connect to the "
        "broker.",
    )
    client_stop_timeout: Setting[float] = _seconds(
        30.0,
        "In a process without a worker, seconds the client is given at exit "
        "(or SIGTERM) to send the messages it still holds before stopping.",
    )

    table_standby_replicas: Setting[int] = Setting(
        int,
        default=1,
        help="Standby copies of each table partition kept warm on other workers "
        "so that failover does not wait for a full recovery.",
        validators=(at_least(0),),
    )
    table_cleanup_interval: Setting[float] = _seconds(
        30.0,
        "How often expired windows are removed from windowed tables.",
    )

    agent_supervisor: Setting[str | type] = Setting(
        (str, type),
        default="mode.OneForOneSupervisor",
        help="How crashed agent instances are restarted: a supervisor class or "
        "its dotted import path.",
        validators=(import_path,),
        expects="a dotted import path (str) or a class",
    )
    autodiscover: Setting[bool] = Setting(
        bool,
        default=True,
        help="At startup, import AUTODISCOVER_MODULES from every app in "
        "INSTALLED_APPS so that their agents, tables and views register.",
    )
    autodiscover_modules: Setting[list[str]] = Setting(
        (list, tuple),
        items=str,
        default_factory=lambda: ["agents", "tables", "views"],
        default_doc="['agents', 'tables', 'views']",
        help="Submodules looked for in each installed app when AUTODISCOVER is on.",
        normalize=list,
        validators=(module_names,),
    )

    web_enabled: Setting[bool] = Setting(
        bool,
        default=True,
        help="Run the worker's web server, which serves web views and lets "
        "workers query each other's tables.",
    )
    web_port: Setting[int] = Setting(
        int,
        default=6066,
        help="Port the worker's web server listens on.",
        validators=(between(1, 65535),),
    )
    web_bind: Setting[str] = Setting(
        str,
        default="127.0.0.1",
        help="Address the web server binds to; '0.0.0.0' accepts connections "
        "from other hosts.",
        validators=(host_name,),
    )
    web_host: Setting[str] = Setting(
        str,
        default="localhost",
        help="Host name other workers use to reach this worker's web server.",
        validators=(host_name,),
    )

    web_expose_stats: Setting[bool | None] = Setting(
        bool,
        nullable=True,
        default=None,
        default_doc="None (follows DEBUG)",
        help="Serve the built-in views stats/, agents/, tables/, assignment/ and "
        "lag/ under include('django_faust.urls'); None follows Django's DEBUG, "
        "so they are closed in production unless opened here.",
    )
    web_expose_metrics: Setting[bool | None] = Setting(
        bool,
        nullable=True,
        default=None,
        default_doc="None (follows DEBUG)",
        help="Serve metrics/ (Prometheus text format); None follows DEBUG.",
    )
    web_expose_health: Setting[bool] = Setting(
        bool,
        default=True,
        help="Serve health/live/ and health/ready/ (for Kubernetes probes).",
    )
    web_expose_tables: Setting[bool | None] = Setting(
        bool,
        nullable=True,
        default=None,
        default_doc="None (follows DEBUG)",
        help="Serve tables/<name>/key/ to anyone; None follows DEBUG. A worker's "
        "app.router.ask of another worker is signed with SECRET_KEY and is "
        "always let in.",
    )
    web_permission: Setting[Any] = Setting(
        (str, collections.abc.Callable),  # type: ignore[arg-type]  # an ABC
        nullable=True,
        default=None,
        help="A callable (request, view_name) -> bool, or its dotted path, that "
        "decides for every built-in view instead of the WEB_EXPOSE_* settings "
        "(a staff check, a token).",
        validators=(import_path,),
        expects="a callable or its dotted import path (str)",
    )
    timezone: Setting[datetime.tzinfo] = Setting(
        (str, datetime.tzinfo),
        nullable=True,
        default=None,
        default_doc="None (UTC)",
        help="Time zone of crontab schedules (timers run at intervals and "
        "windows on UTC timestamps, so neither uses it): a zone name such as "
        "'Europe/Oslo' or a tzinfo; None means UTC.",
        normalize=zone_name,
        validators=(zone_found,),
        resolve=lambda value, values: _UTC if value is None else value,
        expects="a time zone name (str), tzinfo or None",
    )
    dead_letter_topic: Setting[str] = Setting(
        str,
        nullable=True,
        default=None,
        default_doc="None ('<id>-dead-letters', see VERSION)",
        help="Topic receiving events that could not be decoded or that an "
        "agent failed to process; None means '<id>-dead-letters', where the "
        "id is APP_ID, or '<APP_ID>-v<VERSION>' above VERSION 1. The app "
        "creates it at start like its other internal topics.",
        validators=(topic_name,),
        resolve=dead_letter_topic,
    )

    __slots__ = (
        "_broker_urls",
        "_editable",
        "_given",
        "_store_url",
        "_values",
        "base_dir",
    )

    _values: dict[str, Any]
    _given: dict[str, Any]
    base_dir: Path | None
    _broker_urls: list[ParsedURL]
    _store_url: ParsedURL
    _editable: bool

    def __init__(
        self, *, base_dir: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> None:
        self._setup(kwargs, _KEYWORDS, base_dir)

    @classmethod
    def from_mapping(
        cls,
        mapping: Mapping[str, Any],
        *,
        base_dir: str | os.PathLike[str] | None = None,
    ) -> Settings:
        """Build settings from a dict with upper-case keys, like FAUST."""
        settings = cls.__new__(cls)
        settings._setup(mapping, _FAUST, base_dir)
        return settings

    @classmethod
    def from_django(cls) -> Settings:
        """Build settings from ``django.conf.settings.FAUST``.

        It is read anew on every call, so ``override_settings(FAUST=...)``
        takes effect; cache the result yourself if you need to.  A missing
        FAUST (or ``None``) means all defaults, and APP_ID defaults to
        `default_app_id`.
        """
        faust, base_dir = faust_settings()
        return cls.from_mapping(faust, base_dir=base_dir)

    def _setup(
        self,
        given: Any,
        style: Style,
        base_dir: str | os.PathLike[str] | None,
    ) -> None:
        problems, cleaned = analyse(given, style)
        if problems:
            raise ImproperlyConfigured(describe(problems))
        values = {}
        for key, setting in SETTINGS.items():
            if key in cleaned:
                values[setting.attr] = cleaned[key]
            else:
                values[setting.attr] = setting.clean(setting.get_default())[1]
        for setting in SETTINGS.values():
            if setting.resolve is not None:
                values[setting.attr] = setting.resolve(values[setting.attr], values)
        broker = values["broker"]
        init = object.__setattr__
        init(self, "_values", values)
        init(self, "_given", cleaned)
        init(self, "base_dir", Path(base_dir) if base_dir is not None else None)
        init(
            self,
            "_broker_urls",
            [
                parse_url(url)
                for url in ([broker] if isinstance(broker, str) else broker)
            ],
        )
        init(self, "_store_url", parse_url(values["store"]))
        init(self, "_editable", False)

    def __setattr__(self, name: str, value: Any) -> None:
        if not self._editable:
            raise AttributeError(
                f"Settings are read-only; set them in an on_configured "
                f"receiver (conf.{name} = ...), or use "
                f"settings.replace({name}=...) for a changed copy"
            )
        # Validated at once, so a bad value is reported at the assignment.
        changed = self.replace(**{name: value})
        for slot in self.__slots__:
            if slot != "_editable":
                object.__setattr__(self, slot, getattr(changed, slot))

    @contextlib.contextmanager
    def editable(self) -> Iterator[Settings]:
        """Allow ``conf.<name> = value`` inside the block.

        The App opens its settings this way while it sends ``on_configured``,
        so a receiver can change them as in Faust (``conf.broker = ...``).
        Each assignment is validated like a keyword argument (lower-case
        names) and raises `ImproperlyConfigured` at once if it is bad; the
        settings are read-only again when the block ends.
        """
        previous = self._editable
        object.__setattr__(self, "_editable", True)
        try:
            yield self
        finally:
            object.__setattr__(self, "_editable", previous)

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Settings are read-only")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_from_mapping, (dict(self._given), self.base_dir))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Settings):
            return NotImplemented
        return (self._values, self.base_dir) == (other._values, other.base_dir)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Settings app_id={self.app_id!r} broker={self.broker!r}>"

    @property
    def id(self) -> str:
        """The app's id (``app.conf.id``, as in Faust): APP_ID and VERSION.

        It is APP_ID itself at VERSION 1, else ``"<APP_ID>-v<VERSION>"``; it
        names the consumer group and prefixes the app's own topics.
        """
        return versioned_id(self.app_id, self.version)

    def replace(self, **kwargs: Any) -> Settings:
        """Return a copy with some settings changed (lower-case names).

        Settings that were left to their default are computed afresh, so a
        new ``app_id`` also moves the default dead letter topic.
        """
        merged = {SETTINGS[key].attr: value for key, value in self._given.items()}
        for name, value in kwargs.items():
            setting = _KEYWORDS.names.get(name)
            merged[setting.attr if setting is not None else name] = value
        return type(self)(base_dir=self.base_dir, **merged)

    def as_dict(self) -> dict[str, Any]:
        """The effective value of every setting, by upper-case key.

        The result is accepted by `from_mapping`, and describes the same
        settings (with computed defaults such as DEAD_LETTER_TOPIC fixed).
        """
        return {key: self._values[setting.attr] for key, setting in SETTINGS.items()}

    def validate(self) -> list[Problem]:
        """Re-check the effective values; a list of `Problem`, empty if fine.

        Construction already validates, so this guards code that builds a
        FAUST dict from `as_dict` output or passes settings between processes.
        """
        return find_problems(self.as_dict())

    @property
    def broker_urls(self) -> list[ParsedURL]:
        """Every broker URL, parsed; a list may hold several URLs."""
        return list(self._broker_urls)

    @property
    def broker_url(self) -> str:
        """BROKER as one URL string, for transports that take a single URL.

        A list of URLs is merged into one multi-host URL (``kafka://k1;k2``);
        a single URL is returned exactly as written.
        """
        if isinstance(self.broker, str):
            return self.broker
        if len(self._broker_urls) == 1:
            return self.broker[0]
        first = self._broker_urls[0]
        hosts = [host for url in self._broker_urls for host in url.hosts]
        return str(ParsedURL(first.scheme, hosts, first.path, first.query))

    @property
    def broker_scheme(self) -> str:
        """The transport scheme, e.g. ``"kafka"``; all broker URLs share it."""
        return self._broker_urls[0].scheme

    @property
    def store_url(self) -> ParsedURL:
        """The STORE URL, parsed."""
        return self._store_url

    def datadir_for(self, app_id: str) -> Path:
        """The absolute data directory of ``app_id``, from DATADIR."""
        path = Path(self.datadir.format(appid=app_id)).expanduser()
        if path.is_absolute():
            return path
        return (self.base_dir or Path.cwd()) / path

    @property
    def appdir(self) -> Path:
        """Where this app version keeps local state: ``<datadir>/v<VERSION>``.

        Bumping VERSION therefore starts from empty local tables, matching
        the fresh topics it gets.
        """
        return self.datadir_for(self.app_id) / f"v{self.version}"


def _from_mapping(mapping: Mapping[str, Any], base_dir: Path | None) -> Settings:
    return Settings.from_mapping(mapping, base_dir=base_dir)


#: Every setting, by its upper-case FAUST key, in declaration order.
SETTINGS: Mapping[str, Setting[Any]] = MappingProxyType(
    {
        value.key: value
        for value in vars(Settings).values()
        if isinstance(value, Setting)
    }
)


# How each source spells settings -----------------------------------------------


def _faust_label(name: object) -> str:
    return f'FAUST["{name}"]' if isinstance(name, str) else f"FAUST[{name!r}]"


def _heartbeat_within_session(given: Given) -> Iterator[Problem]:
    heartbeat = given.effective("BROKER_HEARTBEAT_INTERVAL")
    session = given.effective("BROKER_SESSION_TIMEOUT")
    if heartbeat is not None and session is not None and heartbeat >= session:
        yield Problem(
            "BROKER_HEARTBEAT_INTERVAL",
            "value",
            f"{given.label('BROKER_HEARTBEAT_INTERVAL')} ({heartbeat!r}) must be "
            f"less than {given.label('BROKER_SESSION_TIMEOUT')} ({session!r}).",
            hint="Make it about a third of the session timeout, so that a few "
            "lost heartbeats do not get a healthy worker evicted.",
        )


#: Checks that involve more than one setting.
_CROSS_CHECKS = (_heartbeat_within_session,)

_FAUST = Style(SETTINGS, _faust_label, SETTINGS, upper=True, checks=_CROSS_CHECKS)
_KEYWORDS = Style(
    {**{s.attr: s for s in SETTINGS.values()}, "id": Settings.app_id},
    str,
    SETTINGS,
    upper=False,
    checks=_CROSS_CHECKS,
)


def find_problems(mapping: object) -> list[Problem]:
    """Return every problem with a FAUST dict; an empty list if it is valid.

    Missing keys are not problems: they take their defaults.
    """
    return analyse(mapping, _FAUST)[0]


def reference_rst() -> str:
    """The settings reference as reStructuredText, for the documentation."""
    blocks = []
    for key, setting in SETTINGS.items():
        blocks.append(
            f"``{key}``\n"
            f"    :type: {setting.expects}\n"
            f"    :default: {setting.default_doc}\n\n"
            f"    {setting.help}\n"
        )
    return "\n".join(blocks)
