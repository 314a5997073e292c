"""Time windows for windowed tables: which windows an event falls in.

Pure arithmetic on float epoch seconds; no clocks, no I/O, so a window gives
the same answer for an event however late or out of order it arrives.

Every window is closed-open, ``[start, end)``: a timestamp exactly on a
boundary belongs to the window that *starts* there, never to the one that
ends there, so tumbling windows never overlap and never leave a gap.

Boundaries are computed in whole microseconds, not in binary floats: in
floats ``3 * 0.1`` is 0.30000000000000004, so ``TumblingWindow(0.1)`` would
put the timestamp 0.3 in the window ``[0.2, 0.30000000000000004)``. With
integer microseconds it is in ``[0.3, 0.4)`` as one reads it. Timestamps
and durations are therefore taken to the nearest microsecond (Kafka's own
timestamps are milliseconds), and a size must be at least one microsecond.

A window range is a `WindowRange`, a ``(start, end)`` named tuple; windowed
tables use it (or its start) as part of the key.

Expiry: with ``expires``, a window is *stale* once its end lies more than
``expires`` seconds before the latest timestamp the table has seen; windowed
tables then delete it. Without ``expires`` windows are kept forever; with
``expires=0`` a window is stale as soon as a timestamp after its end is seen.
"""

from __future__ import annotations

import abc
import math
from datetime import timedelta
from typing import NamedTuple

__all__ = [
    "HoppingWindow",
    "SlidingWindow",
    "TumblingWindow",
    "Window",
    "WindowRange",
]

Seconds = float | int | timedelta


class WindowRange(NamedTuple):
    """One window: from ``start`` (included) to ``end`` (excluded)."""

    start: float
    end: float


#: Window boundaries are computed in whole microseconds.
_TICKS_PER_SECOND = 1_000_000


def _seconds(value: Seconds, name: str, *, allow_zero: bool = False) -> float:
    """``value`` as float seconds, or a clear error naming the argument."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(
            f"{name} must be a number of seconds or a timedelta, got {value!r}."
        )
    if not math.isfinite(seconds):
        raise ValueError(f"{name} must be finite, got {value!r}.")
    if seconds < 0:
        raise ValueError(f"{name} must not be negative, got {value!r}.")
    if not allow_zero and _ticks(seconds) == 0:
        raise ValueError(
            f"{name} must be more than zero (at least a microsecond), got {value!r}."
        )
    return seconds


def _ticks(seconds: float) -> int:
    """``seconds`` as a whole number of microseconds (see the module doc)."""
    return round(seconds * _TICKS_PER_SECOND)


def _at(ticks: int) -> float:
    """Microseconds back to float seconds (``3 * 100_000`` gives 0.3)."""
    return ticks / _TICKS_PER_SECOND


class Window(abc.ABC):
    """What windows of a kind have in common: expiry, and finding windows."""

    expires: float | None

    def __init__(self, expires: Seconds | None) -> None:
        self.expires = (
            None if expires is None else _seconds(expires, "expires", allow_zero=True)
        )

    @abc.abstractmethod
    def ranges(self, timestamp: float) -> list[WindowRange]:
        """Every window containing ``timestamp``, oldest first."""

    @abc.abstractmethod
    def _end_of(self, start: float) -> float:
        """The end of the window starting at ``start``."""

    def earliest(self, timestamp: float) -> WindowRange:
        """The oldest window containing ``timestamp``."""
        return self.ranges(timestamp)[0]

    def current(self, timestamp: float) -> WindowRange:
        """The most recent window containing ``timestamp``."""
        return self.ranges(timestamp)[-1]

    def delta(self, timestamp: float, d: Seconds) -> WindowRange:
        """The most recent window containing ``timestamp - d`` ("an hour ago")."""
        seconds = d.total_seconds() if isinstance(d, timedelta) else float(d)
        return self.current(timestamp - seconds)

    def stale_before(self, latest_timestamp: float) -> float:
        """Windows ending before this time are stale (``-inf`` without expiry)."""
        if self.expires is None:
            return -math.inf
        return latest_timestamp - self.expires

    def stale(
        self, window: float | tuple[float, float], latest_timestamp: float
    ) -> bool:
        """Whether ``window`` (a range, or the start of one) has expired.

        True when its end is before ``latest_timestamp - expires``; never when
        the window has no ``expires``.
        """
        if self.expires is None:
            return False
        end = window[1] if isinstance(window, tuple) else self._end_of(window)
        return end < self.stale_before(latest_timestamp)

    def _expires_repr(self) -> str:
        return "" if self.expires is None else f", expires={self.expires:g}"


class TumblingWindow(Window):
    """Back-to-back windows of ``size`` seconds: each timestamp is in exactly one.

    Windows start at multiples of ``size`` counted from the epoch, so
    ``TumblingWindow(60)`` windows are calendar minutes (in UTC).
    """

    def __init__(self, size: Seconds, expires: Seconds | None = None) -> None:
        super().__init__(expires)
        self.size = _seconds(size, "size")
        self._size = _ticks(self.size)

    def __repr__(self) -> str:
        return f"TumblingWindow(size={self.size:g}{self._expires_repr()})"

    def ranges(self, timestamp: float) -> list[WindowRange]:
        size = self._size
        index = _ticks(timestamp) // size
        return [WindowRange(_at(index * size), _at((index + 1) * size))]

    def _end_of(self, start: float) -> float:
        return start + self.size


class HoppingWindow(Window):
    """Overlapping windows of ``size`` seconds, one starting every ``step``.

    A timestamp is in about ``size / step`` windows. ``step`` may not exceed
    ``size``: larger steps would leave gaps that no window covers, so some
    events would fall in no window at all (and `current` would have nothing
    to return). ``step == size`` is allowed; it behaves as a tumbling window.
    """

    def __init__(
        self, size: Seconds, step: Seconds, expires: Seconds | None = None
    ) -> None:
        super().__init__(expires)
        self.size = _seconds(size, "size")
        self.step = _seconds(step, "step")
        self._size, self._step = _ticks(self.size), _ticks(self.step)
        if self._step > self._size:
            raise ValueError(
                f"step ({self.step:g}s) must not be larger than size "
                f"({self.size:g}s): the gaps between windows would hold events "
                "that belong to no window."
            )

    def __repr__(self) -> str:
        return (
            f"HoppingWindow(size={self.size:g}, step={self.step:g}"
            f"{self._expires_repr()})"
        )

    def ranges(self, timestamp: float) -> list[WindowRange]:
        size, step, at = self._size, self._step, _ticks(timestamp)
        start = at // step * step
        windows = []
        # Walk back from the latest window starting at or before timestamp
        # while the window still reaches past it.
        while start + size > at:
            windows.append(WindowRange(_at(start), _at(start + size)))
            start -= step
        windows.reverse()
        return windows

    def _end_of(self, start: float) -> float:
        return start + self.size


class SlidingWindow(Window):
    """One window per event: from ``before`` seconds before it to ``after`` after.

    Either side may be zero, not both.
    """

    def __init__(
        self, before: Seconds, after: Seconds, expires: Seconds | None = None
    ) -> None:
        super().__init__(expires)
        self.before = _seconds(before, "before", allow_zero=True)
        self.after = _seconds(after, "after", allow_zero=True)
        if self.before + self.after == 0:
            raise ValueError(
                "before and after cannot both be zero: the window would be empty."
            )

    def __repr__(self) -> str:
        return (
            f"SlidingWindow(before={self.before:g}, after={self.after:g}"
            f"{self._expires_repr()})"
        )

    def ranges(self, timestamp: float) -> list[WindowRange]:
        return [WindowRange(timestamp - self.before, timestamp + self.after)]

    def _end_of(self, start: float) -> float:
        return start + self.before + self.after
