"""The HTTP client workers forward with: keep-alive, bodies, no answer."""

from __future__ import annotations

from typing import Any

import pytest

from django_faust import App
from django_faust.testing.broker import free_port
from django_faust.web.http import HTTPClient, WorkerUnreachable
from django_faust.web.server import WebServer


async def echo(scope: Any, receive: Any, send: Any) -> None:
    """An ASGI app answering with the method, path, query and body."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    text = f"{scope['method']} {scope['path']}?{scope['query_string'].decode()} "
    await send(
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [(b"content-type", b"text/plain"), (b"x-seen", b"yes")],
        }
    )
    await send({"type": "http.response.body", "body": text.encode() + body})


@pytest.fixture
async def server() -> Any:
    web = WebServer(
        App("http-tests", broker="memory://"),
        port=free_port(),
        bind="127.0.0.1",
        application=echo,
    )
    await web.start()
    try:
        yield web
    finally:
        await web.stop()


async def test_requests_reuse_one_kept_alive_connection(server: WebServer) -> None:
    client = HTTPClient()
    try:
        first = await client.request("GET", f"{server.url}a/?x=1")
        second = await client.request(
            "POST", f"{server.url}b/", body=b"payload", headers={"X-Any": "1"}
        )
        assert (first.status, first.body) == (201, b"GET /a/?x=1 ")
        assert second.body == b"POST /b/? payload"
        assert second.header("X-Seen") == "yes"
        assert [len(idle) for idle in client._idle.values()] == [1]
    finally:
        client.close()


async def test_a_worker_that_does_not_answer_is_unreachable() -> None:
    client = HTTPClient(timeout=2)
    with pytest.raises(WorkerUnreachable, match="no answer"):
        await client.request("GET", f"http://127.0.0.1:{free_port()}/")


async def test_a_closed_connection_is_not_reused(server: WebServer) -> None:
    client = HTTPClient()
    try:
        await client.request("GET", f"{server.url}one/")
        for idle in client._idle.values():
            for connection in idle:
                connection.writer.close()
        again = await client.request("GET", f"{server.url}two/")
        assert again.body == b"GET /two/? "
    finally:
        client.close()
