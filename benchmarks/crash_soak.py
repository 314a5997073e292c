"""Crash soak: SIGKILL a worker again and again; nothing may be lost.

Usage::

    python benchmarks/crash_soak.py             # 100,000 events, 20 kills, both stores
    python benchmarks/crash_soak.py --store rocksdb --events 10000 --kills 5
    python benchmarks/crash_soak.py --expect-exact   # fail on any table over-count

Starts a Tansu broker (``TestBroker``), fills a 4-partition input topic with
``--events`` JSON events over 100 keys, and runs the worker of
``soak_worker.py`` (a table ``counts`` in the ``--store``: ``rocksdb``,
``memory`` or, by default, one run on each; a sink topic) on it. The
worker is SIGKILLed ``--kills`` times at random moments, a third of them in
each phase: start-up (before it joined the group), recovery (right after it
got its partitions, while the table recovers) and steady processing, and
restarted every time with the same data directory. A last worker runs to
the end and is stopped with SIGTERM.

Then it checks, and prints:

* every event reached the sink and the table at least once (else: FAIL);
* duplicates in the sink and the table's over-count (the changelog's last
  value per key against the number of events of the key);
* the at-least-once bound: the events each killed worker had processed at
  or past the offsets committed when it died, which its successor
  processed again. Events processed again, duplicates and over-count past
  that bound: FAIL. So is a sink record sent more often than its event was
  processed (each worker logs the id of every event it processed).

With ``--expect-exact`` any table over-count fails: tables are exact under
at-least-once (docs/tables.rst, "Exact tables"); sink duplicates stay
within the bound. Exit status 0 when every check passed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from django_faust.testing.broker import TestBroker, die_with_parent

HERE = Path(__file__).resolve().parent
WORKER = HERE / "soak_worker.py"
PARTITIONS = 4
KEYS = 100
PHASES = ("start-up", "recovery", "steady")


STORES = ("rocksdb", "memory")


@dataclass
class SoakResult:
    events: int
    store: str = "rocksdb"
    kills: list[tuple[str, float, int]] = field(default_factory=list)
    lost_in_sink: int = 0
    lost_in_table: int = 0
    sink_duplicates: int = 0
    table_overcount: int = 0
    bound: int = 0
    replayed: int = 0
    sent_twice: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def report(self) -> str:
        phases = Counter(phase for phase, _, _ in self.kills)
        lines = [
            f"crash soak ({self.store} store): {self.events} events, "
            f"{len(self.kills)} SIGKILLs "
            f"({', '.join(f'{phases[p]} in {p}' for p in PHASES)}), "
            f"{self.seconds:.1f}s",
            f"  lost: sink {self.lost_in_sink}, table {self.lost_in_table}",
            f"  processed again after a kill (at or past the last commit): "
            f"{self.replayed}",
            f"  sink duplicates: {self.sink_duplicates} (sent more often than "
            f"processed: {self.sent_twice})",
            f"  table over-count: {self.table_overcount}",
            f"  at-least-once bound (events past the last commit of each "
            f"killed worker): {self.bound}",
        ]
        lines += [f"  FAIL: {p}" for p in self.problems]
        lines.append("  OK" if self.ok else "  FAILED")
        return "\n".join(lines)


class Soak:
    def __init__(
        self,
        broker: TestBroker,
        events: int,
        workdir: Path,
        rate: float = 0,
        store: str = "rocksdb",
    ) -> None:
        self.broker = broker
        self.store = store
        self.rate = rate
        self.events = events
        self.workdir = workdir
        run = uuid.uuid4().hex[:8]
        self.app_id = f"soak-{run}"
        self.source = f"soak-in-{run}"
        self.sink = f"soak-out-{run}"
        self.changelog = f"{self.app_id}-counts-changelog"
        self.datadir = workdir / "data"
        self.round = 0

    # -- processes -------------------------------------------------------------

    def log_path(self, round_: int) -> Path:
        return self.workdir / f"processed-{round_}.log"

    def start(self) -> subprocess.Popen[bytes]:
        self.round += 1
        env = dict(
            os.environ,
            SOAK_BROKER=self.broker.url,
            SOAK_APP_ID=self.app_id,
            SOAK_IN=self.source,
            SOAK_OUT=self.sink,
            SOAK_DATADIR=str(self.datadir),
            SOAK_STORE=f"{self.store}://",
            SOAK_LOG=str(self.log_path(self.round)),
            SOAK_LOGLEVEL="info",
            SOAK_RATE=str(self.rate),
            PYTHONUNBUFFERED="1",
        )
        out = (self.workdir / f"worker-{self.round}.out").open("wb")
        return subprocess.Popen(
            [sys.executable, str(WORKER)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )

    def output(self, round_: int) -> str:
        path = self.workdir / f"worker-{round_}.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def processed(self, round_: int) -> list[tuple[int, int, int]]:
        """``(partition, offset, id)`` of each event worker ``round_`` processed."""
        path = self.log_path(round_)
        if not path.exists():
            return []
        lines = path.read_text().split("\n")[:-1]  # the last one may be partial
        return [(int(p), int(o), int(i)) for p, o, i in (ln.split() for ln in lines)]

    # -- broker ----------------------------------------------------------------

    async def prepare(self) -> Counter[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(t, PARTITIONS, 1) for t in (self.source, self.sink)]
            )
        finally:
            await admin.close()
        producer = AIOKafkaProducer(
            bootstrap_servers=self.broker.bootstrap, linger_ms=20, acks=1
        )
        await producer.start()
        expected: Counter[str] = Counter()
        rng = random.Random(1)
        try:
            futures = []
            for n in range(self.events):
                key = f"k{rng.randrange(KEYS)}"
                expected[key] += 1
                futures.append(
                    await producer.send(
                        self.source, json.dumps({"id": n}).encode(), key=key.encode()
                    )
                )
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        return expected

    async def settled_commits(self) -> dict[int, int]:
        """The committed offsets once a dead worker's last commit has landed.

        A commit the worker wrote to its socket just before the SIGKILL may
        be answered late on a loaded machine: read until two reads a moment
        apart agree, so the bound is neither short nor padded.
        """
        last = await self.committed()
        for _ in range(20):
            await asyncio.sleep(0.3)
            now = await self.committed()
            if now == last:
                return now
            last = now
        return last

    async def committed(self) -> dict[int, int]:
        client = AIOKafkaConsumer(
            bootstrap_servers=self.broker.bootstrap,
            group_id=self.app_id,
            enable_auto_commit=False,
        )
        await client.start()
        try:
            out = {}
            for p in range(PARTITIONS):
                offset = await client.committed(TopicPartition(self.source, p))
                out[p] = offset or 0
            return out
        finally:
            await client.stop()

    async def read(self, topic: str) -> list[tuple[bytes | None, bytes | None]]:
        client = AIOKafkaConsumer(
            bootstrap_servers=self.broker.bootstrap,
            enable_auto_commit=False,
            max_poll_records=5000,
        )
        await client.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            client.assign(tps)
            await client.seek_to_beginning(*tps)
            records: list[tuple[bytes | None, bytes | None]] = []
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                batches = await client.getmany(timeout_ms=300)
                for messages in batches.values():
                    records.extend((m.key, m.value) for m in messages)
                ends = [client.highwater(tp) for tp in tps]
                positions = [await client.position(tp) for tp in tps]
                if all(
                    e is not None and p >= e
                    for e, p in zip(ends, positions, strict=True)
                ):
                    return records
            raise RuntimeError(f"could not read {topic} to its end")
        finally:
            await client.stop()


async def _wait_until(predicate, timeout: float, process: subprocess.Popen) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if process.poll() is not None:
            return False
        await asyncio.sleep(0.02)
    return False


async def soak(
    events: int,
    kills: int,
    seed: int,
    *,
    rate: float = 5000,
    expect_exact: bool = False,
    keep: bool = False,
    store: str = "rocksdb",
) -> SoakResult:
    if store not in STORES:
        raise ValueError(f"store: {store!r} is not one of {', '.join(STORES)}")
    rng = random.Random(seed)
    result = SoakResult(events, store)
    workdir = Path(tempfile.mkdtemp(prefix="crash-soak-"))
    started = time.monotonic()
    broker = TestBroker()
    await asyncio.to_thread(broker.start)
    try:
        run = Soak(broker, events, workdir, rate, store)
        expected = await run.prepare()
        # The phases of the kills, spread evenly, in random order.
        phases = [PHASES[i % 3] for i in range(kills)]
        rng.shuffle(phases)
        for phase in phases:
            process = run.start()
            round_ = run.round
            out = workdir / f"worker-{round_}.out"
            if phase == "start-up":
                await asyncio.sleep(rng.uniform(0.05, 1.0))
            elif phase == "recovery":
                # Right after the assignment: tables recover from here on.
                await _wait_until(
                    lambda out=out: (
                        "Recovering table" in out.read_text(errors="replace")
                        or "Recovered" in out.read_text(errors="replace")
                    ),
                    30,
                    process,
                )
                await asyncio.sleep(rng.uniform(0, 0.05))
            else:
                await _wait_until(
                    lambda r=round_: len(run.processed(r)) >= 200, 30, process
                )
                await asyncio.sleep(rng.uniform(0.1, 1.5))
            if process.poll() is not None:
                result.problems.append(
                    f"worker {round_} exited by itself ({process.returncode}):\n"
                    + run.output(round_)[-3000:]
                )
                break
            process.send_signal(signal.SIGKILL)
            process.wait()
            committed = await run.settled_commits()
            # What this worker did at or past the committed offsets: its
            # successor starts there and does it again.
            past = sum(
                1 for p, o, _ in run.processed(round_) if o >= committed.get(p, 0)
            )
            result.bound += past
            result.kills.append((phase, time.monotonic() - started, past))
            # The successor waits out the dead member's session (4 s).
        # The last worker runs to the end and stops cleanly.
        process = run.start()
        final = run.round
        deadline = time.monotonic() + max(120, events / 200)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                result.problems.append(
                    f"the last worker exited ({process.returncode}):\n"
                    + run.output(final)[-3000:]
                )
                break
            if sum((await run.committed()).values()) >= events:
                break
            await asyncio.sleep(1.0)
        else:
            result.problems.append("the last worker did not finish in time")
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                code = await asyncio.to_thread(process.wait, 30)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
            if code != 0:
                result.problems.append(f"the last worker's SIGTERM exit code: {code}")

        # -- checks ----------------------------------------------------------
        seen = Counter(
            (p, o, i) for r in range(1, run.round + 1) for p, o, i in run.processed(r)
        )
        result.replayed = sum(c - 1 for c in seen.values())
        times = Counter({i: c for (_, _, i), c in seen.items()})
        sink = Counter(json.loads(v) for _, v in await run.read(run.sink))
        result.lost_in_sink = len(set(range(events)) - set(sink))
        result.sink_duplicates = sum(c - 1 for c in sink.values())
        # Every copy in the sink stands for one processing of its event.
        result.sent_twice = sum(max(0, c - times[i]) for i, c in sink.items())
        table: dict[str, int] = {}
        for k, v in await run.read(run.changelog):
            if k is not None:
                key = json.loads(k)
                if v is None:
                    table.pop(key, None)
                else:
                    table[key] = json.loads(v)
        result.lost_in_table = sum(
            max(0, n - table.get(k, 0)) for k, n in expected.items()
        )
        result.table_overcount = sum(
            max(0, table.get(k, 0) - n) for k, n in expected.items()
        )
        if result.lost_in_sink:
            result.problems.append(
                f"{result.lost_in_sink} event(s) never reached the sink"
            )
        if result.lost_in_table:
            result.problems.append(
                f"the table is short of {result.lost_in_table} event(s)"
            )
        if result.sent_twice:
            result.problems.append(
                f"{result.sent_twice} sink record(s) sent more often than their "
                "event was processed"
            )
        if result.replayed > result.bound:
            result.problems.append(
                f"{result.replayed} event(s) processed again, past the bound "
                f"{result.bound} (a replay that no kill explains)"
            )
        if result.sink_duplicates > result.bound:
            result.problems.append(
                f"{result.sink_duplicates} sink duplicates, past the bound "
                f"{result.bound}"
            )
        limit = 0 if expect_exact else result.bound
        if result.table_overcount > limit:
            result.problems.append(
                f"table over-count {result.table_overcount}, past the bound {limit}"
            )
    finally:
        await asyncio.to_thread(broker.stop)
        result.seconds = time.monotonic() - started
        if keep or not result.ok:
            print(f"(worker logs kept in {workdir})", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--rate",
        type=float,
        default=5000,
        help="events per second a worker processes at most (0: no limit)",
    )
    parser.add_argument(
        "--store",
        choices=(*STORES, "both"),
        default="both",
        help="the table's store (default: one run on each)",
    )
    parser.add_argument(
        "--expect-exact",
        action="store_true",
        help="fail on any table over-count (exact tables)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the worker logs")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    print(f"seed {seed}", flush=True)
    stores = STORES if args.store == "both" else (args.store,)
    ok = True
    for store in stores:
        result = asyncio.run(
            soak(
                args.events,
                args.kills,
                seed,
                rate=args.rate,
                expect_exact=args.expect_exact,
                keep=args.keep,
                store=store,
            )
        )
        print(result.report(), flush=True)
        ok = ok and result.ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
