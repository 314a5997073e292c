"""Every declared setting is read by the engine: none is accepted and ignored.

The declarations live in ``django_faust/conf/``; a setting does something
only if code outside it reads ``conf.<name>`` (``app.conf.topic_partitions``,
``self.app.conf.web_port``, ...).  A few are read through a `Settings`
property that combines them (APP_ID and VERSION make ``conf.id``); those
properties must then be read outside conf themselves.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from django_faust.conf import SETTINGS, Settings

PACKAGE = Path(__file__).resolve().parents[2] / "django_faust"

#: Settings read through a Settings property: key -> the properties.
THROUGH = {
    "APP_ID": ("id",),
    "VERSION": ("id", "appdir"),
    "DATADIR": ("appdir",),
}

#: Settings with nothing to read yet, and what will read them.  The test
#: below fails as soon as one is read, so the entry is removed then.
NOT_YET_READ: dict[str, str] = {}


def _engine_source() -> str:
    """The package's source, without the settings package itself."""
    return "\n".join(
        path.read_text()
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts[0] != "conf"
    )


SOURCE = _engine_source()


def _is_read(name: str) -> bool:
    return re.search(rf"\bconf\.{name}\b", SOURCE) is not None


@pytest.mark.parametrize("key", list(SETTINGS))
def test_every_setting_is_read_outside_conf(key: str) -> None:
    setting = SETTINGS[key]
    if key in NOT_YET_READ:
        assert not _is_read(setting.attr), (
            f"{key} is read now: remove it from NOT_YET_READ"
        )
        return
    if key in THROUGH:
        for prop in THROUGH[key]:
            getter = getattr(Settings, prop).fget
            assert f"self.{setting.attr}" in inspect.getsource(getter), (key, prop)
            assert _is_read(prop), f"conf.{prop} (from {key}) is never read"
        return
    assert _is_read(setting.attr), (
        f"{key} is declared in django_faust/conf but conf.{setting.attr} is "
        f"never read outside it: implement it or remove the declaration"
    )


def test_the_exceptions_name_real_settings() -> None:
    assert set(THROUGH) | set(NOT_YET_READ) <= set(SETTINGS)
    # A setting with one accepted value would be read nowhere: none is left.
    single = [k for k, s in SETTINGS.items() if s.choices and len(s.choices) == 1]
    assert single == []


def test_the_check_finds_an_unread_setting() -> None:
    assert _is_read("topic_partitions")
    assert not _is_read("no_such_setting")
    assert not _is_read("topic")  # a prefix of a read setting is not a read
