"""A second test broker, noida-db, for what Tansu cannot do.

Tansu (`TestBroker`) has no transactions and never compacts a topic.
noida-db (the ``noida-db`` wheel, a Rust binary at ``noida_db/noida-db``)
speaks the Kafka protocol with both, so the tests of log compaction (and of
transactions) run against it. `NoidaBroker` starts the binary itself (the
``noida-db`` console script is a wrapper that would leave the broker running
when killed) on a free loopback port with a temporary data directory, waits
until it answers a metadata request, and always stops it again.

Use it like `TestBroker`::

    with NoidaBroker() as broker:
        app = make_app(broker=broker.url)

or through the session-scoped ``noida_broker`` pytest fixture.

It prints a harmless ``weak version `GLIBC_2.39' not found`` line at start.
Where it and Kafka's documented behaviour differ, tests follow Kafka.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest

from .broker import (
    START_TIMEOUT,
    BrokerNotAvailable,
    TestBroker,
    die_with_parent,
    metadata_request_ok,
)

__all__ = ["NoidaBroker", "find_noida_binary", "noida_broker"]


def find_noida_binary() -> str:
    """Path of the ``noida-db`` executable inside the noida-db package."""
    try:
        import noida_db
    except ImportError as exc:
        raise BrokerNotAvailable(
            "The transactions and compaction tests need the noida-db package "
            "(pip install noida-db==0.2.3, part of django-faust[test])."
        ) from exc
    binary = os.path.join(os.path.dirname(noida_db.__file__), "noida-db")
    if not os.access(binary, os.X_OK):
        raise BrokerNotAvailable(f"No noida-db binary at {binary}.")
    return binary


class NoidaBroker(TestBroker):
    """A noida-db broker on a free loopback port, with a temporary data dir.

    Unlike Tansu it supports transactions and compacts topics (with fast
    topic settings: see docs/tables.rst); its data directory is deleted
    when it stops.
    """

    __test__ = False

    def __init__(self, binary: str | None = None, *, attempts: int = 3) -> None:
        super().__init__(binary or find_noida_binary(), attempts=attempts)
        self.data_dir: str | None = None

    def __repr__(self) -> str:
        state = self.bootstrap if self.port is not None else "stopped"
        return f"<NoidaBroker {state}>"

    def _start_once(self, binary: str, port: int) -> bool:
        self.data_dir = tempfile.mkdtemp(prefix="noida-")
        self._log = tempfile.TemporaryFile(prefix="noida-")  # noqa: SIM115
        self.port = port
        self.process = subprocess.Popen(
            [
                binary,
                "start",
                "--only",
                "kafka",
                "--host",
                self.host,
                "--kafka-port",
                str(port),
                "--data-dir",
                self.data_dir,
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if metadata_request_ok(self.host, port, timeout=0.5):
                return True
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            data_dir, self.data_dir = self.data_dir, None
            if data_dir is not None:
                shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def noida_broker() -> Iterator[NoidaBroker]:
    """A noida-db broker for the whole test session (see `NoidaBroker`)."""
    broker = NoidaBroker()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
