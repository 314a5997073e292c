"""Cron schedules for ``@app.crontab``: when a job runs next, in its time zone.

Expressions have cron's five fields (minute, hour, day of month, month, day
of week) with ranges, steps, lists and names (``*/15 9-17 * * mon-fri``), or
one of the shortcuts ``@yearly``/``@annually``, ``@monthly``, ``@weekly``,
``@daily``/``@midnight`` and ``@hourly``. Parsing and the calendar arithmetic
are cronsim's; this module adds the shortcuts, the error that names the job,
and the time zone. (cronsim rather than croniter, which Faust uses: croniter
was declared abandoned by its author in 2024 before pallets-eco took it
over; cronsim is small, typed, and follows cron across DST changes.)

The schedule is wall-clock time in the job's zone, across daylight-saving
changes as cron itself does: a daily ``30 2 * * *`` runs once on the night
the clocks go forward (at 03:00, as 02:30 does not exist) and once on the
night they go back; an hourly job runs every real hour, the repeated one too.
"""

from __future__ import annotations

import datetime
import time
import zoneinfo
from typing import Callable

from cronsim import CronSim, CronSimError

from ..exceptions import ImproperlyConfigured

__all__ = ["SHORTCUTS", "Crontab", "want_timezone"]

SHORTCUTS: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def want_timezone(value: datetime.tzinfo | str, *, what: str) -> datetime.tzinfo:
    """A tzinfo from a tzinfo or a zone name such as ``"Europe/Oslo"``."""
    if isinstance(value, datetime.tzinfo):
        return value
    if isinstance(value, str):
        try:
            return zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ImproperlyConfigured(
                f"{what}: unknown time zone {value!r}; use a name such as "
                "'Europe/Oslo' or 'UTC', or a tzinfo."
            ) from exc
    raise ImproperlyConfigured(
        f"{what}: timezone must be a tzinfo or a zone name, got {value!r}."
    )


class Crontab:
    """A parsed cron expression, and the next time it fires.

    ``timezone`` may be left ``None`` at declaration and given to `next_run`
    (the app's ``TIMEZONE`` setting is read only when the worker starts).
    ``clock`` returns the current POSIX time; tests replace it.
    """

    def __init__(
        self,
        expression: str,
        *,
        timezone: datetime.tzinfo | None = None,
        what: str = "@app.crontab",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(expression, str):
            raise ImproperlyConfigured(
                f"{what}: the cron expression must be a string, got {expression!r}."
            )
        self.expression = expression
        self.cron = SHORTCUTS.get(expression.strip().lower(), expression.strip())
        self.timezone = timezone
        self.clock = clock
        try:
            CronSim(self.cron, datetime.datetime.now(datetime.UTC))
        except CronSimError as exc:
            raise ImproperlyConfigured(
                f"{what}: invalid cron expression {expression!r} ({exc}); "
                "expected five fields 'minute hour day-of-month month "
                "day-of-week' or a shortcut such as '@hourly'."
            ) from exc

    def next_run(
        self, after: float, timezone: datetime.tzinfo | None = None
    ) -> datetime.datetime:
        """The first time strictly after POSIX time ``after`` that the job fires.

        In the schedule's own zone, else ``timezone``, else UTC.
        """
        zone = self.timezone or timezone or datetime.UTC
        start = datetime.datetime.fromtimestamp(after, zone)
        # cronsim yields times strictly after its (whole-minute) start.
        return next(iter(CronSim(self.cron, start)))

    def __repr__(self) -> str:
        return f"<Crontab {self.expression!r}>"
