from __future__ import annotations

import sys
import types
from typing import Any

import pytest
from django.core import checks
from django.core.checks.registry import registry
from pytest_django import Settings as SettingsWrapper

from django_faust.checks import Tags, check_faust_deployment, check_faust_settings

GOOD_FAUST: dict[str, Any] = {
    "APP_ID": "shop",
    "BROKER": "kafka://k1:9092;k2:9092",
    "STORE": "memory://",
    "TOPIC_PARTITIONS": 8,
    "TOPIC_REPLICATION_FACTOR": 3,
    "BROKER_CREDENTIALS": {
        "SECURITY_PROTOCOL": "SASL_SSL",
        "SASL_MECHANISM": "SCRAM-SHA-256",
        "USERNAME": "shop",
        "PASSWORD": "s3cret",
    },
    "WEB_PORT": 8080,
}


@pytest.fixture
def rocksdict_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes "import rocksdict" raise ImportError.
    monkeypatch.setitem(sys.modules, "rocksdict", None)


@pytest.fixture
def rocksdict_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rocksdict", types.ModuleType("rocksdict"))


def test_good_settings_pass(settings: SettingsWrapper) -> None:
    settings.FAUST = GOOD_FAUST
    assert check_faust_settings(None) == []


def test_missing_faust_passes(settings: SettingsWrapper) -> None:
    del settings.FAUST
    assert check_faust_settings(None) == []


def test_faust_none_passes(settings: SettingsWrapper) -> None:
    settings.FAUST = None
    assert check_faust_settings(None) == []


def test_accepts_the_arguments_django_passes(settings: SettingsWrapper) -> None:
    settings.FAUST = {"WEB_PORT": 0}
    (error,) = check_faust_settings(app_configs=None, databases=["default"])
    assert error.id == "django_faust.E009"
    assert check_faust_settings(app_configs=[], databases=None) == [error]


@pytest.mark.parametrize(
    ("faust", "error_id", "in_message"),
    [
        (["BROKER", "memory://"], "django_faust.E001", "FAUST must be a dict"),
        ({"TOPIC_PARTITONS": 8}, "django_faust.E002", 'FAUST["TOPIC_PARTITONS"]'),
        ({"TOPIC_PARTITIONS": "8"}, "django_faust.E003", "must be int, got '8'"),
        ({"BROKER_CREDENTIALS": "u:p"}, "django_faust.E003", "must be dict or None"),
        ({"TOPIC_PARTITIONS": 0}, "django_faust.E004", "must be at least 1"),
        (
            {"BROKER_HEARTBEAT_INTERVAL": 30},
            "django_faust.E004",
            'FAUST["BROKER_HEARTBEAT_INTERVAL"] (30.0) must be less than',
        ),
        ({"BROKER": "redis://r1"}, "django_faust.E005", "unknown scheme 'redis'"),
        ({"BROKER": "k1:9092"}, "django_faust.E005", "is not a valid URL"),
        (
            {"BROKER": ["kafka://k1", "memory://"]},
            "django_faust.E005",
            "mixes the schemes",
        ),
        ({"STORE": "redis://"}, "django_faust.E006", "unknown scheme 'redis'"),
        (
            {"BROKER_CREDENTIALS": {"USERNAME": "u"}},
            "django_faust.E008",
            'FAUST["BROKER_CREDENTIALS"]["PASSWORD"] is required',
        ),
        (
            {"BROKER_CREDENTIALS": {"USERNAME": "u", "PASSWORD": 1}},
            "django_faust.E008",
            'FAUST["BROKER_CREDENTIALS"]["PASSWORD"] must be str',
        ),
        (
            {"BROKER_CREDENTIALS": {"USER": "u"}},
            "django_faust.E008",
            'Unknown key FAUST["BROKER_CREDENTIALS"]["USER"]',
        ),
        ({"WEB_PORT": 70000}, "django_faust.E009", "between 1 and 65535"),
    ],
)
def test_bad_setting_gives_error(
    settings: SettingsWrapper, faust: object, error_id: str, in_message: str
) -> None:
    settings.FAUST = faust
    (error,) = check_faust_settings(None)
    assert isinstance(error, checks.Error)
    assert error.id == error_id
    assert in_message in error.msg


def test_unknown_key_hint_names_the_closest_key(settings: SettingsWrapper) -> None:
    settings.FAUST = {"TOPIC_PARTITONS": 8}
    (error,) = check_faust_settings(None)
    assert error.msg == 'Unknown setting FAUST["TOPIC_PARTITONS"].'
    assert error.hint == 'Did you mean "TOPIC_PARTITIONS"?'


def test_unknown_broker_scheme_names_setting_scheme_and_valid_schemes(
    settings: SettingsWrapper,
) -> None:
    settings.FAUST = {"BROKER": "redis://r1"}
    (error,) = check_faust_settings(None)
    assert error.msg == (
        "FAUST[\"BROKER\"] has unknown scheme 'redis' in 'redis://r1'; valid "
        "broker schemes are: memory, kafka, aiokafka."
    )


def test_unknown_store_scheme_lists_valid_schemes(settings: SettingsWrapper) -> None:
    settings.FAUST = {"STORE": "redis://"}
    (error,) = check_faust_settings(None)
    assert error.msg.startswith('FAUST["STORE"] ')
    assert error.msg.endswith("valid store schemes are: memory, rocksdb.")


def test_every_problem_is_reported(settings: SettingsWrapper) -> None:
    settings.FAUST = {"TOPIC_PARTITONS": 8, "WEB_PORT": 0, "VERSION": "1"}
    ids = sorted(message.id or "" for message in check_faust_settings(None))
    assert ids == ["django_faust.E002", "django_faust.E003", "django_faust.E009"]


@pytest.mark.usefixtures("rocksdict_missing")
@pytest.mark.parametrize("store", ["rocksdb://", "rocksdb:///srv/tables"])
def test_rocksdb_store_without_rocksdict(settings: SettingsWrapper, store: str) -> None:
    settings.FAUST = {"STORE": store}
    (error,) = check_faust_settings(None)
    assert error.id == "django_faust.E007"
    assert error.msg.startswith(f'FAUST["STORE"] is {store!r}, but the rocksdict')
    assert error.hint == "pip install django-faust[rocksdb]"


@pytest.mark.usefixtures("rocksdict_installed")
def test_rocksdb_store_with_rocksdict(settings: SettingsWrapper) -> None:
    settings.FAUST = {"STORE": "rocksdb://"}
    assert check_faust_settings(None) == []


@pytest.mark.usefixtures("rocksdict_missing")
def test_memory_store_does_not_need_rocksdict(settings: SettingsWrapper) -> None:
    settings.FAUST = {"STORE": "memory://"}
    assert check_faust_settings(None) == []


@pytest.mark.usefixtures("rocksdict_missing")
def test_invalid_store_is_not_also_reported_as_missing_driver(
    settings: SettingsWrapper,
) -> None:
    settings.FAUST = {"STORE": 3}
    assert [error.id for error in check_faust_settings(None)] == ["django_faust.E003"]


def test_checks_are_registered_with_the_tag(settings: SettingsWrapper) -> None:
    assert check_faust_settings in registry.get_checks()
    assert check_faust_deployment not in registry.get_checks()
    assert check_faust_deployment in registry.get_checks(include_deployment_checks=True)
    settings.FAUST = {"WEB_PORT": 0}
    messages = checks.run_checks(tags=[Tags.django_faust])
    assert "django_faust.E009" in [message.id for message in messages]


# Deployment warnings -----------------------------------------------------------


@pytest.mark.parametrize("broker", ["kafka://k1", "aiokafka://k1;k2"])
def test_replication_factor_one_with_kafka_warns(
    settings: SettingsWrapper, broker: str
) -> None:
    settings.FAUST = {"BROKER": broker}
    (warning,) = check_faust_deployment(None)
    assert isinstance(warning, checks.Warning)
    assert warning.id == "django_faust.W001"
    assert 'FAUST["TOPIC_REPLICATION_FACTOR"] is 1' in warning.msg


@pytest.mark.parametrize(
    "faust",
    [
        {"BROKER": "kafka://k1", "TOPIC_REPLICATION_FACTOR": 3},
        {"BROKER": "memory://"},
        {"BROKER": "kafka://k1", "WEB_PORT": 0},  # an error, reported elsewhere
        ["not", "a", "dict"],
    ],
)
def test_no_deployment_warning(settings: SettingsWrapper, faust: object) -> None:
    settings.FAUST = faust
    assert check_faust_deployment(None) == []


def test_deployment_check_runs_with_deploy_flag(settings: SettingsWrapper) -> None:
    settings.FAUST = {"BROKER": "kafka://k1"}
    ids = [message.id for message in checks.run_checks(tags=[Tags.django_faust])]
    assert "django_faust.W001" not in ids
    messages = checks.run_checks(
        tags=[Tags.django_faust], include_deployment_checks=True
    )
    assert "django_faust.W001" in [message.id for message in messages]
