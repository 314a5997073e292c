"""W3 on RocksDB as the table grows: 10k to 10M distinct keys.

Usage::

    python benchmarks/scale.py [--keys 10000,100000,1000000] [--events N]

For each step it runs ``run.py``'s W3 with the ``django_faust_rocksdb`` row
(``counts[value["key"]] += 1`` in a ``rocksdb://`` table) on an input of
``max(keys, --events)`` events over exactly ``keys`` distinct keys (a fixed
stride through them, see ``common.key_sequence``), verifies the counts and
the changelog as ``run.py`` does, and prints events/s, the changelog records
written, the worker's RSS (when the last event was done, and its peak) and
the RocksDB data directory's size. See README.rst beside this file.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402
import run  # noqa: E402

from django_faust.testing.broker import TestBroker  # noqa: E402

#: The row that runs every step.
ROW = "django_faust_rocksdb"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--keys",
        default="10000,100000,1000000",
        help="comma-separated distinct-key counts, one step each "
        "(default 10000,100000,1000000; 10000000 works, estimated at 15 minutes "
        "or more and several GiB, not measured)",
    )
    parser.add_argument(
        "--events",
        type=int,
        default=200_000,
        help="events per step at least (a step has max(keys, events) events)",
    )
    parser.add_argument(
        "--timeout", type=int, default=3600, help="seconds a step may take"
    )
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="cProfile stats of each step"
    )
    args = parser.parse_args(argv)
    args.keys = [int(k.replace("_", "")) for k in args.keys.split(",") if k.strip()]
    return args


def mib(size: float | None) -> str:
    """Bytes as MiB, or "-"."""
    return "-" if size is None else f"{size / 2**20:,.0f}"


def main(argv: list[str] | None = None) -> int:
    """Run every step and print the curve."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    run.ROW_TIMEOUT = args.timeout
    run.PROFILES = args.profile
    python = run.row_python(run.ROWS[ROW])
    lines = []
    started = time.monotonic()
    with TestBroker() as broker:
        print(f"Broker (tansu) on {broker.bootstrap}", flush=True)
        for keys in args.keys:
            common.KEYS = keys
            events = max(keys, args.events)
            outcome = run.run_once(ROW, python, "W3", broker.bootstrap, events)
            print(f"  [{keys:,} keys] {run.describe(outcome)}", flush=True)
            lines.append((keys, events, outcome))
    header = (
        f"{'keys':>12}{'events':>12}{'events/s':>12}{'changelog':>12}"
        f"{'RSS MiB':>10}{'peak MiB':>10}{'disk MiB':>10}"
    )
    print("\nW3 (count per key) in a rocksdb:// table, one run per step")
    print(header)
    for keys, events, outcome in lines:
        if outcome.rate is None:
            print(f"{keys:>12,}{events:>12,}  {outcome.status}")
            continue
        d = outcome.detail
        stats = d.get("stats") or {}
        print(
            f"{keys:>12,}{events:>12,}{outcome.rate:>12,.0f}"
            f"{d['output_records'] or 0:>12,}{mib(stats.get('rss')):>10}"
            f"{mib(stats.get('peak_rss')):>10}{mib(stats.get('disk')):>10}"
        )
    print(f"\n(total {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
