"""Validators, normalizers and resolvers used by the setting declarations.

A validator takes a normalized value and yields an `Issue` for each thing
wrong with it; its message continues a sentence that starts with the
setting's label.  A normalizer turns an accepted value into its stored form
(a timedelta into seconds); a resolver computes a value that depends on
other settings (the default dead letter topic from the app id).
"""

from __future__ import annotations

import datetime
import functools
import math
import re
import sys
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django_faust.utils.urls import parse_url

from .problems import did_you_mean, show
from .setting import Issue, Validator

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

#: Kafka's rule for topic names, which the app id and topic settings become.
TOPIC_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,249}\Z")
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_MODULE_RE = re.compile(rf"{_IDENTIFIER}(\.{_IDENTIFIER})*\Z")
_IMPORT_PATH_RE = re.compile(rf"{_IDENTIFIER}(\.{_IDENTIFIER})*[.:]{_IDENTIFIER}\Z")


def at_least(minimum: int) -> Validator:
    def validate(value: int) -> Iterator[Issue]:
        if value < minimum:
            yield Issue(f"must be at least {minimum}, got {value!r}")

    return validate


def between(low: int, high: int) -> Validator:
    def validate(value: int) -> Iterator[Issue]:
        if not low <= value <= high:
            yield Issue(f"must be between {low} and {high}, got {value!r}")

    return validate


def to_seconds(value: float | datetime.timedelta) -> float:
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return float(value)


def positive_seconds(value: float) -> Iterator[Issue]:
    if not (math.isfinite(value) and value > 0):
        yield Issue(f"must be a number of seconds greater than 0, got {value!r}")


def non_negative_seconds(value: float) -> Iterator[Issue]:
    if not (math.isfinite(value) and value >= 0):
        yield Issue(f"must be a number of seconds, 0 or more, got {value!r}")


def non_empty(value: str) -> Iterator[Issue]:
    if not value.strip():
        yield Issue("must not be empty")


def topic_name(value: str) -> Iterator[Issue]:
    # The app id names topics and the consumer group, so it obeys Kafka's rules.
    if not TOPIC_NAME_RE.match(value) or value in (".", ".."):
        yield Issue(
            f"must be a valid Kafka topic name (letters, digits, '.', '_' and "
            f"'-', at most 249 characters), got {show(value)}"
        )


def host_name(value: str) -> Iterator[Issue]:
    if not value or any(c.isspace() or c == "/" for c in value):
        yield Issue(f"must be a host name or address, got {show(value)}")


def url_checker(schemes: tuple[str, ...], what: str) -> Validator:
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


def broker_value(value: str | list[str] | tuple[str, ...]) -> str | list[str]:
    return value if isinstance(value, str) else list(value)


def zone_name(value: Any) -> Any:
    # Look names up here so an unknown zone is reported, not raised.
    if isinstance(value, str):
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            return _BadZone(value)
    return value


class _BadZone(str):
    """A zone name ZoneInfo could not find; only lives until validation."""


def zone_found(value: Any) -> Iterator[Issue]:
    if isinstance(value, _BadZone):
        yield Issue(
            f"must be a time zone name such as 'Europe/Oslo' or 'UTC', "
            f"got {str(value)!r}"
        )


def datadir_template(value: str) -> Iterator[Issue]:
    try:
        value.format(appid="app")
    except (KeyError, IndexError, ValueError) as exc:
        yield Issue(
            f"may only contain the placeholder '{{appid}}' (write '{{{{' and "
            f"'}}}}' for literal braces), got {value!r} ({type(exc).__name__}: "
            f"{exc})"
        )


def import_path(value: str | type) -> Iterator[Issue]:
    if isinstance(value, str) and not _IMPORT_PATH_RE.match(value):
        yield Issue(
            f"must be a dotted import path such as 'mode.OneForOneSupervisor', "
            f"got {value!r}"
        )


def module_names(value: list[str]) -> Iterator[Issue]:
    for name in value:
        if not _MODULE_RE.match(name):
            yield Issue(f"must list module names, but {name!r} is not one")


def credentials(value: dict[str, Any]) -> Iterator[Issue]:
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
            yield Issue("", "unknown", name, did_you_mean(name, CREDENTIAL_KEYS))
        elif not isinstance(entry, str):
            # Never echo a secret into logs or check output.
            shown = "a value" if subkey in _SECRET_KEYS else show(entry)
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


def fill_credentials(
    value: dict[str, str] | None, values: Mapping[str, Any]
) -> dict[str, str] | None:
    if value is None:
        return None
    filled = dict(value)
    filled["SECURITY_PROTOCOL"] = _security_protocol(value)
    if filled["SECURITY_PROTOCOL"].startswith("SASL_"):
        filled.setdefault("SASL_MECHANISM", "PLAIN")
    return filled


def versioned_id(app_id: str, version: int) -> str:
    """The app's id: APP_ID, with ``-v<VERSION>`` once VERSION is above 1."""
    return app_id if version == 1 else f"{app_id}-v{version}"


def dead_letter_topic(value: str | None, values: Mapping[str, Any]) -> str:
    if value is not None:
        return value
    return f"{versioned_id(values['app_id'], values['version'])}-dead-letters"


@functools.cache
def package_version() -> str:
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


def default_client_id() -> str:
    return f"django-faust-{package_version()}"
