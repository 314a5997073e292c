"""A small asyncio HTTP/1.1 client: how workers ask each other.

The router forwards a table route's request to the worker that owns the
key, and a web process without a worker asks the workers; both need an
HTTP client in the event loop. ``h11`` (which uvicorn already brings) does
the protocol; this module keeps a few idle keep-alive connections per
worker, since a forward per request over a fresh TCP connection would
double its latency.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11

__all__ = ["HTTPClient", "Response", "WorkerUnreachable"]

#: Idle connections kept per worker.
MAX_IDLE = 8


class WorkerUnreachable(ConnectionError):
    """The other worker did not answer (refused, reset, timed out)."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return default


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.loop = asyncio.get_running_loop()
        self.conn = h11.Connection(our_role=h11.CLIENT)

    async def request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> Response:
        conn = self.conn
        data = conn.send(h11.Request(method=method, target=target, headers=headers))
        data += conn.send(h11.Data(data=body)) if body else b""
        data += conn.send(h11.EndOfMessage())
        self.writer.write(data)
        await self.writer.drain()
        status = 0
        response_headers: list[tuple[str, str]] = []
        chunks: list[bytes] = []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                received = await self.reader.read(65536)
                conn.receive_data(received)
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                response_headers = [
                    (k.decode("latin-1").lower(), v.decode("latin-1"))
                    for k, v in event.headers
                ]
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return Response(status, response_headers, b"".join(chunks))
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionResetError("connection closed before the response")

    def reusable(self) -> bool:
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            try:
                self.conn.start_next_cycle()
            except h11.LocalProtocolError:
                return False
            return not self.writer.is_closing()
        return False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class HTTPClient:
    """Keep-alive HTTP requests to the other workers, one loop's worth.

    Connections belong to the event loop that opened them: one of another
    loop (a WSGI process runs each async view in its own) is not reused.
    """

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Iterable[tuple[str, str]] | Mapping[str, str] = (),
        body: bytes = b"",
        timeout: float | None = None,
    ) -> Response:
        """Send one request; raises `WorkerUnreachable` if nobody answers."""
        parts = urlsplit(url)
        host = parts.hostname or "127.0.0.1"
        port = parts.port or 80
        target = parts.path or "/"
        if parts.query:
            target += f"?{parts.query}"
        items = list(headers.items() if isinstance(headers, Mapping) else headers)
        sent = [("host", f"{host}:{port}"), *items]
        if body:
            sent.append(("content-length", str(len(body))))
        wait = self.timeout if timeout is None else timeout
        key = (host, port)
        # A pooled connection may have been closed by the server meanwhile:
        # then try once more on a fresh one.
        for attempt in (0, 1):
            connection = self._checkout(key) if attempt == 0 else None
            fresh = connection is None
            try:
                if connection is None:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(host, port), wait
                    )
                    connection = _Connection(reader, writer)
                response = await asyncio.wait_for(
                    connection.request(method, target, sent, body), wait
                )
            except (TimeoutError, OSError, h11.ProtocolError) as exc:
                if connection is not None:
                    connection.close()
                if fresh:
                    raise WorkerUnreachable(
                        f"{method} {url}: no answer ({exc!r})"
                    ) from exc
                continue
            self._checkin(key, connection)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _checkout(self, key: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        loop = asyncio.get_running_loop()
        while idle:
            connection = idle.pop()
            # A connection of another (perhaps finished) loop is unusable.
            if connection.loop is loop and not connection.writer.is_closing():
                return connection
        return None

    def _checkin(self, key: tuple[str, int], connection: _Connection) -> None:
        idle = self._idle.setdefault(key, [])
        if connection.reusable() and len(idle) < MAX_IDLE:
            idle.append(connection)
        else:
            connection.close()

    def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
