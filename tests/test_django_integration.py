"""django_faust as a Django app: the project App, autodiscovery, settings."""

from __future__ import annotations

import importlib

import pytest
from django.core.checks import run_checks
from django.test import override_settings
from django.utils.module_loading import autodiscover_modules

from django_faust import App, app
from django_faust.app.project import get_project_app


def test_project_app_is_built_from_settings():
    assert isinstance(app, App)
    assert app.conf.id == "tests"
    assert app.conf.broker_url == "memory://"
    assert get_project_app() is get_project_app()


def test_agents_of_installed_apps_are_discovered():
    assert "tests.testapp.agents.greet" in app.agents
    assert app.agents["tests.testapp.agents.greet"].app is get_project_app()


def test_discovering_again_registers_nothing_twice():
    before = dict(app.agents)
    autodiscover_modules("agents", "tables", "views")
    importlib.import_module("tests.testapp.agents")
    assert app.agents == before


def test_a_module_that_fails_to_import_raises_its_own_error():
    with pytest.raises(RuntimeError, match=r"brokenapp\.agents exploded"):
        with override_settings(
            INSTALLED_APPS=[
                "django.contrib.contenttypes",
                "django_faust",
                "tests.brokenapp",
            ]
        ):
            pass  # pragma: no cover - populating the registry raises


def test_override_settings_reconfigures_the_app():
    with override_settings(FAUST={"APP_ID": "other", "TOPIC_PARTITIONS": 2}):
        assert app.conf.id == "other"
        assert app.conf.topic_partitions == 2
    assert app.conf.id == "tests"


def test_a_typo_in_settings_is_a_system_check_error_with_a_suggestion():
    with override_settings(FAUST={"APP_ID": "tests", "TOPIC_PARTITONS": 2}):
        errors = run_checks(tags=["django_faust"])
    messages = [e.msg + " " + (e.hint or "") for e in errors]
    assert any("TOPIC_PARTITONS" in m and "TOPIC_PARTITIONS" in m for m in messages)


def test_an_unknown_broker_scheme_is_a_system_check_error():
    with override_settings(FAUST={"BROKER": "rabbit://localhost"}):
        errors = run_checks(tags=["django_faust"])
    assert any('FAUST["BROKER"]' in e.msg and "rabbit" in e.msg for e in errors)


async def test_discovered_agent_runs_in_its_test_context():
    greet = app.agents["tests.testapp.agents.greet"]
    async with greet.test_context() as agent:
        event = await agent.put("ada")
        assert agent.results[event.message.offset] == "hello ada"
