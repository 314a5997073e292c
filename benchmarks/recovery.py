"""How fast django-faust rebuilds a table from its changelog at start.

Usage::

    python benchmarks/recovery.py [--records N] [--profile DIR] [--headers]

Starts one Tansu broker, writes a changelog of ``--records`` records
(1,000,000 by default; one record per distinct key, key ``"k123"`` and an
int value, both JSON-encoded as the table writes them) into
``<app_id>-counts-changelog`` (4 partitions) — untimed — and then starts a
django-faust app that declares the table ``counts`` three times, each in a
process of its own:

1. ``memory://``: every record replayed into dicts;
2. ``rocksdb://`` with a fresh DATADIR: every record replayed into RocksDB;
3. ``rocksdb://`` again on the same DATADIR: the store has persisted the
   changelog offset, so (about) nothing is replayed.

Each start is timed from ``await app.start()`` until
``app.tables.recovered`` is set, and ``app.tables.last_recovered`` must be
the number of records expected. The app has one agent over a 4-partition
source topic (empty), so that the consumer group assigns it the source's
partitions and, with them, the changelog's: tables are recovered when their
changelog partitions are assigned. With ``--headers`` every record carries
the source header a worker writes (naming an event whose offset the group
has committed), so that recovery reads and checks headers as it does on a
worker's real changelog. See README.rst beside this file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from django_faust.testing.broker import TestBroker, die_with_parent

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import kafka_io  # noqa: E402
from common import (  # noqa: E402
    PARTITIONS,
    RESULT_MARKER,
    SESSION_TIMEOUT_MS,
    parse_result,
)

#: The table's name (its changelog is ``<app_id>-counts-changelog``).
TABLE = "counts"
#: Longest a start may take before it is reported as failed.
START_TIMEOUT = 300.0
LOGS = HERE / ".logs"


def changelog_records(count: int) -> list[tuple[bytes, bytes]]:
    """``count`` changelog records, one per distinct key, as the table encodes."""
    return [
        (json.dumps(f"k{i}").encode(), json.dumps(i % 1000 + 1).encode())
        for i in range(count)
    ]


def source_headers(index: int, source: str) -> list[tuple[str, bytes]]:
    """The source header a worker writes (``--headers``): event ``index``.

    Events ``index`` of partition ``index % PARTITIONS`` of ``source``, whose
    offsets the driver commits for the app's group before the starts, so
    that recovery checks every record and keeps it.
    """
    from django_faust.tables.table import SOURCE_HEADER

    return [(SOURCE_HEADER, f"{index % PARTITIONS}:{index}:{source}".encode())]


async def produce_with_headers(
    bootstrap: str, topic: str, records: list[tuple[bytes, bytes]], source: str
) -> float:
    """Produce ``records`` with a source header each; the rate (records/s)."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.partitioner import DefaultPartitioner

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, max_batch_size=256 * 1024, acks=1
    )
    await producer.start()
    try:
        started = time.perf_counter()
        partitions = sorted(await producer.partitions_for(topic))
        partitioner = DefaultPartitioner()
        batches: dict[int, Any] = {}
        for index, (key, value) in enumerate(records):
            headers = source_headers(index, source)
            partition = partitioner(key, partitions, partitions)
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = producer.create_batch()
            added = batch.append(key=key, value=value, timestamp=None, headers=headers)
            if added is None:
                await producer.send_batch(batch, topic, partition=partition)
                batch = batches[partition] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None, headers=headers)
        for partition, batch in batches.items():
            await producer.send_batch(batch, topic, partition=partition)
        await producer.flush()
        return len(records) / (time.perf_counter() - started)
    finally:
        await producer.stop()


# -- one start (a process of its own) ----------------------------------------------


async def start_once(args: argparse.Namespace) -> dict[str, Any]:
    """Start the app, wait until its table is recovered, report the timings."""
    from django_faust.testing import make_app

    app = make_app(
        args.app_id,
        broker=f"kafka://{args.bootstrap}",
        store=args.store,
        datadir=args.datadir,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=SESSION_TIMEOUT_MS / 1000,
        broker_heartbeat_interval=SESSION_TIMEOUT_MS / 3000,
        topic_partitions=PARTITIONS,
    )
    table = app.Table(TABLE, default=int)
    source = app.topic(args.source, value_type=None, partitions=PARTITIONS)

    @app.agent(source)
    async def consume(stream: Any) -> None:
        async for _ in stream:
            pass

    # Time the replay itself too (the group join comes before it).
    marks: dict[str, float] = {}
    recover = app.tables.recover

    async def timed_recover(wanted: Any) -> None:
        marks.setdefault("assigned", time.perf_counter())
        try:
            await recover(wanted)
        finally:
            marks["recovered"] = time.perf_counter()

    app.tables.recover = timed_recover  # type: ignore[method-assign]

    started = time.perf_counter()
    await app.start()
    try:
        await asyncio.wait_for(app.tables.recovered.wait(), START_TIMEOUT)
        total = time.perf_counter() - started
        replayed = app.tables.last_recovered
        # Untimed checks: every key is there with its value.
        size = len(table)
        samples = [0, args.expect_keys // 2, args.expect_keys - 1]
        wrong = [
            i
            for i in samples
            if i < args.expect_keys and table.get(f"k{i}") != i % 1000 + 1
        ]
    finally:
        await app.stop()
    return {
        "total": total,
        "join": marks.get("assigned", started) - started,
        "replay": marks.get("recovered", started) - marks.get("assigned", started),
        "replayed": replayed,
        "keys": size,
        "wrong": wrong,
    }


def child_main(args: argparse.Namespace) -> int:
    """``recovery.py start ...``: one start, printed as a result line."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    profile = os.environ.get("BENCH_PROFILE")
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        try:
            result = profiler.runcall(asyncio.run, start_once(args))
        finally:
            profiler.dump_stats(profile)
    else:
        result = asyncio.run(start_once(args))
    print(RESULT_MARKER + json.dumps(result), flush=True)
    return 0


# -- the driver ------------------------------------------------------------------


async def warm_up_group(
    bootstrap: str, group: str, topics: list[str], commit_source: int = 0
) -> None:
    """Take the app's consumer group past generation 0 (untimed).

    Tansu numbers a new group's first generation 0 (Kafka: 1), and aiokafka
    sends no LeaveGroup from generation 0: the first member of a fresh group
    never leaves it, and the next member to join waits for its session to
    expire (about 8 s more). A throwaway member joins, rejoins (generation
    1) by changing its subscription, and leaves properly, so every start
    measured joins an empty group (about 3 s on Tansu, whatever the store).
    Tansu also keeps an empty group's protocol, so the throwaway member
    announces the protocol name django-faust's assignor uses. With
    ``commit_source``, it commits that offset on every partition of the
    source (``topics[0]``): the events the ``--headers`` records name.
    """
    from aiokafka import AIOKafkaConsumer
    from aiokafka.coordinator.assignors.roundrobin import (
        RoundRobinPartitionAssignor,
    )

    class SameProtocol(RoundRobinPartitionAssignor):
        name = "django-faust"

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=SESSION_TIMEOUT_MS // 3,
        partition_assignment_strategy=(SameProtocol,),
    )
    await consumer.start()
    try:
        for subscribed in (topics[:1], topics):
            consumer.subscribe(subscribed)
            deadline = time.monotonic() + 60
            while {tp.topic for tp in consumer.assignment()} != set(subscribed):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"could not join the group {group}")
                await consumer.getmany(timeout_ms=200)
        if commit_source:
            from aiokafka import TopicPartition

            await consumer.commit(
                {TopicPartition(topics[0], p): commit_source for p in range(PARTITIONS)}
            )
    finally:
        await consumer.stop()


def run_start(
    label: str,
    bootstrap: str,
    app_id: str,
    source: str,
    store: str,
    datadir: str,
    keys: int,
    profile: Path | None,
) -> dict[str, Any]:
    """Run one start in a subprocess; its result (or an ``error``)."""
    LOGS.mkdir(exist_ok=True)
    log = LOGS / f"recovery-{label}-{app_id}.log"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "start",
        f"--bootstrap={bootstrap}",
        f"--app-id={app_id}",
        f"--source={source}",
        f"--store={store}",
        f"--datadir={datadir}",
        f"--expect-keys={keys}",
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        env["BENCH_PROFILE"] = str(profile / f"recovery-{label}.prof")
    try:
        done = subprocess.run(
            command,
            env=env,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT + 60,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )
        stdout, stderr = done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        stdout, stderr = str(exc.stdout or ""), str(exc.stderr or "")
    log.write_text(f"$ {' '.join(command)}\n--- stdout\n{stdout}\n--- stderr\n{stderr}")
    result = parse_result(stdout)
    if result is None:
        return {"error": f"no result (log: {log})"}
    return result


def check(result: dict[str, Any], replayed: int | None, keys: int) -> str:
    """The word "ok", or what is wrong with a start's result."""
    if "error" in result:
        return f"failed: {result['error']}"
    problems = []
    if replayed is not None and result["replayed"] != replayed:
        problems.append(f"replayed {result['replayed']:,}, expected {replayed:,}")
    if result["keys"] != keys:
        problems.append(f"table holds {result['keys']:,} keys, not {keys:,}")
    if result["wrong"]:
        problems.append(f"wrong values for k{result['wrong']}")
    return "; ".join(problems) or "ok"


def main(argv: list[str] | None = None) -> int:
    """Produce the changelog once, then time the three starts."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--profile", type=Path, metavar="DIR")
    parser.add_argument(
        "--headers",
        action="store_true",
        help="every record names its (committed) source event, as a worker writes",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    n = args.records
    run_id = uuid.uuid4().hex[:6]
    app_id = f"recovery-{run_id}"
    changelog = f"{app_id}-{TABLE}-changelog"
    source = f"recovery-{run_id}-source"
    datadirs = [tempfile.mkdtemp(prefix="bench-recovery-") for _ in range(2)]
    rows: list[tuple[str, dict[str, Any], str]] = []
    try:
        with TestBroker() as broker:
            print(f"Broker (tansu) on {broker.bootstrap}", flush=True)
            asyncio.run(
                kafka_io.create_topics(
                    broker.bootstrap, changelog, config={"cleanup.policy": "compact"}
                )
            )
            asyncio.run(kafka_io.create_topics(broker.bootstrap, source))
            records = changelog_records(n)
            t0 = time.perf_counter()
            if args.headers:
                rate = asyncio.run(
                    produce_with_headers(broker.bootstrap, changelog, records, source)
                )
            else:
                rate = asyncio.run(
                    kafka_io.produce_records(broker.bootstrap, changelog, records)
                )
            del records
            asyncio.run(
                warm_up_group(
                    broker.bootstrap,
                    app_id,
                    [source, changelog],
                    commit_source=n if args.headers else 0,
                )
            )
            print(
                f"Changelog {changelog}: {n:,} records produced in "
                f"{time.perf_counter() - t0:.1f} s ({rate:,.0f}/s, untimed)",
                flush=True,
            )
            starts = [
                ("memory", "memory://", datadirs[0], n),
                ("rocksdb", "rocksdb://", datadirs[1], n),
                ("rocksdb-restart", "rocksdb://", datadirs[1], None),
            ]
            for label, store, datadir, replayed in starts:
                result = run_start(
                    label,
                    broker.bootstrap,
                    app_id,
                    source,
                    store,
                    datadir,
                    n,
                    args.profile,
                )
                status = check(result, replayed, n)
                rows.append((label, result, status))
                print(f"  [{label}] {describe(result)}: {status}", flush=True)
    finally:
        for datadir in datadirs:
            shutil.rmtree(datadir, ignore_errors=True)
    print_report(rows, n, args.headers)
    return 0 if all(status == "ok" for _, _, status in rows) else 1


def describe(result: dict[str, Any]) -> str:
    if "error" in result:
        return result["error"]
    return (
        f"{result['replayed']:,} records in {result['total']:.2f} s from start "
        f"({result['join']:.2f} s group join, {result['replay']:.2f} s replay)"
    )


def print_report(
    rows: list[tuple[str, dict[str, Any], str]], n: int, headers: bool = False
) -> None:
    """The table of the three starts."""
    print()
    print(
        f"Changelog of {n:,} records ({n:,} keys, JSON key and int value"
        f"{', a source header each' if headers else ''}), {PARTITIONS} partitions"
    )
    header = (
        "start",
        "replayed",
        "total s",
        "join s",
        "replay s",
        "rec/s total",
        "rec/s replay",
    )
    print(f"{header[0]:<18}" + "".join(f"{h:>13}" for h in header[1:]))
    for label, r, status in rows:
        if "error" in r:
            print(f"{label:<18}  {status}")
            continue
        per_total = r["replayed"] / r["total"] if r["total"] else 0.0
        per_replay = r["replayed"] / r["replay"] if r["replay"] else 0.0
        cells = [
            f"{r['replayed']:,}",
            f"{r['total']:.2f}",
            f"{r['join']:.2f}",
            f"{r['replay']:.2f}",
            f"{per_total:,.0f}",
            f"{per_replay:,.0f}",
        ]
        line = f"{label:<18}" + "".join(f"{c:>13}" for c in cells)
        print(line + ("" if status == "ok" else f"  ({status})"))


def parse_child_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--datadir", required=True)
    parser.add_argument("--expect-keys", type=int, required=True)
    return parser.parse_args(argv)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "start":
        raise SystemExit(child_main(parse_child_args(sys.argv[2:])))
    raise SystemExit(main())
