"""The short crash soak: 5 SIGKILLs over 10,000 events, on each store.

benchmarks/crash_soak.py does the work. The hand-run version is
``python benchmarks/crash_soak.py`` (100,000 events, 20 kills, both stores);
see docs/guarantees.rst. Run with ``-s`` to see the figures.

Nothing here depends on where the kills land: every figure is checked
against what the killed workers are known to have done (their logs and the
offsets committed when they died), so a slow machine changes the figures,
never the verdict.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import crash_soak

pytestmark = [pytest.mark.broker, pytest.mark.slow]


@pytest.mark.parametrize("store", crash_soak.STORES)
async def test_sigkill_at_random_moments_loses_nothing_and_tables_stay_exact(
    store: str,
) -> None:
    result = await crash_soak.soak(
        10_000, 5, seed=12, rate=2000, expect_exact=True, store=store
    )
    print("\n" + result.report())
    assert result.ok, result.report()
    assert len(result.kills) == 5
    assert {phase for phase, _, _ in result.kills} == set(crash_soak.PHASES)
    assert (result.lost_in_sink, result.lost_in_table) == (0, 0)
    # At least once: events are processed again only past a dead worker's
    # last commit, and each sink copy stands for one processing.
    assert result.replayed <= result.bound
    assert result.sent_twice == 0
    assert result.sink_duplicates <= result.bound
    # Exact tables: a replayed event never counts twice.
    assert result.table_overcount == 0
