"""Memory soak: a worker's resident memory, idle and then busy, over time.

Usage::

    python benchmarks/memory_soak.py                 # 60 minutes, RSS every minute
    python benchmarks/memory_soak.py --minutes 3     # RSS every 10 s
    python benchmarks/memory_soak.py --minutes 10 --every 30 --rate 2000

Starts a Tansu broker (``TestBroker``) and the worker of ``soak_worker.py``
(a RocksDB table ``counts`` over 100 keys, a sink topic; ``--store memory``
for the in-memory store). The first half of the run the worker is idle (no
input); the second half the script produces ``--rate`` events per second,
which the worker counts and forwards. Every ``--every`` seconds it prints
the worker's RSS (from ``/proc/<pid>/status``, Linux) and how many events
it has processed; at the end, the RSS at the start and end of each phase
and the growth over the busy phase. A steady worker's RSS levels off: a
figure that keeps climbing through the busy phase is a leak to look into.
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
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from django_faust.testing.broker import TestBroker, die_with_parent

HERE = Path(__file__).resolve().parent
WORKER = HERE / "soak_worker.py"
PARTITIONS = 4
KEYS = 100


def rss_kib(pid: int) -> int:
    """Resident set size of process ``pid`` in KiB (Linux)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def processed(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


async def produce_steadily(
    bootstrap: str, topic: str, rate: float, stop: asyncio.Event
) -> int:
    """Send ``rate`` events per second until ``stop``; how many were sent."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10)
    await producer.start()
    rng = random.Random(3)
    sent = 0
    started = time.monotonic()
    try:
        while not stop.is_set():
            due = int((time.monotonic() - started) * rate)
            while sent < due:
                key = f"k{rng.randrange(KEYS)}".encode()
                await producer.send(topic, json.dumps({"id": sent}).encode(), key=key)
                sent += 1
            await asyncio.sleep(0.05)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


async def soak(minutes: float, every: float, rate: float, store: str) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="memory-soak-"))
    broker = TestBroker()
    await asyncio.to_thread(broker.start)
    process: subprocess.Popen[bytes] | None = None
    run = uuid.uuid4().hex[:8]
    source, sink = f"mem-in-{run}", f"mem-out-{run}"
    log = workdir / "processed.log"
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(t, PARTITIONS, 1) for t in (source, sink)]
            )
        finally:
            await admin.close()
        env = dict(
            os.environ,
            SOAK_BROKER=broker.url,
            SOAK_APP_ID=f"mem-{run}",
            SOAK_IN=source,
            SOAK_OUT=sink,
            SOAK_DATADIR=str(workdir / "data"),
            SOAK_STORE=f"{store}://",
            SOAK_LOG=str(log),
            SOAK_LOGLEVEL="info",
            PYTHONUNBUFFERED="1",
        )
        with (workdir / "worker.out").open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, str(WORKER)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent if sys.platform == "linux" else None,
            )
        # The clock starts once the worker has joined and is idle.
        output = workdir / "worker.out"
        deadline = time.monotonic() + 120
        while "Worker ready" not in output.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                print(output.read_text(errors="replace")[-3000:])
                raise RuntimeError("the worker did not start")
            await asyncio.sleep(0.2)
        total = minutes * 60
        half = total / 2
        started = time.monotonic()
        samples: list[tuple[float, str, int, int]] = []
        stop = asyncio.Event()
        producing: asyncio.Task[int] | None = None
        print(
            f"worker {process.pid}, store {store}://, {minutes:g} min, "
            f"idle then {rate:g} events/s",
            flush=True,
        )
        print(
            f"{'time':>7}  {'phase':5}  {'RSS MiB':>8}  {'processed':>10}", flush=True
        )
        while True:
            elapsed = time.monotonic() - started
            if process.poll() is not None:
                print((workdir / "worker.out").read_text(errors="replace")[-3000:])
                raise RuntimeError(f"the worker exited ({process.returncode})")
            phase = "idle" if elapsed < half else "busy"
            if phase == "busy" and producing is None:
                producing = asyncio.ensure_future(
                    produce_steadily(broker.bootstrap, source, rate, stop)
                )
            rss = rss_kib(process.pid)
            done = processed(log)
            samples.append((elapsed, phase, rss, done))
            print(
                f"{elapsed:6.0f}s  {phase:5}  {rss / 1024:8.1f}  {done:10d}", flush=True
            )
            if elapsed >= total:
                break
            await asyncio.sleep(min(every, max(0.0, total - elapsed)))
        stop.set()
        sent = await producing if producing is not None else 0
        idle = [s for s in samples if s[1] == "idle"]
        busy = [s for s in samples if s[1] == "busy"]

        def mib(kib: int) -> str:
            return f"{kib / 1024:.1f} MiB"

        print("summary:")
        if idle:
            print(f"  idle: {mib(idle[0][2])} -> {mib(idle[-1][2])}")
        if busy:
            print(
                f"  busy: {mib(busy[0][2])} -> {mib(busy[-1][2])} "
                f"(growth {mib(busy[-1][2] - busy[0][2])}; peak "
                f"{mib(max(s[2] for s in busy))}); {sent} events sent, "
                f"{busy[-1][3]} processed"
            )
        return 0
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        await asyncio.to_thread(broker.stop)
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument(
        "--every",
        type=float,
        default=None,
        help="seconds between two samples (default: 60, or 10 for runs under 10 min)",
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s when busy")
    parser.add_argument("--store", choices=("rocksdb", "memory"), default="rocksdb")
    args = parser.parse_args(argv)
    every = args.every or (60.0 if args.minutes >= 10 else 10.0)
    return asyncio.run(soak(args.minutes, every, args.rate, args.store))


if __name__ == "__main__":
    raise SystemExit(main())
