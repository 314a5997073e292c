"""What every row shares: the events, the workloads, and the result protocol.

This module uses the standard library only: it is imported by row scripts
running in other virtualenvs (quixstreams, faust-streaming) as well as by
``run.py`` in the project's own.

A row script is started as ``python -m rows.<name> --workload W1 ...`` with
this directory on ``sys.path``. It consumes an input topic that ``run.py``
has already filled, stops once it has handled ``--events`` events, and prints
one line ``BENCH_RESULT {json}`` with what it measured (see `RowResult`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

#: Environment variable: profile the row with cProfile into this file.
PROFILE_ENV = "BENCH_PROFILE"
#: Prefix of the one line a row prints with its result.
RESULT_MARKER = "BENCH_RESULT "
#: Distinct keys in the input (``scale.py`` changes it).
DEFAULT_KEYS = KEYS = 1000
#: A prime: ``seq * KEY_STRIDE % KEYS`` visits every key when ``KEYS`` is a
#: power of ten, in an order that spreads neighbours over the partitions.
KEY_STRIDE = 7919
#: Partitions of every topic the benchmark creates.
PARTITIONS = 4
#: Records one fetch may return, for every client that lets us choose.
MAX_POLL_RECORDS = 2000
#: Producer linger, for the W2 output of every row.
LINGER_MS = 5
#: Seconds between offset commits, for every client that lets us choose.
COMMIT_INTERVAL = 1.0
#: Consumer group session timeout (short: Tansu rebalances take half of it).
SESSION_TIMEOUT_MS = 6000
#: Seed of the key sequence, so ``run.py`` knows the expected counts.
SEED = 20240601
#: Padding that brings an encoded event to about 100 bytes.
PAD = "x" * 32

WORKLOADS = {
    "W1": "consume, json-decode, count per key",
    "W2": "consume, decode, add a field, encode, produce",
    "W3": "count per key in a changelogged table",
}


# -- the events ----------------------------------------------------------------


def key_name(index: int) -> str:
    """The key string of key number ``index``."""
    return f"k{index:04d}"


def key_sequence(events: int) -> Iterator[str]:
    """The key of each event, in order (deterministic, roughly uniform).

    With the default `KEYS` a seeded random sequence; with any other number
    (``scale.py`` sets it) a fixed stride through the keys, so that every one
    of them occurs (``events // KEYS`` or one more times, when ``events >=
    KEYS``): the table then holds exactly `KEYS` keys.
    """
    if KEYS != DEFAULT_KEYS:
        for seq in range(events):
            yield key_name(seq * KEY_STRIDE % KEYS)
        return
    rng = random.Random(SEED)
    for _ in range(events):
        yield key_name(rng.randrange(KEYS))


def make_event(seq: int, key: str) -> dict[str, Any]:
    """Event number ``seq`` (about 100 bytes once JSON-encoded)."""
    return {
        "id": seq,
        "key": key,
        "amount": seq % 997,
        "ts": 1700000000 + seq,
        "pad": PAD,
    }


def expected_counts(events: int) -> Counter[str]:
    """How many events each key has in an input of ``events`` events."""
    return Counter(key_sequence(events))


def resources(datadir: str | None = None) -> dict[str, Any]:
    """This process's memory now and at its peak, and ``datadir``'s size (bytes)."""
    import resource

    stats: dict[str, Any] = {
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    try:
        with open("/proc/self/statm") as statm:
            stats["rss"] = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux
        stats["rss"] = stats["peak_rss"]
    if datadir is not None:
        stats["disk"] = sum(
            os.path.getsize(os.path.join(root, name))
            for root, _, names in os.walk(datadir)
            for name in names
        )
    return stats


def transform(value: dict[str, Any]) -> dict[str, Any]:
    """The W2 transformation: add a field to the decoded event."""
    value["seen"] = True
    return value


# -- row scripts ---------------------------------------------------------------


@dataclass
class RowArgs:
    """What ``run.py`` tells a row script (see `parse_row_args`)."""

    bootstrap: str
    workload: str
    input_topic: str
    output_topic: str
    group: str
    events: int


@dataclass
class RowResult:
    """What a row measured; printed as JSON after `RESULT_MARKER`.

    ``seconds`` is the timed section: from the first event the row's code
    saw to the last one handled (W1) or to the broker acknowledging the
    last output record (W2). ``startup`` is from creating the client to the
    first event (group join included), reported but not part of the rate.
    ``counts`` is the per-key count the row kept (W1), for verification.
    """

    events: int
    seconds: float
    startup: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    #: Topic the row wrote its W2 output or W3 changelog to, to be read back
    #: (empty: nothing for ``run.py`` to read, e.g. a library's own changelog).
    output: str = ""
    library: str = ""
    notes: str = ""
    #: W2's output records carry no key (a sink gets values only).
    keyless: bool = False
    #: Anything else the row measured (``scale.py``: RSS, disk).
    stats: dict[str, Any] = field(default_factory=dict)


class Clock:
    """Timestamps of the start, the first event and the end of a row's run."""

    def __init__(self) -> None:
        self.created = time.perf_counter()
        self.first: float | None = None
        self.last: float | None = None

    def first_event(self) -> None:
        """Mark the first event (only the first call counts)."""
        if self.first is None:
            self.first = time.perf_counter()

    def done(self) -> None:
        """Mark the end of the timed section."""
        self.last = time.perf_counter()

    def result(self, events: int, **extra: Any) -> RowResult:
        """A `RowResult` for ``events`` events timed by this clock."""
        if self.first is None or self.last is None:
            raise RuntimeError("the row saw no event or never finished")
        return RowResult(
            events=events,
            seconds=self.last - self.first,
            startup=self.first - self.created,
            **extra,
        )


def parse_row_args(argv: list[str] | None = None) -> RowArgs:
    """The command line of a row script."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True, help="host:port")
    parser.add_argument("--workload", required=True, choices=sorted(WORKLOADS))
    parser.add_argument("--input-topic", required=True)
    parser.add_argument("--output-topic", default="")
    parser.add_argument("--group", required=True)
    parser.add_argument("--events", type=int, required=True)
    return RowArgs(**vars(parser.parse_args(argv)))


def row_main(run: Callable[[RowArgs], RowResult]) -> None:
    """Run a row script's ``run`` and print its result line (or its error)."""
    args = parse_row_args()
    try:
        result = profiled(run, args) if os.environ.get(PROFILE_ENV) else run(args)
    except BaseException as exc:
        traceback.print_exc()
        print(RESULT_MARKER + json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        sys.stdout.flush()
        raise SystemExit(1) from None
    print(RESULT_MARKER + json.dumps(asdict(result)))
    sys.stdout.flush()


def profiled(run: Callable[[RowArgs], RowResult], args: RowArgs) -> RowResult:
    """``run(args)`` under cProfile; the stats go to the file `PROFILE_ENV` names."""
    import cProfile

    profiler = cProfile.Profile()
    try:
        return profiler.runcall(run, args)
    finally:
        profiler.dump_stats(os.environ[PROFILE_ENV])


def parse_result(stdout: str) -> dict[str, Any] | None:
    """The result a row script printed, or None if it printed none."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER) :])  # type: ignore[no-any-return]
    return None
