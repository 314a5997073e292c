"""Throughput of django-faust against a raw aiokafka loop, quixstreams and Faust.

Usage::

    python benchmarks/run.py [--events N] [--repeat N]
                             [--rows raw,raw_batched,quix,faust,django_faust,...]
                             [--workloads W1,W2,W3]

Starts one Tansu broker for the whole run. For each workload and row it
creates fresh topics, fills the input (untimed), runs the row in a
subprocess of its own (quixstreams and faust-streaming in virtualenvs under
``benchmarks/.venvs/``, created on first use), verifies what the row counted
or produced, and finally prints each row's median events per second and
the ratios of django-faust's rows to every other row. See README.rst beside this file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django_faust.testing.broker import TestBroker, die_with_parent

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import kafka_io  # noqa: E402
from common import (  # noqa: E402
    PROFILE_ENV,
    RESULT_MARKER,
    WORKLOADS,
    expected_counts,
    parse_result,
)

#: Seconds a row may take for one workload before it is reported as failed.
ROW_TIMEOUT = 300
#: A row whose timed section took longer than this is not run again.
REPEAT_MAX_SECONDS = 15.0
VENVS = HERE / ".venvs"
LOGS = HERE / ".logs"
#: Where rows write cProfile stats (``--profile``); None: no profiling.
PROFILES: Path | None = None


@dataclass
class Row:
    """One competitor: how to run it and which workloads it has."""

    label: str
    module: str
    #: Name of its own virtualenv and what to pip-install there; None: ours.
    venv: str | None = None
    requirements: tuple[str, ...] = ()
    #: Workload -> why this row does not run it.
    skipped: dict[str, str] = field(default_factory=dict)
    #: Extra environment of the row's process (e.g. a variant of the row).
    env: dict[str, str] = field(default_factory=dict)


#: W1 rows that produce nothing: the same as their base row there.
_NO_SEND = {"W1": "n/a (sends nothing: same as the row above)"}
_NO_TABLE = {
    "W1": "n/a (no table: same as django-faust)",
    "W2": "n/a (no table: same as django-faust)",
}

ROWS = {
    # ``await producer.send()`` per message: what a hand-written loop does.
    "raw": Row("raw aiokafka", "rows.raw_aiokafka"),
    # aiokafka batches built by hand (create_batch/send_batch): the ceiling.
    "raw_batched": Row(
        "batched ceiling",
        "rows.raw_aiokafka",
        skipped=_NO_SEND,
        env={"BENCH_RAW_SEND": "batch"},
    ),
    "quix": Row("quixstreams", "rows.quix", venv="quix", requirements=("quixstreams",)),
    "faust": Row(
        "faust-streaming",
        "rows.faust_streaming",
        venv="faust",
        requirements=("faust-streaming>=0.15,<0.16",),
    ),
    # W2 with ``await output.send(...)`` per event: the code users write.
    "django_faust": Row("django-faust", "rows.django_faust_row"),
    # W2 with ``output.send_soon(...)`` (sync, no coroutine per event).
    "django_faust_soon": Row(
        "django-faust send_soon",
        "rows.django_faust_row",
        skipped={**_NO_SEND, "W3": "n/a (sends nothing itself)"},
        env={"BENCH_DJANGO_FAUST_SEND": "send_soon"},
    ),
    # W2 with ``yield`` to ``sink=[output]`` (the key kept with ``Event``).
    "django_faust_sink": Row(
        "django-faust sink",
        "rows.django_faust_row",
        skipped={**_NO_SEND, "W3": "n/a (sends nothing itself)"},
        env={"BENCH_DJANGO_FAUST_SEND": "sink"},
    ),
    # The same row with its W3 table in RocksDB; W1/W2 use no table.
    "django_faust_rocksdb": Row(
        "django-faust (rocksdb)",
        "rows.django_faust_row",
        skipped=_NO_TABLE,
        env={"BENCH_DJANGO_FAUST_STORE": "rocksdb"},
    ),
    # Values decoded to a `Record` of 7 fields, without and with validation.
    "django_faust_record": Row(
        "django-faust Record",
        "rows.django_faust_row",
        env={"BENCH_DJANGO_FAUST_VALUE": "record"},
    ),
    "django_faust_record_valid": Row(
        "django-faust Record+valid",
        "rows.django_faust_row",
        env={"BENCH_DJANGO_FAUST_VALUE": "record_validated"},
    ),
}


@dataclass
class Outcome:
    """A row's figure for one workload, or why there is none."""

    rate: float | None = None
    status: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


# -- virtualenvs -------------------------------------------------------------------


def row_python(row: Row) -> str:
    """The interpreter that runs ``row``, creating its virtualenv if needed."""
    if row.venv is None:
        return sys.executable
    venv = VENVS / row.venv
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    wanted = "\n".join(row.requirements)
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return str(python)
    print(f"Creating {venv} ({', '.join(row.requirements)}) ...", flush=True)
    LOGS.mkdir(exist_ok=True)
    log = LOGS / f"pip-{row.venv}.log"
    with log.open("w") as out:
        commands = [
            ["python3", "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "-q", *row.requirements],
        ]
        for command in commands:
            if subprocess.run(command, stdout=out, stderr=out).returncode:
                raise RuntimeError(f"could not install {row.requirements} (see {log})")
    marker.write_text(wanted)
    return str(python)


# -- one row, one workload -----------------------------------------------------------


def topic_names(run_id: str, name: str, workload: str) -> tuple[str, str]:
    """Fresh input and output topic names for one row and workload."""
    base = f"bench-{run_id}-{name.replace('_', '-')}-{workload.lower()}"
    return f"{base}-in", f"{base}-out"


def median_of(
    names: list[str], workload: str, bootstrap: str, events: int, repeat: int
) -> dict[str, Outcome]:
    """Each row's median of ``repeat`` verified runs, the rows interleaved.

    Round after round every row runs once, so a burst of load elsewhere on
    the machine hits every row alike rather than one row's every run. A
    row that fails once is reported failed and not run again; one whose
    timed section took longer than `REPEAT_MAX_SECONDS` is not repeated.
    """
    runs: dict[str, list[Outcome]] = {}
    final: dict[str, Outcome] = {}
    pythons: dict[str, str] = {}
    for name in names:
        row = ROWS[name]
        if workload in row.skipped:
            final[name] = Outcome(status=row.skipped[workload])
            continue
        try:
            pythons[name] = row_python(row)
        except RuntimeError as exc:
            final[name] = Outcome(status=f"failed: {exc}")
            continue
        runs[name] = []
    for _ in range(repeat):
        for name, done in runs.items():
            if name in final:
                continue
            try:
                outcome = run_once(name, pythons[name], workload, bootstrap, events)
            except Exception as exc:  # the broker refused something: say so, go on
                outcome = Outcome(status=f"failed: {type(exc).__name__}: {exc}")
            print(f"  [{workload} {ROWS[name].label}] {describe(outcome)}", flush=True)
            if outcome.rate is None:
                final[name] = outcome
                continue
            done.append(outcome)
            if outcome.detail["seconds"] > REPEAT_MAX_SECONDS:
                final[name] = outcome
    for name, done in runs.items():
        if name not in final:
            ordered = sorted(done, key=lambda o: o.rate or 0.0)
            final[name] = ordered[(len(ordered) - 1) // 2]
            final[name].detail["rates"] = [o.rate for o in done]
    return {name: final[name] for name in names}


def run_once(
    name: str, python: str, workload: str, bootstrap: str, events: int
) -> Outcome:
    """Prepare fresh topics, run the row in a subprocess, verify its work."""
    run_id = uuid.uuid4().hex[:6]
    source, sink = topic_names(run_id, name, workload)
    asyncio.run(kafka_io.create_topics(bootstrap, source, sink))
    extra: list[str] = []
    try:
        asyncio.run(kafka_io.produce_input(bootstrap, source, events))
        command = [
            python,
            "-m",
            ROWS[name].module,
            f"--bootstrap={bootstrap}",
            f"--workload={workload}",
            f"--input-topic={source}",
            f"--output-topic={sink}",
            f"--group=bench-{run_id}",
            f"--events={events}",
        ]
        result, log = run_subprocess(
            command, f"{name}-{workload}-{run_id}", ROWS[name].env
        )
        if result is None or "error" in result:
            reason = (result or {}).get("error") or "no result printed"
            return Outcome(status=f"failed: {reason} (log: {log})")
        # A changelog named by the library (django-faust's W3) goes too.
        if result.get("output") not in ("", source, sink):
            extra.append(result["output"])
        return verified(workload, bootstrap, sink, events, result)
    finally:
        asyncio.run(kafka_io.delete_topics(bootstrap, source, sink, *extra))


def run_subprocess(
    command: list[str], label: str, extra_env: dict[str, str] | None = None
) -> tuple[dict | None, Path]:
    """Run a row script; its parsed result line and the path of its log."""
    LOGS.mkdir(exist_ok=True)
    log = LOGS / f"{label}.log"
    env = dict(os.environ, PYTHONPATH=str(HERE), PYTHONUNBUFFERED="1")
    env.update(extra_env or {})
    if PROFILES is not None:
        PROFILES.mkdir(parents=True, exist_ok=True)
        env[PROFILE_ENV] = str(PROFILES / f"{label}.prof")
    try:
        done = subprocess.run(
            command,
            cwd=HERE,
            env=env,
            capture_output=True,
            text=True,
            timeout=ROW_TIMEOUT,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )
        stdout, stderr = done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        stdout = _text(exc.stdout) + f"\n{RESULT_MARKER}{_timeout_json()}\n"
        stderr = _text(exc.stderr)
    log.write_text(f"$ {' '.join(command)}\n--- stdout\n{stdout}\n--- stderr\n{stderr}")
    return parse_result(stdout), log


def _text(data: bytes | str | None) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data or ""


def _timeout_json() -> str:
    return json.dumps({"error": f"timed out after {ROW_TIMEOUT} s"})


def verified(
    workload: str, bootstrap: str, sink: str, events: int, result: dict
) -> Outcome:
    """The row's rate if what it did checks out, else the problems found."""
    expected = expected_counts(events)
    problems = []
    if result["events"] != events:
        problems.append(f"handled {result['events']} events, not {events}")
    if workload in ("W1", "W3"):
        problems += kafka_io.compare_counts(Counter(result["counts"]), expected)
    if workload == "W2" and result.get("output") != sink:
        problems.append("the row did not report producing the output topic")
    if workload in ("W2", "W3") and result.get("output"):
        check = (
            kafka_io.OutputCheck(keyless=result.get("keyless", False))
            if workload == "W2"
            else kafka_io.ChangelogCheck()
        )
        # W3: the changelog the row reported (django-faust's is named by
        # the library, not ``sink``).
        topic = result["output"]
        if not asyncio.run(kafka_io.read_topic(bootstrap, topic, check.visit)):
            problems.append("timed out reading the output back")
        problems += check.verify(expected)
        output_records = check.records
    else:
        output_records = None
    detail = {k: v for k, v in result.items() if k != "counts"}
    detail["output_records"] = output_records
    if problems:
        return Outcome(status="failed verification: " + "; ".join(problems))
    rate = events / result["seconds"]
    return Outcome(rate=rate, status="ok", detail=detail)


# -- the report --------------------------------------------------------------------


def cell(outcome: Outcome) -> str:
    """A table cell: the rate, or "n/a" / "failed" (explained below the table)."""
    if outcome.rate is not None:
        return f"{outcome.rate:,.0f}"
    return "n/a" if outcome.status.startswith("n/a") else "failed"


def print_report(
    results: dict[str, dict[str, Outcome]], workloads: list[str], events: int
) -> None:
    """The table of events per second and django-faust's ratios (both stores)."""
    print()
    print(
        f"{events:,} JSON events (~100 B), 1,000 keys, 4 partitions; "
        "events/s over the timed section"
    )
    print(_line("row", [f"{w} ev/s" for w in workloads]))
    for name, outcomes in results.items():
        print(_line(ROWS[name].label, [cell(outcomes[w]) for w in workloads]))
    ours = [name for name in results if name.startswith("django_faust")]
    others = [name for name in results if name not in ours]
    # Each library row against ours; the variants against the plain row.
    blocks = [(name, ours) for name in others]
    if "django_faust" in results:
        variants = [name for name in ours if name != "django_faust"]
        blocks.append(("django_faust", variants))
    for theirs, rows in blocks:
        rows = [r for r in rows if r != theirs]
        if not rows or all(results[theirs][w].rate is None for w in workloads):
            continue
        print()
        print(_line(f"ratio to {ROWS[theirs].label}", workloads))
        for name in rows:
            ratios = [ratio(results[name][w], results[theirs][w]) for w in workloads]
            print(_line(ROWS[name].label, ratios))
    failures = [
        (ROWS[name].label, w, o.status)
        for name, outcomes in results.items()
        for w, o in outcomes.items()
        if o.rate is None and not o.status.startswith("n/a (no table")
    ]
    for label, workload, status in failures:
        print(f"  {label} {workload}: {status}")


def ratio(ours: Outcome, theirs: Outcome) -> str:
    """One row's rate over another's (0.81: 81 % of the other's rate)."""
    if ours.rate is None or theirs.rate is None:
        return "-"
    return f"{ours.rate / theirs.rate:.2f}"


def _line(first: str, cells: list[str]) -> str:
    return f"{first:<30}" + "".join(f"{c:>12}" for c in cells)


# -- main ------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--events", type=int, default=200_000, help="input size (default 200000)"
    )
    parser.add_argument(
        "--rows", default=",".join(ROWS), help=f"comma-separated, of {', '.join(ROWS)}"
    )
    parser.add_argument(
        "--workloads",
        default="W1,W2,W3",
        help="comma-separated, of W1, W2, W3 (default all)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs per row and workload, interleaved; the median counts (default 3)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="run the rows under cProfile, writing DIR/<row>-<workload>-<id>.prof "
        "(the rates then include the profiler's overhead)",
    )
    args = parser.parse_args(argv)
    args.rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    args.workloads = [w.strip().upper() for w in args.workloads.split(",")]
    for name in args.rows:
        if name not in ROWS:
            parser.error(f"unknown row {name!r}; choose from {', '.join(ROWS)}")
    for workload in args.workloads:
        if workload not in WORKLOADS:
            parser.error(f"unknown workload {workload!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every requested row on every requested workload, then report."""
    global PROFILES
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C: the row is killed, the broker stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    PROFILES = args.profile
    results: dict[str, dict[str, Outcome]] = {name: {} for name in args.rows}
    started = time.monotonic()
    with TestBroker() as broker:
        print(f"Broker (tansu) on {broker.bootstrap}", flush=True)
        for workload in args.workloads:
            outcomes = median_of(
                args.rows, workload, broker.bootstrap, args.events, args.repeat
            )
            for name, outcome in outcomes.items():
                results[name][workload] = outcome
    print_report(results, args.workloads, args.events)
    print(f"\n(total {time.monotonic() - started:.0f} s)")
    if args.json:
        dump = {
            n: {w: vars(o) for w, o in outcomes.items()}
            for n, outcomes in results.items()
        }
        args.json.write_text(json.dumps(dump, indent=2))
    return 0


def describe(outcome: Outcome) -> str:
    """One progress line for an outcome."""
    if outcome.rate is None:
        return outcome.status
    d = outcome.detail
    written = ""
    if d.get("output_records") is not None:
        written = f", {d['output_records']:,} records written"
    return (
        f"{outcome.rate:,.0f} ev/s ({d['seconds']:.2f} s timed, "
        f"{d['startup']:.1f} s to the first event; {d['library']}{written}) verified"
    )


if __name__ == "__main__":
    raise SystemExit(main())
