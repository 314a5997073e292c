"""The project's one App, built from Django settings on first use.

``from django_faust import app`` gives a proxy: decorating with it at import
time of an ``agents.py`` builds the real `App` then, reading
``settings.FAUST``. Everything the proxy is asked for goes to that App.
"""

from __future__ import annotations

from typing import Any

from django.utils.functional import LazyObject, empty

from ..conf import Settings
from .base import App

__all__ = ["ProjectApp", "get_project_app", "project_app"]


class ProjectApp(LazyObject):
    """A lazy proxy to the project's `App` (``django_faust.app``)."""

    def _setup(self) -> None:
        self._wrapped = App(config_source=Settings.from_django)


project_app: Any = ProjectApp()


def get_project_app() -> App:
    """The real project App behind the `project_app` proxy."""
    if project_app._wrapped is empty:
        project_app._setup()
    return project_app._wrapped  # type: ignore[no-any-return]
