"""Worker processes of ``worker_app/`` on the test broker, for the broker tests.

`Project` is one test's app id, topics and worker processes; the agents of
``worker_app/`` append one line per processed event to files in a temporary
directory, which `Project.lines` reads back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from django_faust.testing.broker import TestBroker

PROJECT = Path(__file__).resolve().parent / "worker_app"
PARTITIONS = 4
WORKER_COMMAND = [
    sys.executable,
    "manage.py",
    "faust",
    "worker",
    "--without-web",
    "-l",
    "info",
]
#: Seconds a worker gets to stop after SIGTERM before it is killed.
STOP_TIMEOUT = 8.0
#: The line the TableManager logs after each recovery.
RECOVERED = re.compile(
    r"Recovered (\d+) table partition\(s\): (\d+) changelog records in"
)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Project:
    """One test's worker project: its app id, topics and worker processes."""

    #: The directory of the project's ``manage.py`` (a subclass may run another).
    directory: Path = PROJECT

    def __init__(
        self,
        broker: TestBroker,
        outdir: Path,
        prefix: str,
        partitions: int = PARTITIONS,
    ) -> None:
        self.broker = broker
        #: Partitions of every topic (TOPIC_PARTITIONS of the workers too).
        self.partitions = partitions
        #: What workers bootstrap to (the broker, or a proxy in front of it).
        self.broker_url = broker.url
        self.outdir = outdir
        self.app_id = unique(prefix)
        self.suffix = f"-{uuid.uuid4().hex[:8]}"
        self.events = f"events{self.suffix}"
        self.clicks = f"clicks{self.suffix}"
        self.words = f"words{self.suffix}"
        self.asks = f"asks{self.suffix}"
        self.tallies = f"tallies{self.suffix}"
        self.orders = f"orders{self.suffix}"
        self.notes = f"notes{self.suffix}"
        self.order_rows = f"order-rows{self.suffix}"
        self.careful = f"careful{self.suffix}"
        self.relay = f"relay{self.suffix}"
        #: The sink of the ``relayed`` agent (written, not read, by workers).
        self.sunk = f"sunk{self.suffix}"
        self.dead_letters = f"{self.app_id}-dead-letters"
        # The topic `group_by(Click.user)` forwards to (see Stream.group_by).
        self.repartition = f"{self.app_id}-{self.clicks}-user-repartition"
        # The changelog of the ``counts`` table (see Table.changelog_topic).
        self.changelog = f"{self.app_id}-counts-changelog"
        self.orders_changelog = f"{self.app_id}-order-counts-changelog"
        self.processes: list[subprocess.Popen[bytes]] = []
        self._outputs: dict[int, Path] = {}
        #: Workers stopped on purpose with `stop`.
        self._stopped: set[int] = set()

    @property
    def topics(self) -> list[str]:
        return [
            self.events,
            self.clicks,
            self.repartition,
            self.words,
            self.asks,
            self.tallies,
            self.changelog,
            self.orders,
            self.orders_changelog,
            self.notes,
            self.order_rows,
            self.careful,
            self.relay,
        ]

    def all_partitions(self) -> set[str]:
        return {f"{t}:{p}" for t in self.topics for p in range(self.partitions)}

    # -- processes -------------------------------------------------------------

    def environment(self, **extra: str) -> dict[str, str]:
        """The environment of a ``manage.py`` process of this project."""
        environ = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        environ.update(
            DJANGO_SETTINGS_MODULE="settings",
            PYTHONUNBUFFERED="1",
            WORKER_BROKER_URL=self.broker_url,
            WORKER_APP_ID=self.app_id,
            WORKER_OUTDIR=str(self.outdir),
            WORKER_TOPIC_SUFFIX=self.suffix,
            WORKER_PARTITIONS=str(self.partitions),
        )
        environ.update(extra)
        return environ

    def start_worker(
        self,
        *,
        delay: float = 0.0,
        env: dict[str, str] | None = None,
        web_port: int | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a worker; ``env`` adds to its environment (``WORKER_STORE``...).

        With ``web_port`` it serves the project (and django-faust's views
        under ``/faust/``) on 127.0.0.1 at that port.
        """
        extra = dict(env or {})
        command = list(WORKER_COMMAND)
        if web_port is not None:
            extra["WORKER_WEB_PORT"] = str(web_port)
            command.remove("--without-web")
        return self._spawn(command, WORKER_EVENT_DELAY=str(delay), **extra)

    def start_web(self, port: int) -> subprocess.Popen[bytes]:
        """A web process with no worker in it: uvicorn serving the project."""
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--lifespan",
            "off",
        ]
        return self._spawn(command, WORKER_WEB_PORT=str(port))

    def _spawn(self, command: list[str], **env: str) -> subprocess.Popen[bytes]:
        environ = self.environment(**env)
        output = self.outdir / f"worker-{len(self.processes)}.out"
        with output.open("wb") as out:
            process = subprocess.Popen(
                command,
                cwd=self.directory,
                env=environ,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        self._outputs[process.pid] = output
        return process

    def faust(
        self, *args: str, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run ``manage.py faust ARGS`` (not a worker) and wait for it."""
        return subprocess.run(
            [sys.executable, "manage.py", "faust", *args],
            cwd=self.directory,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def manage(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        """Run ``manage.py ARGS`` (``migrate``, ``send_events``...); its output
        (stdout, then stderr).

        Fails the test when the command fails, unless ``check`` is false.
        """
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=self.directory,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"manage.py {' '.join(args)} exited with {done.returncode}:\n"
                f"{done.stdout}\n{done.stderr}"
            )
        return done.stdout + done.stderr

    def output(self, process: subprocess.Popen[bytes], tail: int = 3000) -> str:
        text = self._outputs[process.pid].read_text(errors="replace")
        return text[-tail:] if tail else text

    def recoveries(self, process: subprocess.Popen[bytes]) -> list[tuple[int, int]]:
        """``(partitions, changelog records)`` of each recovery it logged."""
        return [
            (int(parts), int(records))
            for parts, records in RECOVERED.findall(self.output(process, tail=0))
        ]

    def check_alive(self) -> None:
        for process in self.processes:
            code = process.poll()
            if process.pid in self._stopped:
                continue
            if code is not None and code != -signal.SIGKILL:
                raise AssertionError(
                    f"worker {process.pid} exited with {code}:\n{self.output(process)}"
                )

    def stop(self, process: subprocess.Popen[bytes]) -> int:
        """SIGTERM one worker and wait for it to exit; its exit code."""
        self._stopped.add(process.pid)
        process.terminate()
        try:
            return process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(
                f"worker {process.pid} did not stop within {STOP_TIMEOUT}s:\n"
                f"{self.output(process)}"
            ) from None

    def stop_all(self) -> None:
        """SIGTERM every worker still running, then SIGKILL the stragglers."""
        running = [p for p in self.processes if p.poll() is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
        self.kill_all()

    def kill_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            process.wait()

    # -- what the agents wrote -----------------------------------------------

    def lines(self, kind: str, pid: int) -> list[list[str]]:
        path = self.outdir / f"{kind}-{pid}.log"
        try:
            text = path.read_text()
        except FileNotFoundError:
            return []
        # A line is complete once its newline is there.
        return [line.split() for line in text.split("\n")[:-1]]

    def last_assignment(self, pid: int) -> set[str] | None:
        lines = self.lines("assigned", pid)
        return set(lines[-1]) if lines else None

    async def wait_split(self, *workers: subprocess.Popen[bytes]) -> None:
        """Wait until ``workers`` hold every partition between them, none twice."""
        everything = self.all_partitions()

        def split() -> bool:
            parts = [self.last_assignment(w.pid) for w in workers]
            if not all(parts):
                return False
            held = [p for p in parts if p is not None]
            return (
                sum(map(len, held)) == len(everything)
                and set().union(*held) == everything
            )

        await wait_for(
            split,
            timeout=40,
            what=f"{len(workers)} workers to share the partitions",
            project=self,
        )

    # -- broker ----------------------------------------------------------------

    async def declare_topics(self) -> None:
        """Create every topic the workers read before they start.

        Topics appearing while a worker is subscribed would change the
        group's metadata and cause another rebalance.
        """
        admin = AIOKafkaAdminClient(bootstrap_servers=self.broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [
                    NewTopic(
                        name,
                        self.partitions,
                        1,
                        topic_configs=(
                            {"cleanup.policy": "compact"}
                            if name in (self.changelog, self.orders_changelog)
                            else {}
                        ),
                    )
                    for name in [*self.topics, self.sunk]
                ]
            )
        finally:
            await admin.close()

    async def produce(self, topic: str, records: Iterable[tuple[int, Any]]) -> None:
        """Send JSON values to explicit partitions, without keys."""
        await self.produce_keyed(
            topic, ((partition, None, value) for partition, value in records)
        )

    async def produce_keyed(
        self, topic: str, records: Iterable[tuple[int, str | None, Any]]
    ) -> None:
        """Send ``(partition, key, value)``: JSON values, keys as UTF-8 text."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self.broker.bootstrap, linger_ms=5
        )
        await producer.start()
        try:
            futures = [
                await producer.send(
                    topic,
                    json.dumps(value).encode(),
                    key=None if key is None else key.encode(),
                    partition=partition,
                )
                for partition, key, value in records
            ]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    async def read_topic(self, topic: str, timeout: float = 30) -> list[Any]:
        """Every record of ``topic`` (all partitions), as aiokafka gives them."""
        client = AIOKafkaConsumer(
            bootstrap_servers=self.broker.bootstrap, enable_auto_commit=False
        )
        await client.start()
        try:
            tps = [
                TopicPartition(topic, p)
                for p in sorted(
                    client.partitions_for_topic(topic) or range(self.partitions)
                )
            ]
            client.assign(tps)
            await client.seek_to_beginning(*tps)
            records: list[Any] = []
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                batch = await client.getmany(timeout_ms=300)
                for messages in batch.values():
                    records.extend(messages)
                # The high watermark of the fetch answers (see broker.md).
                ends = [client.highwater(tp) for tp in tps]
                positions = [await client.position(tp) for tp in tps]
                if all(
                    e is not None and p >= e
                    for e, p in zip(ends, positions, strict=True)
                ):
                    return records
            raise AssertionError(f"could not read {topic} to its end in {timeout}s")
        finally:
            await client.stop()

    async def committed(self, topic: str) -> dict[int, int | None]:
        """The group's committed offsets, as another client sees them."""
        client = AIOKafkaConsumer(
            bootstrap_servers=self.broker.bootstrap,
            group_id=self.app_id,
            enable_auto_commit=False,
        )
        await client.start()
        try:
            return {
                p: await client.committed(TopicPartition(topic, p))
                for p in range(self.partitions)
            }
        finally:
            await client.stop()


async def wait_for(
    predicate: Callable[[], Any],
    timeout: float,
    what: str,
    project: Project,
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        project.check_alive()
        if time.monotonic() > deadline:
            outputs = "\n".join(
                f"--- worker {p.pid} ---\n{project.output(p)}"
                for p in project.processes
            )
            raise AssertionError(
                f"Timed out after {timeout}s waiting for {what}\n{outputs}"
            )
        await asyncio.sleep(0.05)
