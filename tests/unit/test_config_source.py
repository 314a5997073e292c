"""Where an App's settings come from, as Faust's App documents it.

``App(config_source=...)`` and ``app.config_from_object(...)`` take an
object, a module or its dotted path; ``on_configured`` receivers may change
the settings being built (``conf.broker = ...``).
"""

from __future__ import annotations

import os
import sys
import textwrap
import uuid

import pytest

from django_faust import App, Settings
from django_faust.exceptions import ImproperlyConfigured


@pytest.fixture
def faustconfig(tmp_path, monkeypatch):
    """A ``<name>.py`` config module on sys.path, as in a user's project."""
    name = f"faustconfig_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            import os

            BROKER = "kafka://k1:9092"
            TOPIC_PARTITIONS = 3
            VERSION = 2
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_config_source_is_a_module_path(faustconfig):
    app = App("shop", config_source=faustconfig)
    assert app.conf.broker == "kafka://k1:9092"
    assert app.conf.topic_partitions == 3
    assert app.conf.id == "shop-v2"


def test_config_source_is_a_module_object(faustconfig):
    module = __import__(faustconfig)
    app = App("shop", config_source=module)
    assert (app.conf.broker, app.conf.topic_partitions) == ("kafka://k1:9092", 3)


def test_config_from_object_reads_lazily_and_wins_over_app_options(faustconfig):
    app = App("shop", topic_partitions=12, web_port=7000)
    app.config_from_object(faustconfig)
    assert app._conf is None  # read only when needed
    assert app.conf.topic_partitions == 3  # the source wins, as in Faust
    assert app.conf.web_port == 7000  # options it does not set stay


def test_config_from_object_on_a_configured_app_reads_again(faustconfig):
    app = App("shop")
    assert app.conf.topic_partitions == 8
    app.config_from_object(faustconfig)
    assert app.conf.topic_partitions == 3


def test_config_from_object_force_reads_now(faustconfig):
    app = App("shop")
    app.config_from_object(faustconfig, force=True)
    assert app._conf is not None and app._conf.broker == "kafka://k1:9092"


def test_config_source_object_with_lower_case_attributes():
    class Config:
        broker = "kafka://k2:9092"
        web_enabled = False

        def helper(self):  # methods are not settings
            return 1

    app = App("shop", config_source=Config)
    assert (app.conf.broker, app.conf.web_enabled) == ("kafka://k2:9092", False)


def test_config_source_mapping_and_settings():
    assert App("a", config_source={"STORE": "rocksdb://"}).conf.store == "rocksdb://"
    settings = Settings(id="b", topic_partitions=5)
    assert App(config_source=settings).conf is settings
    assert App(config_source=lambda: settings).conf is settings
    merged = App(config_source=settings, web_port=7001).conf
    assert (merged.id, merged.topic_partitions, merged.web_port) == ("b", 5, 7001)


def test_a_misspelt_setting_in_the_source_is_reported():
    class Config:
        BROKR = "kafka://k1"

    with pytest.raises(ImproperlyConfigured, match='brokr; did you mean "broker"'):
        App("shop", config_source=Config).conf  # noqa: B018


def test_an_unimportable_source_names_itself():
    app = App("shop", config_source="no_such_module_xyz.config")
    with pytest.raises(ImproperlyConfigured, match=r"'no_such_module_xyz\.config'"):
        app.conf  # noqa: B018


def test_silent_ignores_an_unimportable_source():
    app = App("shop", topic_partitions=2)
    app.config_from_object("no_such_module_xyz.config", silent=True)
    assert app.conf.topic_partitions == 2


# on_configured ----------------------------------------------------------------


@pytest.fixture
def app():
    """An App whose on_configured receivers are disconnected afterwards.

    (mode keys a receiver connected on an instance by the instance's hash,
    so one left behind would also fire for a later App at the same address.)
    """
    app = App("myapp")
    signal = app.on_configured
    before = set(signal.iter_receivers(app))
    yield app
    for receiver in set(signal.iter_receivers(app)) - before:
        signal.disconnect(receiver)


def test_on_configured_receiver_sets_settings_as_in_faust(app, monkeypatch):
    monkeypatch.setenv("FAUST_BROKER", "kafka://from-env:9092")
    monkeypatch.setenv("STORE_URL", "rocksdb://")

    @app.on_configured.connect
    def configure(app, conf, **kwargs):
        conf.broker = os.environ.get("FAUST_BROKER")
        conf.store = os.environ.get("STORE_URL")

    assert app.conf.broker == "kafka://from-env:9092"
    assert app.conf.store == "rocksdb://"
    assert app.conf.broker_scheme == "kafka"


def test_on_configured_sees_the_instance_app_conf_becomes(app):
    seen = []
    app.on_configured.connect(lambda sender, conf, **kw: seen.append(conf))
    assert seen == [app.conf]
    assert seen[0] is app.conf


def test_on_configured_bad_value_is_refused_at_the_assignment(app):

    @app.on_configured.connect
    def configure(app, conf, **kwargs):
        conf.topic_partitions = 0

    with pytest.raises(
        ImproperlyConfigured, match="topic_partitions must be at least 1"
    ):
        app.conf  # noqa: B018


def test_settings_are_read_only_after_configuration(app):
    with pytest.raises(AttributeError, match="on_configured receiver"):
        app.conf.broker = "kafka://late"
