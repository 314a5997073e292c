"""``@app.command``: plain functions, and Faust-style ones taking ``self``."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from django_faust.cli import base as cli_base
from django_faust.cli.base import AppCommand


@pytest.fixture
def run(faust_app, monkeypatch):
    """Run ``manage.py faust <args>`` against ``faust_app``, in process."""
    from django_faust.cli import introspect

    for module in (cli_base, introspect):
        monkeypatch.setattr(module, "get_app", lambda: faust_app)
    from django_faust.cli import faust

    def _run(*args: str):
        return CliRunner().invoke(faust, list(args), catch_exceptions=False)

    return _run


def test_command_taking_self_gets_the_app_and_say(faust_app, run):
    @faust_app.command()
    async def hello(self):
        """Say hello."""
        self.say(f"hi from {self.app.conf.id}")
        self.say("to stderr", err=True)

    result = run("hello")
    assert result.exit_code == 0
    assert result.stdout == f"hi from {faust_app.conf.id}\n"
    assert result.stderr == "to stderr\n"
    assert "Say hello." in run("--help").stdout


def test_command_with_self_and_options(faust_app, run):
    @faust_app.command(
        click.option("--name", default="world"), click.argument("times", type=int)
    )
    def greet(self, name, times):
        for _ in range(times):
            self.say(f"hello {name}")

    result = run("greet", "2", "--name", "ann")
    assert result.stdout == "hello ann\nhello ann\n"


def test_command_without_self_still_gets_only_its_options(faust_app, run):
    got = []

    @faust_app.command(click.option("--count", type=int, default=3))
    async def simulate(count):
        got.append(count)

    assert run("simulate", "--count", "5").exit_code == 0
    assert got == [5]


def test_abort_exits_with_a_status_and_message(faust_app, run):
    @faust_app.command()
    def fail(self):
        self.abort("nothing to do", status=3)

    result = run("fail")
    assert result.exit_code == 3
    assert result.stderr == "nothing to do\n"


def test_base_gives_self_helpers_of_your_own(faust_app, run):
    class Loud(AppCommand):
        def shout(self, text):
            self.say(text.upper())

    @faust_app.command(base=Loud)
    async def yell(self):
        assert isinstance(self, Loud)
        self.shout("hey")

    assert run("yell").stdout == "HEY\n"


def test_agents_command_shows_isolated_agents_as_per_partition(faust_app, run):
    import json

    @faust_app.agent(faust_app.topic("iso-listed"), isolated_partitions=True)
    async def listed(stream):
        async for _ in stream:
            pass

    (row,) = json.loads(run("agents", "--json").stdout)
    assert row["concurrency"] == "per partition"
