"""The Django app: builds the project's App and discovers agents, tables, views."""

from __future__ import annotations

import logging
from typing import Any

from django.apps import AppConfig
from django.core.signals import setting_changed
from django.utils.module_loading import autodiscover_modules

logger = logging.getLogger(__name__)


class DjangoFaustConfig(AppConfig):
    name = "django_faust"
    verbose_name = "Django Faust"
    default_auto_field = "django.db.models.AutoField"

    def import_models(self) -> None:
        # ``django_faust.models`` is the Record package, not Django models:
        # the admin's unmanaged models live in ``admin_models``.
        super().import_models()
        from . import admin_models  # noqa: F401

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .conf import Settings
        from .exceptions import ImproperlyConfigured

        setting_changed.connect(_reconfigure_on_change, dispatch_uid="django_faust")
        # A process that sends and then gets SIGTERM flushes what it sent.
        from .client import install_sigterm_handler

        install_sigterm_handler()
        try:
            conf = Settings.from_django()
        except ImproperlyConfigured:
            # The system checks report the bad setting with its key; don't
            # hide that behind an import-time crash of every manage.py command.
            return
        if conf.autodiscover:
            # Imports <app>.agents, <app>.tables, ... of every installed app.
            # A module that exists but fails to import raises its own error.
            autodiscover_modules(*conf.autodiscover_modules)


def _reconfigure_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting == "FAUST":
        from .app.project import project_app

        if project_app._wrapped is not None and not _is_empty(project_app):
            project_app.reconfigure()


def _is_empty(proxy: Any) -> bool:
    from django.utils.functional import empty

    return proxy._wrapped is empty
