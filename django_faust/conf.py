"""Settings for django-faust.

A Django project configures django-faust with one dict, named after Faust's
settings in upper case::

    FAUST = {
        "APP_ID": "shop",
        "BROKER": "kafka://k1:9092;k2:9092",
        "STORE": "rocksdb://",
        "TOPIC_PARTITIONS": 8,
    }

Outside Django the same settings are given as keyword arguments in lower case
(``App("shop", broker="kafka://k1:9092")``).

Every setting is declared exactly once, as a `Setting` in the body of
`Settings`: its accepted types, default, help text and validator live
together.  Validation (`find_problems`), the defaults, the reference
documentation (`reference_rst`), the `SETTINGS` table used by the docs and the
command line, and the typed, read-only attributes of `Settings` are all
derived from those declarations, so adding a setting is a one-place change.

Building `Settings` never touches the network and does no I/O beyond looking
up a time zone name, so it is cheap enough to do on every call.
"""

from __future__ import annotations

import datetime
import difflib
import functools
import math
import os
import re
import reprlib
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Generic, Literal, NamedTuple, TypeVar, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django_faust.exceptions import ImproperlyConfigured
from django_faust.utils.urls import ParsedURL, parse_url

__all__ = [
    "BROKER_SCHEMES",
    "SETTINGS",
    "STORE_SCHEMES",
    "Problem",
    "Setting",
    "Settings",
    "default_app_id",
    "find_problems",
    "reference_rst",
]

T = TypeVar("T")

#: Broker URL schemes a transport exists for.
BROKER_SCHEMES: tuple[str, ...] = ("memory", "kafka", "aiokafka")
#: Store URL schemes a table storage driver exists for.
STORE_SCHEMES: tuple[str, ...] = ("memory", "rocksdb")

#: Sub-keys of BROKER_CREDENTIALS, with their allowed values where limited.
CREDENTIAL_KEYS: Mapping[str, tuple[str, ...] | None] = MappingProxyType(
    {
        "SECURITY_PROTOCOL": ("SASL_SSL", "SASL_PLAINTEXT", "SSL", "PLAINTEXT"),
        "SASL_MECHANISM": ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
        "USERNAME": None,
        "PASSWORD": None,
        "CAFILE": None,
        "CERTFILE": None,
        "KEYFILE": None,
    }
)
_SECRET_KEYS = frozenset({"PASSWORD"})

ProblemKind = Literal["not_a_mapping", "unknown", "type", "value"]

_MISSING: Any = object()
_UTC = datetime.UTC
# Kafka's rule for topic names, which the app id and topic settings become.
_TOPIC_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,249}\Z")
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_MODULE_RE = re.compile(rf"{_IDENTIFIER}(\.{_IDENTIFIER})*\Z")
_IMPORT_PATH_RE = re.compile(rf"{_IDENTIFIER}(\.{_IDENTIFIER})*[.:]{_IDENTIFIER}\Z")

_short_repr = reprlib.Repr()
_short_repr.maxstring = 60
_short_repr.maxother = 60


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a FAUST dict, phrased for the person who wrote it.

    ``key`` is the setting (``"TOPIC_PARTITIONS"``), or ``None`` when the
    problem is with FAUST itself; ``subkey`` names the entry inside a
    dict-valued setting such as BROKER_CREDENTIALS.  ``kind`` says what sort
    of problem it is, so system checks can give each its own id.  ``hint``,
    when set, suggests a fix.
    """

    key: str | None
    kind: ProblemKind
    message: str
    hint: str = ""
    subkey: str | None = None

    def __str__(self) -> str:
        if not self.hint:
            return self.message
        hint = self.hint
        if hint[:1].isupper() and hint[1:2].islower():
            hint = hint[0].lower() + hint[1:]
        return f"{self.message.rstrip('.')}; {hint}"


class Issue(NamedTuple):
    """What a validator reports; turned into a `Problem` with a label.

    ``message`` continues a sentence that starts with the setting's label,
    e.g. ``"must be at least 1, got 0"``.
    """

    message: str
    kind: ProblemKind = "value"
    subkey: str | None = None
    hint: str = ""


Validator = Callable[[Any], Iterable[Issue]]


class Setting(Generic[T]):
    """The declaration of one setting, and the descriptor that reads it.

    ``types`` are the Python types accepted from the user; ``T`` is the type
    of the attribute after ``normalize`` (and ``resolve``, for values that
    depend on other settings) has run.  ``bool`` is only accepted where listed,
    although it is a subclass of ``int``.
    """

    key: str
    attr: str

    def __init__(
        self,
        types: type | tuple[type, ...],
        *,
        help: str,
        default: Any = _MISSING,
        default_factory: Callable[[], Any] | None = None,
        default_doc: str | None = None,
        nullable: bool = False,
        items: type | None = None,
        choices: tuple[Any, ...] | None = None,
        validators: tuple[Validator, ...] = (),
        normalize: Callable[[Any], Any] | None = None,
        resolve: Callable[[Any, Mapping[str, Any]], Any] | None = None,
        expects: str | None = None,
    ) -> None:
        if (default is _MISSING) == (default_factory is None):
            raise TypeError("give exactly one of default and default_factory")
        self.types = types if isinstance(types, tuple) else (types,)
        self.help = help
        self.default = None if default is _MISSING else default
        self.default_factory = default_factory
        self.nullable = nullable
        self.items = items
        self.choices = choices
        self.validators = validators
        self.normalize = normalize
        self.resolve = resolve
        self.expects = expects or self._describe_types()
        self.default_doc = default_doc or repr(self.default)

    def __set_name__(self, owner: type, name: str) -> None:
        self.attr = name
        self.key = name.upper()

    @overload
    def __get__(self, instance: None, owner: type) -> Setting[T]: ...

    @overload
    def __get__(self, instance: Settings, owner: type) -> T: ...

    def __get__(self, instance: Settings | None, owner: type) -> Setting[T] | T:
        if instance is None:
            return self
        value: T = instance._values[self.attr]
        return value

    def __repr__(self) -> str:
        return f"<Setting {self.key}: {self.expects} = {self.default_doc}>"

    def get_default(self) -> Any:
        """The default as a user would write it (before normalization)."""
        if self.default_factory is not None:
            return self.default_factory()
        return self.default

    def clean(self, value: Any) -> tuple[list[Issue], Any]:
        """Check ``value`` and return the issues found and its normal form."""
        issues = self._check_type(value)
        if issues or value is None:
            return issues, value
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(repr(c) for c in self.choices)
            words = [choice for choice in self.choices if isinstance(choice, str)]
            match = _closest(value, words) if isinstance(value, str) else None
            hint = f"Did you mean {match!r}?" if match else ""
            message = f"must be one of {allowed}; got {_show(value)}"
            return [Issue(message, hint=hint)], value
        if self.normalize is not None:
            value = self.normalize(value)
        for validator in self.validators:
            issues.extend(validator(value))
        return issues, value

    def _check_type(self, value: Any) -> list[Issue]:
        if value is None:
            return [] if self.nullable else [self._type_issue(value)]
        if not _is_instance(value, self.types):
            return [self._type_issue(value)]
        if self.items is not None and isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                if not _is_instance(item, (self.items,)):
                    return [
                        Issue(
                            f"must be {self.expects}, but item {index} is "
                            f"{_show(item)} ({type(item).__name__})",
                            kind="type",
                        )
                    ]
        return []

    def _type_issue(self, value: Any) -> Issue:
        return Issue(
            f"must be {self.expects}, got {_show(value)} ({type(value).__name__})",
            kind="type",
        )

    def _describe_types(self) -> str:
        names = []
        for type_ in self.types:
            if type_ is tuple and list in self.types:
                continue
            name = "dict" if type_ is Mapping else type_.__name__
            if self.items is not None and type_ in (list, tuple):
                name = f"{name} of {self.items.__name__}"
            names.append(name)
        if self.nullable:
            names.append("None")
        if len(names) == 1:
            return names[0]
        return f"{', '.join(names[:-1])} or {names[-1]}"


def _is_instance(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types)


def _show(value: Any) -> str:
    return _short_repr.repr(value)


# Validators and normalizers -------------------------------------------------


def _at_least(minimum: int) -> Validator:
    def validate(value: int) -> Iterator[Issue]:
        if value < minimum:
            yield Issue(f"must be at least {minimum}, got {value!r}")

    return validate


def _between(low: int, high: int) -> Validator:
    def validate(value: int) -> Iterator[Issue]:
        if not low <= value <= high:
            yield Issue(f"must be between {low} and {high}, got {value!r}")

    return validate


def _to_seconds(value: float | datetime.timedelta) -> float:
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return float(value)


def _positive_seconds(value: float) -> Iterator[Issue]:
    if not (math.isfinite(value) and value > 0):
        yield Issue(f"must be a number of seconds greater than 0, got {value!r}")


def _non_negative_seconds(value: float) -> Iterator[Issue]:
    if not (math.isfinite(value) and value >= 0):
        yield Issue(f"must be a number of seconds, 0 or more, got {value!r}")


def _non_empty(value: str) -> Iterator[Issue]:
    if not value.strip():
        yield Issue("must not be empty")


def _topic_name(value: str) -> Iterator[Issue]:
    # The app id names topics and the consumer group, so it obeys Kafka's rules.
    if not _TOPIC_NAME_RE.match(value) or value in (".", ".."):
        yield Issue(
            f"must be a valid Kafka topic name (letters, digits, '.', '_' and "
            f"'-', at most 249 characters), got {_show(value)}"
        )


def _host_name(value: str) -> Iterator[Issue]:
    if not value or any(c.isspace() or c == "/" for c in value):
        yield Issue(f"must be a host name or address, got {_show(value)}")


def _url_checker(schemes: tuple[str, ...], what: str) -> Validator:
    def validate(value: str | list[str]) -> Iterator[Issue]:
        urls = [value] if isinstance(value, str) else value
        if not urls:
            yield Issue("must name at least one URL")
            return
        seen = []
        for url in urls:
            try:
                parsed = parse_url(url)
            except ValueError as exc:
                yield Issue(f"is not a valid URL: {exc}")
                continue
            if parsed.scheme not in schemes:
                yield Issue(
                    f"has unknown scheme {parsed.scheme!r} in {url!r}; valid "
                    f"{what} schemes are: {', '.join(schemes)}"
                )
                continue
            seen.append(parsed.scheme)
        if len(set(seen)) > 1:
            yield Issue(
                f"mixes the schemes {', '.join(sorted(set(seen)))}; all URLs must "
                f"use the same transport"
            )

    return validate


def _broker_value(value: str | list[str] | tuple[str, ...]) -> str | list[str]:
    return value if isinstance(value, str) else list(value)


def _zone_name(value: Any) -> Any:
    # Look names up here so an unknown zone is reported, not raised.
    if isinstance(value, str):
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            return _BadZone(value)
    return value


class _BadZone(str):
    """A zone name ZoneInfo could not find; only lives until validation."""


def _zone_found(value: Any) -> Iterator[Issue]:
    if isinstance(value, _BadZone):
        yield Issue(
            f"must be a time zone name such as 'Europe/Oslo' or 'UTC', "
            f"got {str(value)!r}"
        )


def _datadir_template(value: str) -> Iterator[Issue]:
    try:
        value.format(appid="app")
    except (KeyError, IndexError, ValueError) as exc:
        yield Issue(
            f"may only contain the placeholder '{{appid}}' (write '{{{{' and "
            f"'}}}}' for literal braces), got {value!r} ({type(exc).__name__}: "
            f"{exc})"
        )


def _import_path(value: str | type) -> Iterator[Issue]:
    if isinstance(value, str) and not _IMPORT_PATH_RE.match(value):
        yield Issue(
            f"must be a dotted import path such as 'mode.OneForOneSupervisor', "
            f"got {value!r}"
        )


def _module_names(value: list[str]) -> Iterator[Issue]:
    for name in value:
        if not _MODULE_RE.match(name):
            yield Issue(f"must list module names, but {name!r} is not one")


def _credentials(value: dict[str, Any]) -> Iterator[Issue]:
    issues = list(_credential_entries(value))
    if issues:
        yield from issues
        return
    protocol = _security_protocol(value)
    sasl = protocol.startswith("SASL_")
    if sasl:
        for required in ("USERNAME", "PASSWORD"):
            if required not in value:
                yield Issue(
                    f"is required when SECURITY_PROTOCOL is {protocol!r}",
                    subkey=required,
                )
    else:
        for sasl_only in ("SASL_MECHANISM", "USERNAME", "PASSWORD"):
            if sasl_only in value:
                yield Issue(
                    f"is only used with the SASL_SSL and SASL_PLAINTEXT security "
                    f"protocols, but SECURITY_PROTOCOL is {protocol!r}",
                    subkey=sasl_only,
                )
    if protocol.endswith("PLAINTEXT"):
        for tls_only in ("CAFILE", "CERTFILE", "KEYFILE"):
            if tls_only in value:
                yield Issue(
                    f"is only used with TLS, but SECURITY_PROTOCOL is {protocol!r}",
                    subkey=tls_only,
                )
    if "KEYFILE" in value and "CERTFILE" not in value:
        yield Issue("needs CERTFILE to be set as well", subkey="KEYFILE")


def _credential_entries(value: dict[str, Any]) -> Iterator[Issue]:
    for subkey, entry in value.items():
        name = subkey if isinstance(subkey, str) else repr(subkey)
        if subkey not in CREDENTIAL_KEYS:
            yield Issue("", "unknown", name, _did_you_mean(name, CREDENTIAL_KEYS))
        elif not isinstance(entry, str):
            # Never echo a secret into logs or check output.
            shown = "a value" if subkey in _SECRET_KEYS else _show(entry)
            yield Issue(
                f"must be str, got {shown} ({type(entry).__name__})", "type", subkey
            )
        elif not entry:
            yield Issue("must not be empty", subkey=subkey)
        elif (allowed := CREDENTIAL_KEYS[subkey]) and entry not in allowed:
            yield Issue(
                f"must be one of {', '.join(map(repr, allowed))}; got {entry!r}",
                subkey=subkey,
            )


def _security_protocol(value: Mapping[str, str]) -> str:
    if "SECURITY_PROTOCOL" in value:
        return value["SECURITY_PROTOCOL"]
    return "SASL_SSL" if "USERNAME" in value else "SSL"


def _fill_credentials(
    value: dict[str, str] | None, values: Mapping[str, Any]
) -> dict[str, str] | None:
    if value is None:
        return None
    filled = dict(value)
    filled["SECURITY_PROTOCOL"] = _security_protocol(value)
    if filled["SECURITY_PROTOCOL"].startswith("SASL_"):
        filled.setdefault("SASL_MECHANISM", "PLAIN")
    return filled


def _dead_letter_topic(value: str | None, values: Mapping[str, Any]) -> str:
    return value if value is not None else f"{values['app_id']}-dead-letters"


@functools.cache
def _package_version() -> str:
    # Cached: the metadata lookup scans sys.path, and the answer cannot change.
    version = getattr(sys.modules.get("django_faust"), "__version__", None)
    if isinstance(version, str):
        return version
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as distribution_version

    try:
        return distribution_version("django-faust")
    except PackageNotFoundError:
        return "unknown"


def _default_client_id() -> str:
    return f"django-faust-{_package_version()}"


def _seconds(default: float, help: str, *, allow_zero: bool = False) -> Setting[float]:
    """Declare a duration: int, float or timedelta, stored as float seconds."""
    return Setting(
        (int, float, datetime.timedelta),
        default=default,
        help=help,
        normalize=_to_seconds,
        validators=(_non_negative_seconds if allow_zero else _positive_seconds,),
        expects="a number of seconds (int, float or timedelta)",
    )


# The settings ---------------------------------------------------------------


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
        help="Name shared by all workers of the app: it prefixes the app's "
        "topics and is the Kafka consumer group, so changing it starts afresh.",
        validators=(_topic_name,),
    )
    version: Setting[int] = Setting(
        int,
        default=1,
        help="Version of the app; bumping it gives a new, isolated instance "
        "with its own internal topics and data directory.",
        validators=(_at_least(1),),
    )

    broker: Setting[str | list[str]] = Setting(
        (str, list, tuple),
        items=str,
        default="memory://",
        help="Transport URL, or a list of them: 'memory://' for tests and "
        "development, 'kafka://host:port;host:port' for Kafka (the port "
        "defaults to 9092).",
        normalize=_broker_value,
        validators=(_url_checker(BROKER_SCHEMES, "broker"),),
    )
    broker_client_id: Setting[str] = Setting(
        str,
        default_factory=_default_client_id,
        default_doc="'django-faust-<django-faust version>'",
        help="Client id sent to the broker, identifying this software in the "
        "broker's logs and metrics.",
        validators=(_non_empty,),
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
        validators=(_credentials,),
        resolve=_fill_credentials,
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
        validators=(_at_least(1),),
    )
    broker_commit_every: Setting[int] = Setting(
        int,
        default=10000,
        help="Commit offsets after this many processed messages, besides every "
        "COMMIT_INTERVAL seconds.",
        validators=(_at_least(1),),
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
        validators=(_url_checker(STORE_SCHEMES, "store"),),
    )
    datadir: Setting[str] = Setting(
        (str, os.PathLike),
        default="{appid}-data",
        help="Directory for local state such as RocksDB tables; '{appid}' is "
        "replaced by APP_ID, and a relative path is taken from Django's "
        "BASE_DIR (or the working directory).",
        normalize=os.fspath,
        validators=(_non_empty, _datadir_template),
        expects="str or path",
    )

    topic_partitions: Setting[int] = Setting(
        int,
        default=8,
        help="Partitions of topics the app creates, table changelogs included; "
        "it caps how many workers can share the load of one topic.",
        validators=(_at_least(1),),
    )
    topic_replication_factor: Setting[int] = Setting(
        int,
        default=1,
        help="Copies the broker keeps of each topic the app creates; use 3 on "
        "production Kafka clusters.",
        validators=(_at_least(1),),
    )
    topic_allow_declare: Setting[bool] = Setting(
        bool,
        default=True,
        help="Let the app create the topics it needs; turn off when topics are "
        "managed outside the app.",
    )

    key_serializer: Setting[str | None] = Setting(
        str,
        nullable=True,
        default="raw",
        help="Codec for message keys when a topic does not name one; None "
        "passes keys through unchanged.",
        validators=(_non_empty,),
    )
    value_serializer: Setting[str] = Setting(
        str,
        default="json",
        help="Codec for message values when a topic does not name one.",
        validators=(_non_empty,),
    )
    processing_guarantee: Setting[str] = Setting(
        str,
        default="at_least_once",
        choices=("at_least_once",),
        help="'at_least_once': nothing is committed before it is processed, "
        "and a message may be processed again after a crash. "
        "'exactly_once' (Kafka transactions) is not implemented yet and is "
        "refused rather than silently downgraded.",
    )

    stream_buffer_maxsize: Setting[int] = Setting(
        int,
        default=4096,
        help="Events buffered per stream before the consumer pauses to let the "
        "agent catch up.",
        validators=(_at_least(1),),
    )
    stream_wait_empty: Setting[bool] = Setting(
        bool,
        default=True,
        help="On rebalance and shutdown, finish processing buffered events "
        "before committing and giving up partitions.",
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
        validators=(_at_least(1),),
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
        validators=(_at_least(1),),
    )
    producer_max_request_size: Setting[int] = Setting(
        int,
        default=1_000_000,
        help="Most bytes in one produce request, which also caps the size of a "
        "single message.",
        validators=(_at_least(1),),
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

    table_standby_replicas: Setting[int] = Setting(
        int,
        default=1,
        help="Standby copies of each table partition kept warm on other workers "
        "so that failover does not wait for a full recovery.",
        validators=(_at_least(0),),
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
        validators=(_import_path,),
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
        validators=(_module_names,),
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
        validators=(_between(1, 65535),),
    )
    web_bind: Setting[str] = Setting(
        str,
        default="127.0.0.1",
        help="Address the web server binds to; '0.0.0.0' accepts connections "
        "from other hosts.",
        validators=(_host_name,),
    )
    web_host: Setting[str] = Setting(
        str,
        default="localhost",
        help="Host name other workers use to reach this worker's web server.",
        validators=(_host_name,),
    )

    timezone: Setting[datetime.tzinfo] = Setting(
        (str, datetime.tzinfo),
        nullable=True,
        default=None,
        default_doc="None (UTC)",
        help="Time zone of timers, crontab schedules and windows: a zone name "
        "such as 'Europe/Oslo' or a tzinfo; None means UTC.",
        normalize=_zone_name,
        validators=(_zone_found,),
        resolve=lambda value, values: _UTC if value is None else value,
        expects="a time zone name (str), tzinfo or None",
    )
    dead_letter_topic: Setting[str] = Setting(
        str,
        nullable=True,
        default=None,
        default_doc="None ('<APP_ID>-dead-letters')",
        help="Topic receiving events an agent failed to process; None means "
        "'<APP_ID>-dead-letters'.",
        validators=(_topic_name,),
        resolve=_dead_letter_topic,
    )

    __slots__ = ("_broker_urls", "_given", "_store_url", "_values", "base_dir")

    _values: dict[str, Any]
    _given: dict[str, Any]
    base_dir: Path | None
    _broker_urls: list[ParsedURL]
    _store_url: ParsedURL

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
        from django.conf import settings as django_settings

        faust = getattr(django_settings, "FAUST", None)
        if faust is None:
            faust = {}
        if isinstance(faust, Mapping) and "APP_ID" not in faust:
            faust = {"APP_ID": default_app_id(), **faust}
        base_dir = getattr(django_settings, "BASE_DIR", None)
        if not isinstance(base_dir, (str, os.PathLike)):
            base_dir = None
        return cls.from_mapping(faust, base_dir=base_dir)

    def _setup(
        self,
        given: Any,
        style: _Style,
        base_dir: str | os.PathLike[str] | None,
    ) -> None:
        problems, cleaned = _analyse(given, style)
        if problems:
            raise ImproperlyConfigured(_describe(problems))
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

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"Settings are read-only; use settings.replace({name}=...) for a "
            f"changed copy"
        )

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
        """The app id, under the name Faust uses (``app.conf.id``)."""
        return self.app_id

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


# Finding problems ------------------------------------------------------------


class _Style(NamedTuple):
    """How settings are spelled in one source: FAUST keys or keyword names."""

    names: Mapping[str, Setting[Any]]
    label: Callable[[object], str]


def _faust_label(name: object) -> str:
    return f'FAUST["{name}"]' if isinstance(name, str) else f"FAUST[{name!r}]"


_FAUST = _Style(SETTINGS, _faust_label)
_KEYWORDS = _Style(
    {**{s.attr: s for s in SETTINGS.values()}, "id": Settings.app_id}, str
)


def find_problems(mapping: object) -> list[Problem]:
    """Return every problem with a FAUST dict; an empty list if it is valid.

    Missing keys are not problems: they take their defaults.
    """
    return _analyse(mapping, _FAUST)[0]


def _analyse(given: object, style: _Style) -> tuple[list[Problem], dict[str, Any]]:
    """Validate ``given``; return its problems and its cleaned values by key."""
    if not isinstance(given, Mapping):
        message = (
            f"FAUST must be a dict of settings, got {_show(given)} "
            f"({type(given).__name__})."
        )
        return [Problem(None, "not_a_mapping", message)], {}
    problems: list[Problem] = []
    cleaned: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for name, value in given.items():
        setting = style.names.get(name) if isinstance(name, str) else None
        if setting is None:
            problems.append(_unknown(name, style))
            continue
        if setting.key in spelled:
            first, second = style.label(spelled[setting.key]), style.label(name)
            problems.append(
                Problem(
                    setting.key, "value", f"{second} repeats {first}; give only one."
                )
            )
            continue
        spelled[setting.key] = name
        issues, value = setting.clean(value)
        for issue in issues:
            problems.append(_to_problem(setting, style.label(name), issue))
        if not issues:
            cleaned[setting.key] = value
    problems.extend(_cross_problems(cleaned, spelled, style))
    return problems, cleaned


def _cross_problems(
    cleaned: Mapping[str, Any], spelled: Mapping[str, str], style: _Style
) -> Iterator[Problem]:
    """Problems that involve more than one setting."""

    def label(key: str) -> str:
        # As the user spelled it, else in the style of the source.
        name = spelled.get(key, key if style is _FAUST else SETTINGS[key].attr)
        return style.label(name)

    def effective(key: str) -> Any:
        if key in cleaned:
            return cleaned[key]
        if key in spelled:  # given, but invalid: already reported
            return None
        setting = SETTINGS[key]
        return setting.clean(setting.get_default())[1]

    heartbeat = effective("BROKER_HEARTBEAT_INTERVAL")
    session = effective("BROKER_SESSION_TIMEOUT")
    if heartbeat is not None and session is not None and heartbeat >= session:
        yield Problem(
            "BROKER_HEARTBEAT_INTERVAL",
            "value",
            f"{label('BROKER_HEARTBEAT_INTERVAL')} ({heartbeat!r}) must be less "
            f"than {label('BROKER_SESSION_TIMEOUT')} ({session!r}).",
            hint="Make it about a third of the session timeout, so that a few "
            "lost heartbeats do not get a healthy worker evicted.",
        )


def _unknown(name: object, style: _Style) -> Problem:
    return Problem(
        name if isinstance(name, str) else None,
        "unknown",
        f"Unknown setting {style.label(name)}.",
        hint=_did_you_mean(name if isinstance(name, str) else repr(name), style.names),
    )


def _did_you_mean(name: str, valid: Iterable[str]) -> str:
    """A hint naming the closest valid name, or where to look them up."""
    match = _closest(name, valid)
    if match is not None:
        return f'Did you mean "{match}"?'
    return "It is not close to any known name; see django_faust.conf.SETTINGS."


def _closest(name: str, valid: Iterable[str]) -> str | None:
    """The valid name most like ``name``, ignoring case and dash/underscore."""
    candidates = {_fold(choice): choice for choice in valid}
    matches = difflib.get_close_matches(_fold(name), candidates, n=1, cutoff=0.6)
    return candidates[matches[0]] if matches else None


def _fold(name: str) -> str:
    return name.upper().replace("-", "_")


def _to_problem(setting: Setting[Any], label: str, issue: Issue) -> Problem:
    if issue.subkey is not None:
        label = f'{label}["{issue.subkey}"]'
    if issue.kind == "unknown":
        message = f"Unknown key {label}."
    else:
        message = f"{label} {issue.message}."
    return Problem(setting.key, issue.kind, message, issue.hint, issue.subkey)


def _describe(problems: list[Problem]) -> str:
    if len(problems) == 1:
        return f"Invalid django-faust settings: {problems[0]}"
    lines = "\n".join(f"  - {problem}" for problem in problems)
    return f"Invalid django-faust settings ({len(problems)} problems):\n{lines}"


# Django integration -----------------------------------------------------------


def default_app_id() -> str:
    """The app id a Django project gets when FAUST has no APP_ID.

    It is the project's top-level package: the first component of
    ``ROOT_URLCONF``, or else of the settings module, so two projects sharing
    a Kafka cluster do not end up in the same consumer group by accident.
    """
    from django.conf import settings as django_settings

    candidates = (
        getattr(django_settings, "ROOT_URLCONF", None),
        getattr(django_settings, "SETTINGS_MODULE", None),
        os.environ.get("DJANGO_SETTINGS_MODULE"),
    )
    for candidate in candidates:
        if isinstance(candidate, str) and candidate:
            package = candidate.split(".", 1)[0]
            if _TOPIC_NAME_RE.match(package):
                return package
    return "django-faust"


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
