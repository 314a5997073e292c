"""``@app.crontab``: cron schedules, their time zone, and jobs that really run.

The schedule is computed from an injected clock, so nothing here waits for
a real minute to pass.
"""

from __future__ import annotations

import asyncio
import datetime
from zoneinfo import ZoneInfo

import pytest

from django_faust.app import base as app_base
from django_faust.app.crontab import Crontab
from django_faust.exceptions import ImproperlyConfigured
from django_faust.testing import make_app, running
from tests.helpers import wait_for

UTC = datetime.UTC
OSLO = ZoneInfo("Europe/Oslo")


def at(*args: int, tz: datetime.tzinfo = UTC) -> float:
    return datetime.datetime(*args, tzinfo=tz).timestamp()


def utc(ts: datetime.datetime) -> datetime.datetime:
    return ts.astimezone(UTC)


@pytest.mark.parametrize(
    ("expression", "now", "expected"),
    [
        ("* * * * *", at(2026, 1, 1, 12, 0, 30), at(2026, 1, 1, 12, 1)),
        # Exactly on a scheduled time: the next one, never the same again.
        ("* * * * *", at(2026, 1, 1, 12, 1), at(2026, 1, 1, 12, 2)),
        ("*/15 * * * *", at(2026, 1, 1, 12, 16), at(2026, 1, 1, 12, 30)),
        ("0 9-17/4 * * *", at(2026, 1, 1, 13, 1), at(2026, 1, 1, 17, 0)),
        ("5,35 * * * *", at(2026, 1, 1, 12, 6), at(2026, 1, 1, 12, 35)),
        # 2026-01-03 is a Saturday: weekdays resume on Monday.
        ("0 9 * * mon-fri", at(2026, 1, 3, 10, 0), at(2026, 1, 5, 9, 0)),
        ("0 0 1 jan *", at(2026, 6, 1), at(2027, 1, 1)),
        ("@hourly", at(2026, 1, 1, 12, 30), at(2026, 1, 1, 13, 0)),
        ("@daily", at(2026, 1, 1, 12, 30), at(2026, 1, 2)),
        ("@midnight", at(2026, 1, 1, 12, 30), at(2026, 1, 2)),
        ("@weekly", at(2026, 1, 1, 12, 30), at(2026, 1, 4)),  # a Sunday
        ("@monthly", at(2026, 1, 1, 12, 30), at(2026, 2, 1)),
        ("@yearly", at(2026, 1, 1, 12, 30), at(2027, 1, 1)),
        ("@annually", at(2026, 1, 1, 12, 30), at(2027, 1, 1)),
    ],
)
def test_next_run(expression: str, now: float, expected: float) -> None:
    assert Crontab(expression).next_run(now).timestamp() == expected


def test_times_are_wall_clock_times_in_the_zone() -> None:
    nine = Crontab("0 9 * * *")
    # 09:00 in Oslo is 08:00 UTC in winter and 07:00 UTC in summer.
    assert utc(nine.next_run(at(2026, 1, 10), OSLO)).hour == 8
    assert utc(nine.next_run(at(2026, 7, 10), OSLO)).hour == 7
    # The job's own zone wins over the one the app passes.
    own = Crontab("0 9 * * *", timezone=OSLO)
    assert utc(own.next_run(at(2026, 1, 10), UTC)).hour == 8


def test_daily_job_runs_once_on_both_dst_change_nights() -> None:
    job = Crontab("30 2 * * *")
    # Spring forward (2026-03-29, 02:00 -> 03:00): 02:30 does not exist,
    # the job runs at 03:00 local, once.
    spring = job.next_run(at(2026, 3, 28, 12, tz=OSLO), OSLO)
    assert spring.timestamp() == at(2026, 3, 29, 3, 0, tz=OSLO)
    # Fall back (2026-10-25, 03:00 -> 02:00): 02:30 happens twice; the job
    # runs on the first, then not again until the next night.
    first = job.next_run(at(2026, 10, 24, 12, tz=OSLO), OSLO)
    assert utc(first) == datetime.datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    second = job.next_run(first.timestamp(), OSLO)
    assert utc(second) == datetime.datetime(2026, 10, 26, 1, 30, tzinfo=UTC)


def test_hourly_job_runs_every_real_hour_across_fall_back() -> None:
    job = Crontab("0 * * * *")
    now = at(2026, 10, 24, 23, 30)  # 01:30 in Oslo, summer time
    runs = []
    for _ in range(4):
        now = job.next_run(now, OSLO).timestamp()
        runs.append(datetime.datetime.fromtimestamp(now, UTC).hour)
    # 02:00 CEST, 02:00 CET, 03:00, 04:00: one hour apart each.
    assert runs == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("61 * * * *", "61"),
        ("* * * *", "five fields"),
        ("@fortnightly", "@fortnightly"),
        ("* * * * blursday", "blursday"),
    ],
)
def test_bad_expression_is_refused_at_declaration_naming_the_job(
    faust_app, expression: str, why: str
) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"on .*nightly") as info:

        @faust_app.crontab(expression)
        async def nightly():
            pass

    assert why in str(info.value)
    assert not faust_app.timers


def test_bad_timezone_and_sync_function_are_refused(faust_app) -> None:
    with pytest.raises(ImproperlyConfigured, match="unknown time zone 'Mars/Olympus'"):
        faust_app.crontab("@daily", timezone="Mars/Olympus")
    with pytest.raises(ImproperlyConfigured, match="async def"):

        @faust_app.crontab("@daily")
        def not_async():
            pass


def test_crontab_is_listed_with_the_timers(faust_app) -> None:
    @faust_app.crontab("0 9 * * *", timezone="Europe/Oslo", on_leader=True)
    async def morning():
        pass

    (spec,) = faust_app.timers.values()
    assert spec.fun is morning
    assert spec.on_leader
    assert spec.crontab.timezone == OSLO


async def settle() -> None:
    """Let the job's loop run (it reads the clock when it starts, then polls)."""
    await asyncio.sleep(0.1)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fast_polling(monkeypatch):
    # The loop looks at the (fake) clock every 10ms instead of every minute.
    monkeypatch.setattr(app_base, "CRONTAB_MAX_SLEEP", 0.01)


async def test_every_minute_job_runs_at_each_minute_once(fast_polling) -> None:
    app = make_app()
    runs = []

    @app.crontab("* * * * *")
    async def every_minute(app):
        runs.append(clock.now)

    clock = FakeClock(at(2026, 1, 1, 12, 0, 59))
    app.timers[f"{__name__}.{every_minute.__qualname__}"].crontab.clock = clock
    async with running(app):
        await settle()
        assert runs == []
        clock.now = at(2026, 1, 1, 12, 1, 0, 1000)
        await wait_for(lambda: len(runs) == 1)
        clock.now = at(2026, 1, 1, 12, 1, 30)
        await settle()
        assert len(runs) == 1  # not again within the same minute
        clock.now = at(2026, 1, 1, 12, 2, 0, 5000)
        await wait_for(lambda: len(runs) == 2)


async def test_default_zone_is_the_timezone_setting(fast_polling) -> None:
    app = make_app(timezone="Europe/Oslo")
    runs = []

    @app.crontab("0 9 * * *")
    async def morning():
        runs.append(1)

    clock = FakeClock(at(2026, 1, 10, 7, 59, 59))  # 08:59:59 in Oslo
    next(iter(app.timers.values())).crontab.clock = clock
    async with running(app):
        await settle()
        clock.now = at(2026, 1, 10, 8, 0, 0, 1000)  # 09:00 in Oslo
        await wait_for(lambda: runs == [1])


async def test_failing_job_keeps_its_schedule(fast_polling) -> None:
    app = make_app()
    runs = []

    @app.crontab("@hourly")
    async def flaky():
        runs.append(1)
        raise RuntimeError("bad hour")

    clock = FakeClock(at(2026, 1, 1, 12, 59, 59))
    next(iter(app.timers.values())).crontab.clock = clock
    async with running(app):
        await settle()
        clock.now = at(2026, 1, 1, 13, 0, 1)
        await wait_for(lambda: len(runs) == 1)
        clock.now = at(2026, 1, 1, 14, 0, 1)
        await wait_for(lambda: len(runs) == 2)


async def test_on_leader_job_is_skipped_off_the_leader(fast_polling, monkeypatch):
    app = make_app()
    runs = []

    @app.crontab("* * * * *", on_leader=True)
    async def leader_only():
        runs.append(1)

    monkeypatch.setattr(app, "is_leader", lambda: False)
    clock = FakeClock(at(2026, 1, 1, 12, 0, 59))
    next(iter(app.timers.values())).crontab.clock = clock
    async with running(app):
        await settle()
        clock.now = at(2026, 1, 1, 12, 1, 1)
        await settle()
        assert runs == []
        monkeypatch.setattr(app, "is_leader", lambda: True)
        clock.now = at(2026, 1, 1, 12, 2, 1)
        await wait_for(lambda: runs == [1])


def test_real_clock_sleeps_until_the_next_minute() -> None:
    import time

    job = Crontab("* * * * *")
    now = time.time()
    delay = job.next_run(now).timestamp() - now
    assert 0 < delay <= 60
