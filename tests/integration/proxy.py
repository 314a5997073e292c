"""A loopback TCP proxy that can cut every connection: a broker outage on demand.

Between a worker and the test broker: the broker advertises the proxy's
port in its metadata (``TestBroker(advertised_port=proxy.port)``), so every
connection a client makes, bootstrap and per-broker alike, goes through
here. `cut` closes every open connection and refuses new ones (accepted and
closed at once, as a broker's host that lost its network would look to a
client) until `restore`.
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["CuttableProxy"]

HOST = "127.0.0.1"


class CuttableProxy:
    """Forwards ``127.0.0.1:port`` to ``127.0.0.1:target_port``, cuttable."""

    def __init__(self, target_port: int | None = None) -> None:
        self.target_port = target_port
        self.port: int | None = None
        self.cut_active = False
        #: Connections accepted, and refused while cut (for the test's report).
        self.accepted = 0
        self.refused = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()

    async def start(self) -> CuttableProxy:
        self._server = await asyncio.start_server(self._serve, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self._drop_all()
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    def cut(self) -> None:
        """Drop every connection and refuse new ones until `restore`."""
        self.cut_active = True
        self._drop_all()

    def restore(self) -> None:
        self.cut_active = False

    async def cut_for(self, seconds: float) -> None:
        self.cut()
        try:
            await asyncio.sleep(seconds)
        finally:
            self.restore()

    def _drop_all(self) -> None:
        for writer in list(self._pipes):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._pipes.clear()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if self.cut_active or self.target_port is None:
            self.refused += 1
            writer.transport.abort()
            return
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._pipes.update((writer, up_writer))
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self._pipes.discard(w)
                w.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError, asyncio.IncompleteReadError):
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    writer.transport.abort()
