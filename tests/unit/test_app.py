"""The App: declarations, signals, tasks, timers, services, sending, shutdown."""

from __future__ import annotations

import asyncio

import pytest
from mode import Service

from django_faust import TP, App
from django_faust.exceptions import ImproperlyConfigured
from django_faust.testing import make_app, running
from tests.helpers import committed, wait_for


def test_configuration_signals_fire_in_order():
    calls = []
    app = App("signals", broker="memory://signals")
    app.on_before_configured.connect(lambda sender, **kw: calls.append("before"))
    app.on_configured.connect(
        lambda sender, conf, **kw: calls.append(("configured", conf.id))
    )
    app.on_after_configured.connect(lambda sender, **kw: calls.append("after"))
    assert app.conf.id == "signals"
    assert calls == ["before", ("configured", "signals"), "after"]


def test_signal_connected_on_the_class_reaches_every_app():
    got = []

    def receiver(sender, **kwargs):
        got.append(sender)

    App.on_after_configured.connect(receiver)
    try:
        one, two = App("one"), App("two")
        one.conf, two.conf  # noqa: B018
    finally:
        App.on_after_configured.disconnect(receiver)
    assert got == [one, two]


async def test_rebalance_signals_carry_the_partitions(faust_app):
    assigned, revoked = [], []

    @faust_app.on_partitions_assigned.connect
    async def on_assigned(app, tps, **kwargs):
        assigned.append(set(tps))

    @faust_app.on_partitions_revoked.connect
    async def on_revoked(app, tps, **kwargs):
        revoked.append(set(tps))

    topic = faust_app.topic("sig", partitions=2)

    @faust_app.agent(topic)
    async def reader(stream):
        async for _ in stream:
            pass

    async with running(faust_app):
        await wait_for(lambda: assigned)
    assert assigned[-1] == {TP("sig", 0), TP("sig", 1)}
    assert revoked == [] or all(isinstance(r, set) for r in revoked)


async def test_tasks_run_once_after_start_and_may_take_the_app(faust_app):
    got = []

    @faust_app.task
    async def no_args():
        got.append("no-args")

    @faust_app.task()
    async def with_app(app):
        got.append(app)

    async with running(faust_app):
        await wait_for(lambda: len(got) == 2)
    assert "no-args" in got and faust_app in got


async def test_timers_repeat_and_survive_errors(faust_app):
    ticks = []

    @faust_app.timer(0.01)
    async def tick():
        ticks.append(1)
        if len(ticks) == 2:
            raise RuntimeError("one bad tick")

    async with running(faust_app):
        await wait_for(lambda: len(ticks) >= 4)


async def test_leader_timer_runs_on_the_group_leader(faust_app):
    runs = []

    @faust_app.timer(0.01, on_leader=True)
    async def lead():
        runs.append(1)

    @faust_app.agent(faust_app.topic("lead", partitions=1))
    async def reader(stream):
        async for _ in stream:
            pass

    async with running(faust_app):
        await wait_for(lambda: runs)
        assert faust_app.is_leader()


def test_timer_takes_on_leader_positionally_as_in_faust(faust_app):
    @faust_app.timer(5.0, True)
    async def every_5_seconds():
        pass

    (spec,) = faust_app.timers.values()
    assert (spec.interval, spec.on_leader) == (5.0, True)


def test_timer_needs_a_positive_interval(faust_app):
    with pytest.raises(ImproperlyConfigured, match="interval"):
        faust_app.timer(0)


def test_task_needs_async_function(faust_app):
    with pytest.raises(ImproperlyConfigured, match="async def"):

        @faust_app.task
        def sync():
            pass


async def test_services_start_and_stop_with_the_app(faust_app):
    events = []

    @faust_app.service
    class Heartbeat(Service):
        async def on_start(self):
            events.append("start")

        async def on_stop(self):
            events.append("stop")

    async with running(faust_app):
        assert events == ["start"]
    assert events == ["start", "stop"]


async def test_send_callback_and_metadata(faust_app):
    topic = faust_app.topic("meta", partitions=2)
    called = []
    async with running(faust_app):
        fut = await faust_app.send(
            topic, key=b"k", value=b"v", partition=1, callback=called.append
        )
        metadata = await fut
        assert (metadata.topic, metadata.partition, metadata.offset) == ("meta", 1, 0)
        again = await topic.send_and_wait(key=b"k", value=b"v2", partition=1)
        assert again.offset == 1
        soon = topic.send_soon(value={"a": 1}, partition=0)
        assert (await soon).partition == 0
    assert called and called[0].result() == metadata


async def test_send_soon_failure_is_logged_with_the_topic(faust_app, caplog):
    topic = faust_app.topic("tiny", partitions=1)
    async with running(faust_app):
        await topic.declare()
        fut = topic.send_soon(value=b"x", partition=3)
        with pytest.raises(ValueError):
            await fut
    assert "Sending to topic 'tiny' failed" in caplog.text


async def test_stop_lets_the_event_in_hand_finish_and_commits_it(faust_app):
    topic = faust_app.topic("graceful", value_type=int, partitions=1)
    started, finished = [], []

    @faust_app.agent(topic)
    async def slow(stream):
        async for value in stream:
            started.append(value)
            await asyncio.sleep(0.2)
            finished.append(value)

    await faust_app.start()
    for i in range(5):
        await topic.send(value=i)
    await wait_for(lambda: started)
    await faust_app.stop()
    # The event in hand finished; nothing after it was started.
    assert finished == started
    assert committed(faust_app)[TP("graceful", 0)] == len(finished)


async def test_client_only_app_sends_without_consuming():
    app = make_app()
    topic = app.topic("client", partitions=1)

    @app.agent(topic)
    async def never(stream):
        async for _ in stream:
            raise AssertionError("client-only apps run no agents")

    await app.start_client()
    try:
        md = await topic.send_and_wait(value=b"x")
        assert md.offset == 0
        assert not never.started
    finally:
        await app.stop()


def test_resolving_something_that_is_not_a_channel_names_it(faust_app):
    with pytest.raises(ImproperlyConfigured, match="42"):
        faust_app._resolve_channel(42)
