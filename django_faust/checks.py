"""Django system checks for the FAUST setting.

A mistake in FAUST should show up in ``manage.py check`` (and so before
``runserver``, ``migrate`` and the test runner), naming the exact key, rather
than as a traceback when the first worker starts.  The checks reuse
`django_faust.conf.find_problems`, so they report exactly what building the
settings would reject.  Run them alone with ``manage.py check --tag
django_faust``.

Errors:

``django_faust.E001``
    FAUST is not a dict.
``django_faust.E002``
    FAUST has an unknown key; the hint names the closest valid key.
``django_faust.E003``
    A setting has the wrong type; the message gives the expected type and the
    value found.
``django_faust.E004``
    A setting has an invalid value: out of range, not one of the allowed
    choices, malformed, or at odds with another setting (for example
    BROKER_HEARTBEAT_INTERVAL not below BROKER_SESSION_TIMEOUT).
``django_faust.E005``
    BROKER is not a usable broker URL: malformed, an unknown scheme (the
    valid ones are in ``django_faust.conf.schemes``) or URLs with different
    schemes.
``django_faust.E006``
    STORE is not a usable store URL: malformed or an unknown scheme (the
    valid ones are in ``django_faust.conf.schemes``).
``django_faust.E007``
    STORE names a driver whose package cannot be imported (``rocksdb://``
    without rocksdict).
``django_faust.E008``
    BROKER_CREDENTIALS has an unknown, mistyped, missing or contradictory
    entry.
``django_faust.E009``
    WEB_PORT is not between 1 and 65535.

Warnings, with ``manage.py check --deploy`` only, because they are advice for
production that would be noise on a developer's single-broker setup:

``django_faust.W001``
    A Kafka broker is used with TOPIC_REPLICATION_FACTOR 1, so losing one
    broker loses the data of the topics the app creates.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings as django_settings
from django.core import checks
from django.core.checks import CheckMessage, Error, register

from django_faust.conf import SETTINGS, Problem, Settings, find_problems
from django_faust.conf.schemes import STORES, TRANSPORTS
from django_faust.utils.urls import parse_url

__all__ = ["Tags", "check_faust_deployment", "check_faust_settings"]


class Tags:
    """Tags of django-faust's checks, like :class:`django.core.checks.Tags`."""

    django_faust = "django_faust"


# Settings whose value problems get their own id instead of E004.
_VALUE_ERROR_IDS = {
    "BROKER": "django_faust.E005",
    "STORE": "django_faust.E006",
    "BROKER_CREDENTIALS": "django_faust.E008",
    "WEB_PORT": "django_faust.E009",
}
_KIND_IDS = {
    "not_a_mapping": "django_faust.E001",
    "unknown": "django_faust.E002",
    "type": "django_faust.E003",
    "value": "django_faust.E004",
}


@register(Tags.django_faust)
def check_faust_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Report every problem in ``settings.FAUST``.

    FAUST is project-wide, so this runs whatever ``app_configs`` is.
    """
    faust = _faust_setting()
    problems = find_problems(faust)
    messages: list[CheckMessage] = [
        Error(problem.message, hint=problem.hint or None, id=_error_id(problem))
        for problem in problems
    ]
    if not any(problem.key == "STORE" for problem in problems):
        messages.extend(_check_store_driver(faust))
    return messages


@register(Tags.django_faust, deploy=True)
def check_faust_deployment(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Warn about settings that work, but are risky in production."""
    faust = _faust_setting()
    if find_problems(faust):
        return []  # Reported as errors by check_faust_settings.
    conf = Settings.from_mapping(faust)
    messages: list[CheckMessage] = []
    if TRANSPORTS[conf.broker_scheme].cluster and (conf.topic_replication_factor == 1):
        messages.append(
            checks.Warning(
                'FAUST["TOPIC_REPLICATION_FACTOR"] is 1 with a Kafka broker, so '
                "losing one broker loses the data of the topics the app creates, "
                "table changelogs included.",
                hint='Set FAUST["TOPIC_REPLICATION_FACTOR"] to 3, or to the '
                "number of brokers if there are fewer.",
                id="django_faust.W001",
            )
        )
    return messages


def _faust_setting() -> Any:
    faust = getattr(django_settings, "FAUST", None)
    return {} if faust is None else faust


def _error_id(problem: Problem) -> str:
    # Entries of a dict setting are its value, whatever went wrong with them.
    if problem.subkey is not None or problem.kind == "value":
        return _VALUE_ERROR_IDS.get(problem.key or "", _KIND_IDS["value"])
    return _KIND_IDS[problem.kind]


def _check_store_driver(faust: Any) -> list[CheckMessage]:
    if not isinstance(faust, Mapping):
        return []
    store = faust.get("STORE", SETTINGS["STORE"].get_default())
    driver = STORES.get(parse_url(store).scheme)
    if driver is None or driver.requires is None:
        return []
    try:
        importlib.import_module(driver.requires)
    except ImportError as exc:
        return [
            Error(
                f'FAUST["STORE"] is {store!r}, but the {driver.requires} package '
                f"that drives it cannot be imported ({exc}).",
                hint=f"pip install django-faust[{driver.extra}]",
                id="django_faust.E007",
            )
        ]
    return []
