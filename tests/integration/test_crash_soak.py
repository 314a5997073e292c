"""The short crash soak: 5 SIGKILLs over 10,000 events (benchmarks/crash_soak.py).

The hand-run version is ``python benchmarks/crash_soak.py`` (100,000 events,
20 kills); see docs/guarantees.rst. Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import crash_soak

pytestmark = [pytest.mark.broker, pytest.mark.slow]


async def test_sigkill_at_random_moments_loses_nothing_and_stays_in_bounds() -> None:
    result = await crash_soak.soak(10_000, 5, seed=12, rate=2000)
    print("\n" + result.report())
    assert result.ok, result.report()
    assert len(result.kills) == 5
    assert {phase for phase, _, _ in result.kills} == set(crash_soak.PHASES)
    assert (result.lost_in_sink, result.lost_in_table) == (0, 0)
    assert result.sink_duplicates <= result.bound
    assert result.table_overcount <= result.bound
