"""Agent RPC: ask/cast/map/join on the memory transport."""

from __future__ import annotations

import asyncio

import pytest

from django_faust import Record
from django_faust.testing import make_app, running
from tests.helpers import wait_for


class Quote(Record):
    symbol: str
    price: int


async def test_ask_returns_what_the_agent_yields(faust_app):
    @faust_app.agent()
    async def double(stream):
        async for value in stream:
            yield value * 2

    async with running(faust_app):
        assert await double.ask(21) == 42
        assert await double.join([1, 2, 3]) == [2, 4, 6]
        assert [r async for r in double.map([5, 6])] == [10, 12]
        assert await double.kvjoin({"a": 1, "b": 2}) == {"a": 2, "b": 4}


async def test_replies_can_be_records(faust_app):
    @faust_app.agent()
    async def quote(stream):
        async for symbol in stream:
            yield Quote(symbol=symbol, price=len(symbol))

    async with running(faust_app):
        reply = await quote.ask("ACME")
    assert reply == Quote(symbol="ACME", price=4)


async def test_ask_times_out_when_the_agent_does_not_yield(faust_app):
    @faust_app.agent()
    async def silent(stream):
        async for _ in stream:
            pass

    async with running(faust_app):
        with pytest.raises(asyncio.TimeoutError):
            await silent.ask(1, timeout=0.2)


async def test_cast_sends_without_a_reply(faust_app):
    got = []

    @faust_app.agent()
    async def inbox(stream):
        async for value in stream:
            got.append(value)
            yield "ignored"

    async with running(faust_app):
        assert await inbox.cast("hi") is None
        await wait_for(lambda: got == ["hi"])
        # Without reply headers, nothing goes to any reply topic.
        topics = faust_app.transport.broker.logs
        assert not any("-reply-" in name for name in topics)


async def test_a_client_only_app_asks_a_worker():
    worker = make_app("rpc")
    client = make_app("rpc", broker=worker.conf.broker_url)

    for app in (worker, client):

        @app.agent(name="shout")
        async def shout(stream):
            async for word in stream:
                yield word.upper()

    async with running(worker):
        await client.start_client()
        try:
            assert await client.agents["shout"].ask("hey") == "HEY"
            assert not client.agents["shout"].started  # it ran on the worker
        finally:
            await client.stop()
