"""Time from ``manage.py faust worker`` to the first event, broken down.

Usage::

    python benchmarks/startup.py [--repeat 3]

Writes a minimal Django project to a temporary directory (one app with
``agents.py``: a table and an agent over a 4-partition topic that holds a
few events), starts one Tansu broker, and runs, ``--repeat`` times each in
a fresh consumer group:

* ``raw aiokafka``: a script that imports aiokafka, starts a group consumer
  and waits for the first record (``getmany``);
* ``manage.py faust worker --without-web``: the project's worker, until its
  agent has the first event.

Each process records when it reached each step (``time.time()``; the parent
notes the moment it spawned the child), so the breakdown is:

``python``
    spawn to the first line of ``manage.py`` (the interpreter);
``django setup``
    ``manage.py`` to the end of ``django.setup()`` (settings, apps, and
    django-faust's autodiscovery of ``agents.py``: the imports);
``start + join``
    the worker command to the group's assignment (app and producer start,
    topic declaration, consumer group join);
``recovery + fetch``
    assignment to the agent's first event (the table's changelog is empty:
    ``recovery.py`` measures replays).

The raw loop has ``python``+imports, ``join`` and ``fetch``. The target:
django-faust within 0.5 s of the raw loop plus the group join.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import kafka_io  # noqa: E402
from common import PARTITIONS, SESSION_TIMEOUT_MS  # noqa: E402

from django_faust.testing.broker import TestBroker, die_with_parent  # noqa: E402

LOGS = HERE / ".logs"
#: Seconds a start may take before it is reported as failed.
TIMEOUT = 60

MANAGE = """
import time
STARTED = time.time()
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
os.environ["BENCH_T_MAIN"] = repr(STARTED)
from django.core.management import execute_from_command_line
execute_from_command_line(sys.argv)
"""

SETTINGS = """
import os
SECRET_KEY = "bench"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["django_faust", "benchapp.apps.BenchConfig"]
DATABASES = {{}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
FAUST = {{
    "APP_ID": os.environ["BENCH_APP_ID"],
    "BROKER": "kafka://" + os.environ["BENCH_BOOTSTRAP"],
    "TOPIC_PARTITIONS": {partitions},
    "WEB_ENABLED": False,
    "CONSUMER_AUTO_OFFSET_RESET": "earliest",
    "BROKER_SESSION_TIMEOUT": {session},
    "BROKER_HEARTBEAT_INTERVAL": {heartbeat},
}}
"""

APPS = """
import os, time
from django.apps import AppConfig

class BenchConfig(AppConfig):
    name = "benchapp"

    def ready(self):
        os.environ["BENCH_T_READY"] = repr(time.time())
"""

AGENTS = """
import json, os, signal, time
from django_faust import app

source = app.topic(os.environ["BENCH_TOPIC"], value_type=None)
counts = app.Table("counts", default=int)
marks = {}


async def assigned(sender, *args, signal=None, **kwargs):
    marks.setdefault("assigned", time.time())

app.on_partitions_assigned.connect(assigned)


@app.agent(source)
async def count(stream):
    async for value in stream:
        if "first" not in marks:
            marks["first"] = time.time()
            marks["main"] = float(os.environ["BENCH_T_MAIN"])
            marks["ready"] = float(os.environ["BENCH_T_READY"])
            with open(os.environ["BENCH_OUT"], "w") as out:
                json.dump(marks, out)
            os.kill(os.getpid(), signal.SIGTERM)
        counts[value["key"]] += 1
"""

RAW = """
import time
STARTED = time.time()
import asyncio, json, os, sys
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
IMPORTED = time.time()
marks = {"main": STARTED, "ready": IMPORTED}

class Listener(ConsumerRebalanceListener):
    def on_partitions_revoked(self, revoked):
        pass

    def on_partitions_assigned(self, assigned):
        marks.setdefault("assigned", time.time())

async def main():
    consumer = AIOKafkaConsumer(
        bootstrap_servers=os.environ["BENCH_BOOTSTRAP"],
        group_id=os.environ["BENCH_APP_ID"],
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=%(session_ms)d,
        heartbeat_interval_ms=%(heartbeat_ms)d,
    )
    consumer.subscribe([os.environ["BENCH_TOPIC"]], listener=Listener())
    await consumer.start()
    try:
        while "first" not in marks:
            if await consumer.getmany(timeout_ms=1000, max_records=1):
                marks["first"] = time.time()
    finally:
        await consumer.stop()
    with open(os.environ["BENCH_OUT"], "w") as out:
        json.dump(marks, out)

asyncio.run(main())
"""

STEPS = ("python", "django setup", "start + join", "recovery + fetch", "total")


def write_project(root: Path) -> None:
    """The Django project and the raw script, in ``root``."""
    session = SESSION_TIMEOUT_MS / 1000
    files = {
        "manage.py": MANAGE,
        "settings.py": SETTINGS.format(
            partitions=PARTITIONS, session=session, heartbeat=session / 3
        ),
        "benchapp/__init__.py": "",
        "benchapp/apps.py": APPS,
        "benchapp/agents.py": AGENTS,
        "raw_first_event.py": RAW
        % {"session_ms": SESSION_TIMEOUT_MS, "heartbeat_ms": SESSION_TIMEOUT_MS // 3},
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())


def start_once(root: Path, bootstrap: str, kind: str) -> dict[str, float]:
    """Run one start; the seconds of each step (see the module doc)."""
    run_id = uuid.uuid4().hex[:6]
    topic = f"bench-startup-{run_id}"
    asyncio.run(kafka_io.create_topics(bootstrap, topic))
    asyncio.run(kafka_io.produce_input(bootstrap, topic, 1000))
    out = root / f"marks-{run_id}.json"
    env = dict(
        os.environ,
        BENCH_BOOTSTRAP=bootstrap,
        BENCH_APP_ID=f"bench-startup-{run_id}",
        BENCH_TOPIC=topic,
        BENCH_OUT=str(out),
        PYTHONPATH=str(root),
    )
    if kind == "raw":
        command = [sys.executable, "raw_first_event.py"]
    else:
        command = [
            sys.executable,
            "manage.py",
            "faust",
            "worker",
            "--without-web",
            "-l",
            "info",
        ]
    try:
        spawned = time.time()
        done = subprocess.run(
            command,
            cwd=root,
            env=env,
            capture_output=True,
            timeout=TIMEOUT,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )
        LOGS.mkdir(exist_ok=True)
        (LOGS / f"startup-{kind}.log").write_bytes(done.stdout + done.stderr)
        marks = json.loads(out.read_text())
    finally:
        asyncio.run(
            kafka_io.delete_topics(
                bootstrap, topic, f"bench-startup-{run_id}-counts-changelog"
            )
        )
    return {
        "python": marks["main"] - spawned,
        "django setup": marks["ready"] - marks["main"],
        "start + join": marks["assigned"] - marks["ready"],
        "recovery + fetch": marks["first"] - marks["assigned"],
        "total": marks["first"] - spawned,
    }


def main(argv: list[str] | None = None) -> int:
    """Start each kind ``--repeat`` times, print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    results: dict[str, list[dict[str, float]]] = {"raw": [], "worker": []}
    with (
        tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp,
        TestBroker() as broker,
    ):
        root = Path(tmp)
        write_project(root)
        for _ in range(args.repeat):
            for kind in results:
                steps = start_once(root, broker.bootstrap, kind)
                results[kind].append(steps)
                print(f"  [{kind}] {steps['total']:.2f} s", flush=True)
    labels = {"raw": "raw aiokafka", "worker": "manage.py faust worker"}
    print(f"\nseconds to the first event, median of {args.repeat} starts")
    print(f"{'':<24}" + "".join(f"{s:>18}" for s in STEPS))
    for kind, runs in results.items():
        cells = [statistics.median(r[s] for r in runs) for s in STEPS]
        print(f"{labels[kind]:<24}" + "".join(f"{c:>18.2f}" for c in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
