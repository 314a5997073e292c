"""Where an App's settings come from: ``App(config_source=...)``.

As in Faust, the source is read when the app is first configured, and its
settings win over the keyword arguments given to `App`.  A source may be:

* a `Settings` (or a function returning one, such as `Settings.from_django`);
* a mapping of settings, keyed like ``FAUST`` (``"BROKER"``) or like the
  keyword arguments (``"broker"``);
* a module, class or other object whose public attributes are settings
  (``BROKER = "kafka://..."`` in a ``faustconfig.py``), or a function
  returning a mapping;
* the dotted import path of such a module or object
  (``"myproj.faustconfig"``).

Every public attribute of a module or object source must be a setting
(modules, functions and classes in it are skipped), so a misspelt name is
reported with the closest valid one instead of being ignored.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from mode.utils.imports import symbol_by_name

from django_faust.exceptions import ImproperlyConfigured

from .settings import SETTINGS, Settings

__all__ = ["settings_from_source"]


def settings_from_source(
    source: Any, *, options: Mapping[str, Any], silent: bool = False
) -> Settings:
    """Build the settings of an App from ``source`` over its ``options``.

    ``options`` are the App's keyword arguments (``id`` included).  With
    ``silent``, a source that cannot be imported counts as empty, as
    Faust's ``config_from_object(..., silent=True)`` does.
    """
    if isinstance(source, str):
        try:
            source = _import(source)
        except ImproperlyConfigured:
            if not silent:
                raise
            return Settings(**options)
    if inspect.isroutine(source):
        source = source()
    if isinstance(source, Settings):
        if not options:
            return source
        given = {SETTINGS[key].attr: value for key, value in source._given.items()}
        return Settings(base_dir=source.base_dir, **_merge(options, given))
    return Settings(**_merge(options, _settings_of(source)))


def _import(path: str) -> Any:
    try:
        return symbol_by_name(path)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ImproperlyConfigured(
            f"config_source {path!r} cannot be imported: {exc}. Give the dotted "
            f"path of a module or object (such as 'myproj.faustconfig')."
        ) from exc


def _settings_of(source: Any) -> dict[str, Any]:
    """The settings a mapping, module or object holds, by lower-case name."""
    if isinstance(source, Mapping):
        items = list(source.items())
    else:
        items = [
            (name, getattr(source, name))
            for name in dir(source)
            if not name.startswith("_")
        ]
        items = [
            (name, value)
            for name, value in items
            if not isinstance(value, ModuleType)
            and not inspect.isroutine(value)
            and not inspect.isclass(value)
        ]
        if not isinstance(source, ModuleType) and not items and source is not None:
            raise ImproperlyConfigured(
                f"config_source {source!r} holds no settings: give a Settings, "
                f"a mapping, a module or an object with settings as attributes."
            )
    found = {}
    for name, value in items:
        key = name.lower() if isinstance(name, str) else name
        found[key] = value
    return found


def _merge(options: Mapping[str, Any], source: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` overridden by ``source``; the source's app id wins whole."""
    merged = dict(options)
    if "id" in source or "app_id" in source:
        merged.pop("id", None)
        merged.pop("app_id", None)
    merged.update(source)
    return merged
