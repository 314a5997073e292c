"""Windowed tables: the API over a table whose values are kept per time window.

``app.Table("views", default=int).tumbling(60, expires=3600)`` returns a
`WindowWrapper`. Indexing it with a key gives a `WindowSet`, the windows of
that key::

    views[key] += 1             # every window containing the event's time
    views[key].current()        # the window of the current event
    views[key].now()            # the window of the wall-clock time
    views[key].delta(30)        # the window of the event's time - 30 s
    views[key].value()          # the window of the wrapper's "relative" time

The table underneath stores one entry per key and window, under the key
``(key, window_start)``, so every window has its own changelog record and
is recovered, partitioned and expired like any other entry. The table's
`~django_faust.tables.windowing.TableWindows` does the window bookkeeping
(which windows, expiry); this module only decides *which time* an operation
is about.

Which time: writes and ``value()`` go by the wrapper's relative time, by
default the timestamp of the event being processed (``relative_to_stream``),
or the wall clock (``relative_to_now``), or a field of the event's value
(``relative_to_field``). Going by the event's own timestamp, not by the
moment it is processed, is what puts a late or out-of-order event in the
window it belongs to, and makes replaying a stream give the same windows.
Outside an event, where there is no event time, the wall clock stands in.
"""

from __future__ import annotations

import operator
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..exceptions import ImproperlyConfigured
from ..streams import current_event, current_message
from ..windows import Seconds, Window, WindowRange
from .windowing import not_windowed

if TYPE_CHECKING:
    from .table import Table
    from .windowing import TableWindows

__all__ = ["WindowSet", "WindowWrapper"]


def event_time() -> float:
    """The timestamp of the event being processed, else the wall clock.

    Read from the message directly: building an `Event` for every windowed
    write would be wasted work in the common case.
    """
    message = current_message()
    if message is not None:
        timestamp = message.timestamp
        # Kafka uses -1 (and some clients None) for "no timestamp".
        if timestamp is not None and timestamp >= 0:
            return float(timestamp) / 1000.0
    return time.time()


def _as_timestamp(value: Any, field: Any) -> float:
    """A field's value as epoch seconds; naive datetimes are taken as UTC.

    UTC rather than the server's local time: windows are counted from the
    epoch in UTC, and a worker's time zone must not move events between
    windows.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise TypeError(
        f"relative_to_field({field!r}): the field holds {value!r}; it must "
        "hold a datetime or a number of seconds since the epoch."
    )


class WindowWrapper:
    """A windowed table, as returned by ``Table.tumbling()`` and friends.

    ``wrapper[key]`` is the `WindowSet` of ``key``; ``wrapper[key] += n`` and
    ``wrapper[key] = value`` change every window containing the relative
    time (several for hopping windows). Changing follows the rules of
    tables: only while an agent with ``concurrency=1`` processes an event.

    The ``relative_to_*`` methods return a new wrapper over the same table;
    the table, its windows and its data are shared.
    """

    def __init__(
        self,
        table: Table,
        *,
        get_timestamp: Callable[[], float] = event_time,
        relative_to: str = "stream",
    ) -> None:
        self.table = table
        self._get_timestamp = get_timestamp
        self._relative_to = relative_to

    def __repr__(self) -> str:
        return (
            f"<WindowWrapper {self.table.name!r} {self.window!r} "
            f"relative to {self._relative_to}>"
        )

    @property
    def windows(self) -> TableWindows:
        """The table's window bookkeeping, which every operation goes through."""
        windows = self.table.windows
        if windows is None:
            raise not_windowed(self.table)
        return windows

    @property
    def window(self) -> Window:
        return self.windows.window

    @property
    def name(self) -> str:
        return self.table.name

    # -- which time -------------------------------------------------------------

    def get_timestamp(self) -> float:
        """The time writes and `WindowSet.value` refer to, in epoch seconds."""
        return self._get_timestamp()

    def relative_to_now(self) -> WindowWrapper:
        """Go by the wall clock: the window an event lands in is when it is
        processed, not when it happened."""
        return WindowWrapper(self.table, get_timestamp=time.time, relative_to="now")

    def relative_to_stream(self) -> WindowWrapper:
        """Go by the timestamp of the event being processed (the default)."""
        return WindowWrapper(self.table)

    def relative_to_field(self, field: Any) -> WindowWrapper:
        """Go by a field of the event's value (``Click.at``).

        The field holds a `datetime` (naive ones are read as UTC) or epoch
        seconds. Use it when the time that matters travels in the payload,
        for example events produced long after they happened.
        """
        getter = getattr(field, "getattr", None)
        if not callable(getter):
            raise ImproperlyConfigured(
                f"relative_to_field() takes a Record field such as Click.at, "
                f"not {field!r}."
            )

        def field_time() -> float:
            event = current_event()
            if event is None:
                return time.time()
            return _as_timestamp(getter(event.value), field)

        name = getattr(field, "field", None) or repr(field)
        return WindowWrapper(
            self.table, get_timestamp=field_time, relative_to=f"field {name}"
        )

    # -- access by key ------------------------------------------------------------

    def __getitem__(self, key: Any) -> WindowSet:
        return WindowSet(key, self)

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(value, WindowSet):
            if value.key == key and value.table is self.table:
                # ``wrapper[key] += n``: the in-place operator already
                # wrote, Python only assigns its result back.
                return
            raise TypeError(
                f"Cannot assign the windows of {value.key!r} to {key!r}; assign "
                "a value, such as other.value()."
            )
        self.windows.set(key, value, self.get_timestamp())

    def __delitem__(self, key: Any) -> None:
        """Delete ``key`` from every window containing the relative time."""
        self.windows.delete(key, self.get_timestamp())

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` has a value in the window of the relative time."""
        return self.windows.contains(key, self.get_timestamp())

    # -- everything ---------------------------------------------------------------

    def items(self) -> Iterator[tuple[tuple[Any, WindowRange], Any]]:
        """Every ``((key, WindowRange), value)`` the table serves, in no set order."""
        return self.windows.items()

    def keys(self) -> Iterator[tuple[Any, WindowRange]]:
        """Every ``(key, WindowRange)`` the table serves."""
        for pair, _ in self.items():
            yield pair

    def values(self) -> Iterator[Any]:
        for _, value in self.items():
            yield value

    def as_dict(self) -> dict[tuple[Any, WindowRange], Any]:
        return dict(self.items())


class WindowSet:
    """The windows of one key of a windowed table.

    Reading (`current`, `now`, `delta`, `value`) never writes, not even a
    default: a missing window reads as ``default()`` when the table has a
    default, else raises `KeyError`. In-place operators (``+=``, ``-=``,
    ``|=``...) change every window containing the wrapper's relative time.
    """

    __slots__ = ("key", "wrapper")

    def __init__(self, key: Any, wrapper: WindowWrapper) -> None:
        self.key = key
        self.wrapper = wrapper

    def __repr__(self) -> str:
        return f"<WindowSet {self.wrapper.name!r} key={self.key!r}>"

    @property
    def table(self) -> Table:
        return self.wrapper.table

    # -- reading -----------------------------------------------------------------

    def current(self) -> Any:
        """The value in the window of the current event's timestamp."""
        return self.wrapper.windows.get(self.key, event_time())

    def now(self) -> Any:
        """The value in the window of the wall-clock time."""
        return self.wrapper.windows.get(self.key, time.time())

    def delta(self, d: Seconds) -> Any:
        """The value in the window of ``d`` seconds before the current event."""
        seconds = d.total_seconds() if isinstance(d, timedelta) else float(d)
        return self.wrapper.windows.get(self.key, event_time() - seconds)

    def value(self) -> Any:
        """The value in the window of the wrapper's relative time.

        The same as `current` unless the wrapper was made with
        ``relative_to_now()`` or ``relative_to_field()``.
        """
        return self.wrapper.windows.get(self.key, self.wrapper.get_timestamp())

    # -- writing -----------------------------------------------------------------

    def apply(self, op: Callable[[Any, Any], Any], value: Any) -> WindowSet:
        """Set every window containing the relative time to ``op(old, value)``."""
        wrapper = self.wrapper
        wrapper.windows.apply(self.key, op, value, wrapper.get_timestamp())
        return self

    def __iadd__(self, other: Any) -> WindowSet:
        return self.apply(operator.add, other)

    def __isub__(self, other: Any) -> WindowSet:
        return self.apply(operator.sub, other)

    def __imul__(self, other: Any) -> WindowSet:
        return self.apply(operator.mul, other)

    def __itruediv__(self, other: Any) -> WindowSet:
        return self.apply(operator.truediv, other)

    def __ifloordiv__(self, other: Any) -> WindowSet:
        return self.apply(operator.floordiv, other)

    def __imod__(self, other: Any) -> WindowSet:
        return self.apply(operator.mod, other)

    def __ipow__(self, other: Any) -> WindowSet:
        return self.apply(operator.pow, other)

    def __ilshift__(self, other: Any) -> WindowSet:
        return self.apply(operator.lshift, other)

    def __irshift__(self, other: Any) -> WindowSet:
        return self.apply(operator.rshift, other)

    def __iand__(self, other: Any) -> WindowSet:
        return self.apply(operator.and_, other)

    def __ixor__(self, other: Any) -> WindowSet:
        return self.apply(operator.xor, other)

    def __ior__(self, other: Any) -> WindowSet:
        return self.apply(operator.or_, other)
