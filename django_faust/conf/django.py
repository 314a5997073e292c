"""Reading the settings of a Django project: ``settings.FAUST``.

Kept apart from the declarations so that `Settings` can be built and
validated without Django configured (outside a project, in tests, by the
documentation generator).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .validators import TOPIC_NAME_RE

__all__ = ["default_app_id", "faust_settings"]


def faust_settings() -> tuple[Any, str | os.PathLike[str] | None]:
    """``settings.FAUST`` (with APP_ID filled in) and the project's BASE_DIR.

    A missing FAUST (or ``None``) means all defaults, and APP_ID defaults to
    `default_app_id`.  A FAUST that is not a dict is returned as it is, for
    the analysis to report.
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
    return faust, base_dir


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
            if TOPIC_NAME_RE.match(package):
                return package
    return "django-faust"
