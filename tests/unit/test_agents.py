"""Agents: concurrency, sinks, errors, supervision and the test context."""

from __future__ import annotations

import asyncio

import pytest
from mode import CrashingSupervisor

from django_faust import TP, Record, current_event
from django_faust.exceptions import ImproperlyConfigured, TableWriteError
from django_faust.testing import running
from tests.helpers import committed, log_of, wait_for


class Payment(Record):
    user: str
    cents: int


async def test_agent_without_channel_gets_a_topic_named_after_it(faust_app):
    @faust_app.agent()
    async def reconcile(stream):
        async for _ in stream:
            pass

    assert reconcile.channel.get_topic_name() == (
        f"{faust_app.conf.id}-{__name__}."
        "test_agent_without_channel_gets_a_topic_named_after_it.<locals>.reconcile"
    )


async def test_agent_topic_options_configure_its_own_topic(faust_app):
    @faust_app.agent(value_type=Payment, partitions=3)
    async def pay(stream):
        async for _ in stream:
            pass

    assert pay.channel.value_type is Payment
    async with running(faust_app):
        assert faust_app.transport.broker.partitions(pay.channel.get_topic_name()) == 3


async def test_agent_needs_async_function(faust_app):
    with pytest.raises(ImproperlyConfigured, match="async def"):

        @faust_app.agent()
        def not_async(stream):
            pass


async def test_yielded_values_go_to_every_sink(faust_app):
    topic = faust_app.topic("in", value_type=int, partitions=1)
    out_topic = faust_app.topic("out", value_type=int, partitions=1)
    from_agent, from_callable, from_async = [], [], []

    @faust_app.agent(faust_app.channel())
    async def downstream(stream):
        async for value in stream:
            from_agent.append(value)

    async def async_sink(value):
        from_async.append(value)

    @faust_app.agent(
        topic, sink=[downstream, out_topic, from_callable.append, async_sink]
    )
    async def double(stream):
        async for value in stream:
            yield value * 2

    async with running(faust_app):
        for i in range(3):
            await topic.send(value=i)
        await wait_for(lambda: len(from_agent) == 3 and len(from_async) == 3)
    assert from_agent == from_callable == from_async == [0, 2, 4]
    assert [m.value for m in log_of(faust_app, "out")] == [b"0", b"2", b"4"]


async def test_concurrency_runs_events_at_the_same_time(faust_app):
    topic = faust_app.topic("slow", value_type=int, partitions=1)
    running_now = 0
    peak = 0
    done = []

    @faust_app.agent(topic, concurrency=4)
    async def slow(stream):
        nonlocal running_now, peak
        async for value in stream:
            running_now += 1
            peak = max(peak, running_now)
            await asyncio.sleep(0.05)
            running_now -= 1
            done.append(value)

    async with running(faust_app):
        for i in range(8):
            await topic.send(value=i)
        await wait_for(lambda: len(done) == 8)
        await faust_app.consumer.commit()
    assert peak == 4
    assert sorted(done) == list(range(8))
    assert committed(faust_app)[TP("slow", 0)] == 8


async def test_an_event_that_raises_is_sent_aside_and_the_agent_goes_on(
    faust_app, caplog
):
    topic = faust_app.topic("risky", value_type=int, partitions=1)
    processed, errors = [], []

    def on_error(agent, exc):
        errors.append((agent.name, str(exc)))

    @faust_app.agent(topic, on_error=on_error)
    async def risky(stream):
        async for value in stream:
            if value == 3:
                raise ValueError("three is bad")
            processed.append(value)

    async with running(faust_app):
        for i in range(6):
            await topic.send(value=i)
        await wait_for(lambda: len(processed) == 5, timeout=10)
        await wait_for(lambda: faust_app.consumer.trackers[TP("risky", 0)].acked == 6)
    assert processed == [0, 1, 2, 4, 5]
    assert errors == [(risky.name, "three is bad")]
    dead = log_of(faust_app, faust_app.conf.dead_letter_topic)
    assert [m.value for m in dead] == [b"3"]
    headers = dict(dead[0].headers)
    assert headers["django_faust.stage"] == b"agent"
    assert b"three is bad" in headers["django_faust.error"]
    assert headers["django_faust.agent"] == risky.name.encode()
    assert "three is bad" in caplog.text


async def test_crashing_supervisor_takes_the_app_down(faust_app):
    topic = faust_app.topic("fatal", value_type=int, partitions=1)

    @faust_app.agent(topic, supervisor_strategy=CrashingSupervisor)
    async def fatal(stream):
        async for _ in stream:
            raise RuntimeError("boom")

    async with running(faust_app):
        await topic.send(value=1)
        await wait_for(lambda: faust_app.crashed)


async def test_current_event_inside_an_agent(faust_app):
    topic = faust_app.topic("ctx", key_type=str, value_type=int, partitions=1)
    seen = []

    @faust_app.agent(topic)
    async def ctx(stream):
        async for _value in stream:
            event = current_event()
            seen.append((event.key, event.value, event.message.offset))

    async with running(faust_app):
        await topic.send(key="k", value=10)
        await topic.send(key="j", value=11)
        await wait_for(lambda: len(seen) == 2)
    assert seen == [("k", 10, 0), ("j", 11, 1)]


async def test_send_to_an_agent(faust_app):
    got = []

    @faust_app.agent()
    async def inbox(stream):
        async for value in stream:
            got.append(value)

    async with running(faust_app):
        await inbox.send(value={"hello": "world"})
        await faust_app.send(inbox, value=[1, 2])
        await wait_for(lambda: len(got) == 2)
    assert got == [{"hello": "world"}, [1, 2]]


async def test_test_context_processes_one_value_at_a_time(faust_app):
    @faust_app.agent(value_type=Payment)
    async def fee(stream):
        async for payment in stream:
            yield payment.cents // 100

    async with fee.test_context() as agent:
        event = await agent.put(Payment(user="u", cents=250))
        assert agent.results[event.message.offset] == 2
        event = await agent.put(Payment(user="v", cents=1000))
        assert agent.results[event.message.offset] == 10


async def test_test_context_reports_errors(faust_app):
    @faust_app.agent()
    async def picky(stream):
        async for value in stream:
            if value < 0:
                raise ValueError("negative")
            yield value

    async with picky.test_context() as agent:
        await agent.put(-1)
        await agent.put(5)
        assert [str(e) for e in agent.errors] == ["negative"]
        assert list(agent.results.values()) == [5]


async def test_table_counts_per_key(faust_app):
    topic = faust_app.topic("clicks", key_type=str, value_type=int, partitions=2)
    counts = faust_app.Table("click_counts", default=int)

    @faust_app.agent(topic)
    async def count(stream):
        async for key, _ in stream.items():
            counts[key] += 1

    async with running(faust_app):
        for i in range(30):
            await topic.send(key=f"page{i % 3}", value=i)
        await wait_for(lambda: sum(counts.values()) == 30)
    assert dict(counts) == {"page0": 10, "page1": 10, "page2": 10}
    assert faust_app.tables["click_counts"] is counts


async def test_table_without_default_raises_keyerror(faust_app):
    table = faust_app.Table("strict")
    with pytest.raises(KeyError):
        table["missing"]


def test_table_write_outside_a_stream_is_refused(faust_app):
    table = faust_app.Table("guarded", default=int)
    assert table["x"] == 0  # reading is fine, and stores nothing
    assert "x" not in table
    with pytest.raises(TableWriteError, match="guarded"):
        table["x"] = 1
    with pytest.raises(TableWriteError):
        del table["x"]


async def test_table_write_from_concurrent_agent_is_refused(faust_app):
    topic = faust_app.topic("conc", value_type=int, partitions=1)
    table = faust_app.Table("conc_table", default=int)
    errors = []

    @faust_app.agent(topic, concurrency=2, on_error=lambda a, e: errors.append(e))
    async def writer(stream):
        async for value in stream:
            table[value] = 1

    async with running(faust_app):
        await topic.send(value=1)
        await wait_for(lambda: errors)
    assert isinstance(errors[0], TableWriteError)
    assert "concurrency=2" in str(errors[0])


def test_two_tables_with_one_name_from_different_modules_clash(faust_app):
    faust_app.Table("dup")
    ns: dict = {"app": faust_app, "__name__": "other.module"}
    with pytest.raises(ImproperlyConfigured, match="declared twice"):
        exec("app.Table('dup')", ns)


def test_redeclaring_an_agent_replaces_it(faust_app):
    def declare():
        @faust_app.agent(name="same")
        async def same(stream):
            async for _ in stream:
                pass

        return same

    first, second = declare(), declare()
    assert faust_app.agents == {"same": second}
    assert first is not second


async def test_a_burst_of_failing_events_never_stops_the_agent(faust_app):
    topic = faust_app.topic("bursty", value_type=int, partitions=1)
    good = []

    @faust_app.agent(topic)
    async def bursty(stream):
        async for value in stream:
            if value < 0:
                raise ValueError(f"bad {value}")
            good.append(value)

    async with running(faust_app):
        for i in range(30):
            await topic.send(value=-1 - i)
        for i in range(5):
            await topic.send(value=i)
        await wait_for(lambda: good == [0, 1, 2, 3, 4], timeout=10)
    assert bursty.errors_total == 30
    assert len(log_of(faust_app, faust_app.conf.dead_letter_topic)) == 30


async def test_one_for_all_restarts_the_siblings_too(faust_app):
    from mode import OneForAllSupervisor

    topic = faust_app.topic("ofa", value_type=int, partitions=1)
    done = []

    @faust_app.agent(topic, concurrency=2, supervisor_strategy=OneForAllSupervisor)
    async def pair(stream):
        async for value in stream:
            if value == 0:
                raise RuntimeError("first one fails")
            done.append(value)

    async with running(faust_app):
        await topic.send(value=0)
        await wait_for(lambda: all(a.restarts == 1 for a in pair.actors))
        for i in range(1, 5):
            await topic.send(value=i)
        await wait_for(lambda: sorted(done) == [1, 2, 3, 4])


async def test_an_agent_function_failing_before_its_loop_backs_off(faust_app):
    attempts = []

    @faust_app.agent(faust_app.topic("early", partitions=1))
    async def early(stream):
        attempts.append(1)
        raise RuntimeError("broken setup")

    async with running(faust_app):
        await asyncio.sleep(0.3)
    # Restarted, but with back-off rather than in a tight loop.
    assert 2 <= len(attempts) < 20


async def test_forfeit_one_for_one_stops_only_the_failed_actor(faust_app):
    from mode import ForfeitOneForOneSupervisor

    topic = faust_app.topic("forfeit", value_type=int, partitions=1)
    done = []

    @faust_app.agent(
        topic, concurrency=2, supervisor_strategy=ForfeitOneForOneSupervisor
    )
    async def pair(stream):
        async for value in stream:
            if value == 0:
                raise RuntimeError("gives up")
            done.append(value)

    async with running(faust_app):
        await topic.send(value=0)
        await wait_for(lambda: any(a._task.done() for a in pair.actors))
        for i in range(1, 4):
            await topic.send(value=i)
        await wait_for(lambda: sorted(done) == [1, 2, 3])


async def test_forfeit_one_for_all_stops_every_actor(faust_app):
    from mode import ForfeitOneForAllSupervisor

    topic = faust_app.topic("forfeit-all", value_type=int, partitions=1)

    @faust_app.agent(
        topic, concurrency=3, supervisor_strategy=ForfeitOneForAllSupervisor
    )
    async def trio(stream):
        async for value in stream:
            if value == 0:
                raise RuntimeError("everyone gives up")

    async with running(faust_app):
        await topic.send(value=0)
        await wait_for(lambda: all(a._task.done() for a in trio.actors))
        assert trio.errors_total == 1


def test_supervision_maps_mode_strategies_subclasses_and_paths():
    import mode

    from django_faust.agents import Supervision, supervision_for

    class Patient(mode.OneForAllSupervisor):
        pass

    assert supervision_for(mode.OneForOneSupervisor, agent="a") is (
        Supervision.RESTART_ONE
    )
    assert supervision_for(Patient, agent="a") is Supervision.RESTART_ALL
    assert supervision_for("mode.CrashingSupervisor", agent="a") is Supervision.CRASH
    assert supervision_for(
        "mode.supervisors.ForfeitOneForOneSupervisor", agent="a"
    ) is (Supervision.FORFEIT_ONE)


async def test_unknown_supervisor_strategy_is_refused_at_declaration(faust_app):
    with pytest.raises(ImproperlyConfigured, match="Agent sloppy: unknown supervisor"):

        @faust_app.agent(name="sloppy", supervisor_strategy=dict)
        async def sloppy(stream):
            async for _ in stream:
                pass

    with pytest.raises(ImproperlyConfigured, match=r"Agent typo: .*cannot be imported"):

        @faust_app.agent(name="typo", supervisor_strategy="mode.OneForOneSupervizor")
        async def typo(stream):
            async for _ in stream:
                pass


async def test_unknown_agent_supervisor_setting_fails_the_start_naming_the_agent():
    from django_faust.testing import make_app

    app = make_app(agent_supervisor="collections.OrderedDict")

    @app.agent(name="plain")
    async def plain(stream):
        async for _ in stream:
            pass

    with pytest.raises(ImproperlyConfigured, match="Agent plain: unknown supervisor"):
        async with running(app):
            pass


def test_agent_test_wrapper_lives_in_testing_and_the_old_import_works():
    from django_faust.agents import AgentTestWrapper as old
    from django_faust.testing import AgentTestWrapper
    from django_faust.testing.agents import AgentTestWrapper as module_level

    assert old is AgentTestWrapper is module_level


async def test_test_context_yields_the_testing_wrapper(faust_app):
    from django_faust.testing import AgentTestWrapper

    @faust_app.agent()
    async def echo(stream):
        async for value in stream:
            yield value

    async with echo.test_context() as agent:
        assert isinstance(agent, AgentTestWrapper)
        event = await agent.put("hi")
        assert agent.results[event.message.offset] == "hi"
