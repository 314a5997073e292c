"""Poison events: every kind of bad event under every POISON_POLICY.

A bad key, a bad value, a value failing its Record's validation and an
event an agent raises on are each logged once with topic, partition and
offset; then 'dead_letter' sends the original bytes aside, 'skip' only
logs, and 'stop' stops the app without committing the event or anything
after it.
"""

from __future__ import annotations

import json
import logging

import pytest

from django_faust import TP, Record
from django_faust.exceptions import ImproperlyConfigured, PoisonEventError
from django_faust.testing import make_app, running
from tests.helpers import committed, log_of, wait_for

KINDS = ("key", "value", "validation", "agent")
POLICIES = ("dead_letter", "skip", "stop")


class Account(Record, validation=True):
    name: str


class Deposit(Record, validation=True):
    account: str
    cents: int


GOOD_KEY = json.dumps({"name": "alice"}).encode()
GOOD_VALUE = json.dumps({"account": "alice", "cents": 5}).encode()

#: The bytes of the poison event of each kind: (key, value).
POISON = {
    "key": (b"{not json", GOOD_VALUE),
    "value": (GOOD_KEY, b"{not json"),
    "validation": (GOOD_KEY, json.dumps({"account": "bob", "cents": "ten"}).encode()),
    # Decodes fine; the agent below raises on negative amounts.
    "agent": (GOOD_KEY, json.dumps({"account": "bob", "cents": -1}).encode()),
}


def _app(policy: str, per_agent: bool):
    """App-wide policy, or the app at the default and the agent choosing."""
    app = make_app() if per_agent else make_app(poison_policy=policy)
    topic = app.topic(
        "deposits",
        key_type=Account,
        value_type=Deposit,
        key_serializer="json",
        partitions=1,
    )
    done: list[int] = []

    @app.agent(topic, name="bank", poison_policy=policy if per_agent else None)
    async def bank(stream):
        async for _account, deposit in stream.items():
            if deposit.cents < 0:
                raise ValueError("negative deposit")
            done.append(deposit.cents)

    return app, done


def _lines(caplog, needle: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if needle in r.getMessage()]


@pytest.mark.parametrize("per_agent", [False, True], ids=["app", "agent"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("policy", ("dead_letter", "skip"))
async def test_a_poison_event_is_logged_once_and_its_partition_moves_on(
    policy, kind, per_agent, caplog
):
    app, done = _app(policy, per_agent)
    key, value = POISON[kind]
    async with running(app):
        producer = await app.maybe_start_producer()
        await producer.send("deposits", key, value)
        await producer.send("deposits", GOOD_KEY, GOOD_VALUE)
        await wait_for(lambda: done == [5])
        await app.commit(None)
        assert committed(app)[TP("deposits", 0)] == 2
        assert not app.crashed
    lines = _lines(caplog, "deposits[0]@0")
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].levelno == logging.ERROR
    dead = log_of(app, app.conf.dead_letter_topic)
    if policy == "skip":
        assert dead == []
        assert "Skipped" in lines[0].getMessage()
        return
    assert [(m.key, m.value) for m in dead] == [(key, value)]
    headers = dict(dead[0].headers)
    assert headers["django_faust.stage"] == kind.encode()
    assert headers["django_faust.topic"] == b"deposits"
    assert headers["django_faust.partition"] == b"0"
    assert headers["django_faust.offset"] == b"0"
    assert headers["django_faust.error"]
    if kind == "agent":
        assert headers["django_faust.agent"] == b"bank"
        assert b"negative deposit" in headers["django_faust.error"]


@pytest.mark.parametrize("per_agent", [False, True], ids=["app", "agent"])
@pytest.mark.parametrize("kind", KINDS)
async def test_policy_stop_crashes_the_app_and_commits_nothing_past_the_event(
    kind, per_agent, caplog
):
    app, done = _app("stop", per_agent)
    key, value = POISON[kind]
    async with running(app):
        producer = await app.maybe_start_producer()
        await producer.send("deposits", GOOD_KEY, GOOD_VALUE)
        await producer.send("deposits", key, value)
        await producer.send("deposits", GOOD_KEY, GOOD_VALUE)
        await wait_for(lambda: app.crashed)
        assert isinstance(app.crash_reason, PoisonEventError)
        reason = app.crash_reason
        assert (reason.topic, reason.partition, reason.offset) == ("deposits", 0, 1)
        assert reason.stage == kind
        assert "deposits[0]@1" in str(reason) and "'stop'" in str(reason)
    # The event before it is done and committed; the poison one and the
    # one after it are not: both are read again after a restart.
    assert done == [5]
    assert committed(app)[TP("deposits", 0)] == 1
    assert log_of(app, app.conf.dead_letter_topic) == []
    lines = _lines(caplog, "deposits[0]@1")
    assert len(lines) == 1
    assert lines[0].levelno == logging.CRITICAL


async def test_an_agent_policy_overrides_the_app_policy(caplog):
    app = make_app(poison_policy="stop")
    topic = app.topic("numbers", value_type=int, partitions=1)
    seen = []

    @app.agent(topic, poison_policy="skip")
    async def lenient(stream):
        async for n in stream:
            seen.append(n)

    async with running(app):
        producer = await app.maybe_start_producer()
        await producer.send("numbers", None, b"not a number")
        await producer.send("numbers", None, b"7")
        await wait_for(lambda: seen == [7])
        assert not app.crashed


def test_an_unknown_policy_is_refused_naming_the_agent():
    app = make_app()
    with pytest.raises(ImproperlyConfigured, match="Agent picky: poison_policy"):

        @app.agent(app.topic("t"), name="picky", poison_policy="ignore")
        async def picky(stream):
            async for _ in stream:
                pass


def test_an_unknown_app_policy_is_refused_naming_the_setting():
    with pytest.raises(ImproperlyConfigured, match="poison_policy must be one of"):
        make_app(poison_policy="ignore").conf  # noqa: B018


# Reading and replaying the dead-letter topic -----------------------------------------


async def test_dead_letters_are_listed_filtered_and_replayed_once_fixed():
    from django_faust.dead_letters import read_dead_letters, replay, select

    app = make_app()
    topic = app.topic("orders", value_type=int, partitions=2)
    fixed = False
    done: list[int] = []

    @app.agent(topic, name="picky")
    async def picky(stream):
        async for n in stream:
            if n % 2 and not fixed:
                raise ValueError(f"odd {n}")
            done.append(n)

    async with running(app):
        producer = await app.maybe_start_producer()
        for n in range(6):
            await producer.send("orders", b"k%d" % n, b"%d" % n, partition=n % 2)
        await producer.send("orders", None, b"oops", partition=0)
        await wait_for(lambda: len(done) == 3 and app.dead_letters.total == 4)
        await wait_for(lambda: len(log_of(app, app.conf.dead_letter_topic)) == 4)

        letters = await read_dead_letters(app)
        assert sorted((d.source_partition, d.source_offset) for d in letters) == [
            (0, 3),
            (1, 0),
            (1, 1),
            (1, 2),
        ]
        by_source = {(d.source_partition, d.source_offset): d for d in letters}
        assert by_source[(0, 3)].stage == "value"
        assert by_source[(0, 3)].agent == "picky"
        assert by_source[(1, 1)].stage == "agent"
        assert by_source[(1, 1)].key == b"k3"
        assert "odd 3" in by_source[(1, 1)].error
        assert by_source[(1, 1)].headers == ()
        # Filters: the agent's failures on partition 1, offsets 1 to 2.
        chosen = select(letters, agent="picky", partition=1, offsets=(1, 2))
        assert [d.value for d in chosen] == [b"3", b"5"]
        assert select(letters, topic="elsewhere") == []

        fixed = True
        assert await replay(app, chosen) == 2
        await wait_for(lambda: sorted(done) == [0, 2, 3, 4, 5])
    # Sent back to their own partition, after what was there.
    replayed = [m for m in log_of(app, "orders") if m.offset >= 3 and m.partition == 1]
    assert [m.value for m in replayed] == [b"3", b"5"]


def test_the_dead_letters_command_lists_and_replays_from_the_project(monkeypatch):
    import importlib

    from click.testing import CliRunner

    from django_faust.cli import faust

    # (the package's ``dead_letters`` attribute is the command group)
    dead_letters = importlib.import_module("django_faust.cli.dead_letters")

    # The command starts (and stops) its app; a process runs it once, but
    # this test process keeps the project app for other tests: give the
    # command an app of its own.
    monkeypatch.setattr(dead_letters, "get_app", lambda: make_app("cli-letters"))
    runner = CliRunner()
    assert "dead-letters" in runner.invoke(faust, ["--help"]).output
    listed = runner.invoke(faust, ["dead-letters", "list"])
    assert listed.exit_code == 0, listed.output
    assert "0 dead letter(s) in " in listed.output
    dry = runner.invoke(faust, ["dead-letters", "replay", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "Dry run: 0 dead letter(s) would be replayed." in dry.output
    bad = runner.invoke(faust, ["dead-letters", "list", "--offsets", "9-3"])
    assert bad.exit_code == 2
    assert "9 is past 3" in bad.output
