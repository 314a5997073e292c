"""Window arithmetic: ranges, boundaries, lookups in the past, expiry."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from django_faust.windows import (
    HoppingWindow,
    SlidingWindow,
    TumblingWindow,
    WindowRange,
)


class TestTumblingWindow:
    @pytest.mark.parametrize(
        ("timestamp", "expected"),
        [
            (0, (0.0, 10.0)),
            (0.000001, (0.0, 10.0)),
            (9.999999, (0.0, 10.0)),
            (10, (10.0, 20.0)),  # a boundary starts a window, never ends one
            (15.5, (10.0, 20.0)),
            (-0.5, (-10.0, 0.0)),
            (1_700_000_003.25, (1_700_000_000.0, 1_700_000_010.0)),
        ],
    )
    def test_ranges(self, timestamp: float, expected: tuple[float, float]) -> None:
        assert TumblingWindow(10).ranges(timestamp) == [expected]

    def test_fractional_sizes_have_exact_boundaries(self) -> None:
        window = TumblingWindow(0.1)
        # In binary floats 3 * 0.1 > 0.3; boundaries are in microseconds.
        assert window.ranges(0.3) == [(0.3, 0.4)]
        assert window.ranges(0.299999) == [(0.2, 0.3)]
        assert window.ranges(0.7) == [(0.7, 0.8)]
        assert TumblingWindow(1.5).ranges(4.5) == [(4.5, 6.0)]

    def test_windows_tile_the_line(self) -> None:
        window = TumblingWindow(0.7)
        rng = random.Random(7)
        for _ in range(2_000):
            timestamp = rng.randrange(-(10**12), 10**12) / 1e6
            ((start, end),) = window.ranges(timestamp)
            assert start <= timestamp < end
            assert window.ranges(end) == [(end, window.ranges(end)[0].end)]

    def test_timedelta(self) -> None:
        window = TumblingWindow(timedelta(minutes=1), expires=timedelta(hours=1))
        assert window.size == 60.0
        assert window.expires == 3600.0
        assert window.ranges(125) == [(120.0, 180.0)]

    def test_range_is_a_named_tuple(self) -> None:
        (window,) = TumblingWindow(60).ranges(61)
        assert isinstance(window, WindowRange)
        assert (window.start, window.end) == (60.0, 120.0)

    def test_out_of_order_timestamps_map_to_the_same_window(self) -> None:
        window = TumblingWindow(60)
        # Arrival order: latest first, then events from earlier in the minute.
        arrivals = [1_000_079.5, 1_000_020.0, 1_000_050.0, 1_000_021.0]
        assert {window.current(t) for t in arrivals} == {(1_000_020.0, 1_000_080.0)}
        # ...and an event of the previous minute, arriving after all of them.
        assert window.current(1_000_019.999) == (999_960.0, 1_000_020.0)

    def test_earliest_current_delta(self) -> None:
        window = TumblingWindow(10)
        assert window.earliest(25) == window.current(25) == (20.0, 30.0)
        assert window.delta(25, 10) == (10.0, 20.0)
        assert window.delta(25, timedelta(seconds=5)) == (20.0, 30.0)
        assert window.delta(25, 0) == (20.0, 30.0)
        assert window.delta(25, -10) == (30.0, 40.0)

    @pytest.mark.parametrize("size", [0, -1, 0.0000001, timedelta(0)])
    def test_size_must_be_positive(self, size: object) -> None:
        with pytest.raises(ValueError, match="size"):
            TumblingWindow(size)  # type: ignore[arg-type]

    @pytest.mark.parametrize("size", ["10", None, True])
    def test_size_must_be_a_duration(self, size: object) -> None:
        with pytest.raises(TypeError, match="size"):
            TumblingWindow(size)  # type: ignore[arg-type]

    @pytest.mark.parametrize("size", [float("inf"), float("nan")])
    def test_size_must_be_finite(self, size: float) -> None:
        with pytest.raises(ValueError, match="size must be finite"):
            TumblingWindow(size)

    def test_repr(self) -> None:
        assert repr(TumblingWindow(60)) == "TumblingWindow(size=60)"
        assert repr(TumblingWindow(60, 3600)) == "TumblingWindow(size=60, expires=3600)"


class TestHoppingWindow:
    def test_ranges(self) -> None:
        window = HoppingWindow(size=10, step=5)
        assert window.ranges(0) == [(-5.0, 5.0), (0.0, 10.0)]
        assert window.ranges(4.9) == [(-5.0, 5.0), (0.0, 10.0)]
        # 5 is a boundary: it starts [5, 15) and is outside [-5, 5).
        assert window.ranges(5) == [(0.0, 10.0), (5.0, 15.0)]
        assert window.ranges(12.5) == [(5.0, 15.0), (10.0, 20.0)]

    def test_uneven_step(self) -> None:
        window = HoppingWindow(size=10, step=3)
        assert window.ranges(10) == [(3.0, 13.0), (6.0, 16.0), (9.0, 19.0)]
        assert window.ranges(9) == [(0.0, 10.0), (3.0, 13.0), (6.0, 16.0), (9.0, 19.0)]

    def test_every_window_contains_the_timestamp(self) -> None:
        window = HoppingWindow(size=1, step=0.1)
        rng = random.Random(3)
        for _ in range(500):
            timestamp = rng.randrange(-(10**9), 10**9) / 1e6
            ranges = window.ranges(timestamp)
            assert len(ranges) == 10
            assert all(start <= timestamp < end for start, end in ranges)
            assert ranges == sorted(ranges)

    def test_exact_fractional_boundaries(self) -> None:
        ranges = HoppingWindow(size=1, step=0.1).ranges(0.3)
        assert ranges[0] == (-0.6, 0.4)
        assert ranges[-1] == (0.3, 1.3)

    def test_step_equal_to_size_is_tumbling(self) -> None:
        hopping, tumbling = HoppingWindow(10, 10), TumblingWindow(10)
        for timestamp in (0, 9.5, 10, 23, -4):
            assert hopping.ranges(timestamp) == tumbling.ranges(timestamp)

    def test_step_larger_than_size_is_refused(self) -> None:
        with pytest.raises(ValueError, match=r"step \(20s\) must not be larger"):
            HoppingWindow(size=10, step=20)

    def test_earliest_current_delta(self) -> None:
        window = HoppingWindow(size=60, step=20)
        assert window.earliest(65) == (20.0, 80.0)
        assert window.current(65) == (60.0, 120.0)
        assert window.delta(65, 60) == (0.0, 60.0)

    def test_out_of_order_timestamps(self) -> None:
        window = HoppingWindow(size=60, step=30)
        expected = [(30.0, 90.0), (60.0, 120.0)]
        assert window.ranges(89.9) == window.ranges(61) == window.ranges(75) == expected

    @pytest.mark.parametrize(
        ("kwargs", "name"),
        [
            ({"size": 0, "step": 1}, "size"),
            ({"size": 10, "step": 0}, "step"),
            ({"size": 10, "step": -1}, "step"),
            ({"size": 10, "step": 1, "expires": -5}, "expires"),
        ],
    )
    def test_arguments_are_named_in_errors(self, kwargs: dict, name: str) -> None:
        with pytest.raises(ValueError, match=rf"^{name} must"):
            HoppingWindow(**kwargs)

    def test_repr(self) -> None:
        assert repr(HoppingWindow(60, 15.5)) == "HoppingWindow(size=60, step=15.5)"


class TestSlidingWindow:
    def test_ranges(self) -> None:
        window = SlidingWindow(before=5, after=2)
        assert window.ranges(100) == [(95.0, 102.0)]
        assert window.earliest(100) == window.current(100) == (95.0, 102.0)
        assert window.delta(100, 10) == (85.0, 92.0)

    def test_one_side_may_be_zero(self) -> None:
        assert SlidingWindow(0, 10).ranges(3) == [(3.0, 13.0)]
        assert SlidingWindow(timedelta(seconds=10), 0).ranges(3) == [(-7.0, 3.0)]

    def test_both_sides_zero_is_refused(self) -> None:
        with pytest.raises(ValueError, match="before and after"):
            SlidingWindow(0, 0)

    @pytest.mark.parametrize(
        ("before", "after", "name"), [(-1, 1, "before"), (1, -1, "after")]
    )
    def test_negative_sides(self, before: int, after: int, name: str) -> None:
        with pytest.raises(ValueError, match=rf"^{name} must not be negative"):
            SlidingWindow(before, after)

    def test_stale(self) -> None:
        window = SlidingWindow(before=5, after=5, expires=10)
        assert not window.stale((90.0, 100.0), 110)
        assert window.stale((90.0, 100.0), 110.5)
        # A start stands for the window of before + after seconds it opens.
        assert window.stale(90.0, 110.5)
        assert not window.stale(90.0, 110)

    def test_repr(self) -> None:
        assert repr(SlidingWindow(1, 2, 3)) == (
            "SlidingWindow(before=1, after=2, expires=3)"
        )


class TestExpiry:
    def test_never_stale_without_expires(self) -> None:
        window = TumblingWindow(10)
        assert not window.stale((0.0, 10.0), 1e12)
        assert not window.stale(0.0, 1e12)
        assert window.stale_before(1e12) == float("-inf")

    def test_stale_after_expires(self) -> None:
        window = TumblingWindow(10, expires=30)
        assert window.stale_before(100) == 70
        # [50, 60) ends at 60: kept while 60 >= latest - 30.
        assert not window.stale((50.0, 60.0), 90)
        assert not window.stale(50.0, 90)
        assert window.stale((50.0, 60.0), 90.001)
        assert window.stale(50.0, 90.001)
        assert not window.stale((60.0, 70.0), 90.001)

    def test_late_event_finds_stale_window(self) -> None:
        window = HoppingWindow(size=20, step=10, expires=timedelta(seconds=15))
        latest = 100
        late_ranges = window.ranges(50)  # an event arriving 50 s late
        assert [window.stale(r, latest) for r in late_ranges] == [True, True]
        assert [window.stale(r, latest) for r in window.ranges(85)] == [False, False]

    def test_expires_zero_means_once_closed(self) -> None:
        window = TumblingWindow(10, expires=0)
        assert not window.stale((0.0, 10.0), 10)
        assert window.stale((0.0, 10.0), 10.5)
