"""Live table updates over WebSockets: arrive, coalesce, never slow the agent."""

from __future__ import annotations

import asyncio

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.urls import path

from django_faust import admin_data
from django_faust.admin_data import LocalAdminData
from django_faust.consumers import TableUpdatesConsumer, websocket_urlpatterns
from django_faust.testing import make_app, running
from tests.helpers import wait_for

# Channels closes stale database connections around each consumer event.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shop(monkeypatch):
    app = make_app("live", topic_partitions=2)
    orders = app.topic("orders", key_type=str, value_type=int)
    counts = app.Table("counts", default=int)

    @app.agent(orders)
    async def count(stream):
        async for account, amount in stream.items():
            counts[account] += amount

    monkeypatch.setattr(admin_data, "admin_data_factory", lambda _: LocalAdminData(app))
    return app, orders, counts


def router(consumer=TableUpdatesConsumer, user=None, **options):
    inner = URLRouter(
        [path("ws/faust/tables/<str:name>/", consumer.as_asgi(**options))]
    )

    async def application(scope, receive, send):
        if user is not None:
            scope = {**scope, "user": user}
        return await inner(scope, receive, send)

    return application


class Staff:
    is_active = is_staff = True

    def __init__(self, perms=()):
        self.perms = set(perms)

    def has_perm(self, perm):
        return perm in self.perms


async def test_changes_arrive_as_the_agent_writes(shop):
    app, orders, counts = shop
    async with running(app):
        ws = WebsocketCommunicator(router(permission=None), "/ws/faust/tables/counts/")
        connected, _ = await ws.connect()
        assert connected
        await orders.send(key="alice", value=3)
        message = await ws.receive_json_from(timeout=3)
        assert message["table"] == "counts"
        assert message["changes"] == [
            {
                "id": '"alice"',
                "key": "alice",
                "window": None,
                "value": 3,
                "deleted": False,
            }
        ]
        await ws.disconnect()
        await wait_for(lambda: not counts._listeners)


async def test_changes_are_coalesced_to_the_rate_per_client(shop):
    app, orders, counts = shop
    async with running(app):
        ws = WebsocketCommunicator(
            router(permission=None, rate=2), "/ws/faust/tables/counts/"
        )
        assert (await ws.connect())[0]
        for _ in range(200):
            await orders.send(key="alice", value=1)
        await wait_for(lambda: counts["alice"] == 200)
        messages = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.6
        while loop.time() < deadline:
            try:
                messages.append(await ws.receive_json_from(timeout=0.2))
            except TimeoutError:
                pass
            if messages and messages[-1]["changes"][-1]["value"] == 200:
                break
        # Two a second at most: 200 writes came in a handful of messages,
        # each key once per message, and the last one holds the last value.
        assert 1 <= len(messages) <= 4
        for message in messages:
            assert [c["key"] for c in message["changes"]] == ["alice"]
        assert messages[-1]["changes"][0]["value"] == 200
        await ws.disconnect()


async def test_one_key_can_be_watched(shop):
    app, orders, _ = shop
    async with running(app):
        ws = WebsocketCommunicator(
            router(permission=None), "/ws/faust/tables/counts/?key=bob"
        )
        assert (await ws.connect())[0]
        await orders.send(key="alice", value=1)
        await orders.send(key="bob", value=5)
        message = await ws.receive_json_from(timeout=3)
        assert [(c["key"], c["value"]) for c in message["changes"]] == [("bob", 5)]
        await ws.disconnect()


class Stalled(TableUpdatesConsumer):
    """A client whose connection never drains: every send hangs."""

    async def send(self, text_data=None, bytes_data=None, close=False):
        await asyncio.Event().wait()


async def test_a_stalled_client_is_dropped_and_the_agent_goes_on(shop):
    app, orders, counts = shop
    async with running(app):
        ws = WebsocketCommunicator(
            router(Stalled, permission=None, max_pending=50, rate=100),
            "/ws/faust/tables/counts/",
        )
        assert (await ws.connect())[0]
        for i in range(500):
            await orders.send(key=f"user-{i}", value=1)
        # Every event is processed, however stuck the client is.
        await wait_for(lambda: len(counts) == 500)
        assert counts._listeners == []
        output = await ws.receive_output(timeout=3)
        assert output == {"type": "websocket.close", "code": 4008}


async def test_a_send_that_takes_too_long_drops_the_client(shop):
    app, orders, counts = shop
    async with running(app):
        ws = WebsocketCommunicator(
            router(Stalled, permission=None, send_timeout=0.2),
            "/ws/faust/tables/counts/",
        )
        assert (await ws.connect())[0]
        await orders.send(key="alice", value=1)
        output = await ws.receive_output(timeout=3)
        assert output == {"type": "websocket.close", "code": 4008}
        assert counts._listeners == []


async def test_only_permitted_staff_may_watch_by_default(shop):
    _ = shop
    cases = [
        (None, False),
        (Staff(), False),
        (Staff({"django_faust.view_table"}), True),
    ]
    for user, allowed in cases:
        ws = WebsocketCommunicator(router(user=user), "/ws/faust/tables/counts/")
        connected, code = await ws.connect()
        assert connected is allowed, user
        if not allowed:
            assert code == 4403
        else:
            await ws.disconnect()


async def test_public_tables_need_no_permission(shop):
    ws = WebsocketCommunicator(
        router(public=["counts"], user=Staff()), "/ws/faust/tables/counts/"
    )
    assert (await ws.connect())[0]
    await ws.disconnect()
    with pytest.raises(TypeError, match="'publik'"):
        TableUpdatesConsumer(publik=["counts"])


async def test_unknown_and_unlisted_tables_are_refused(shop):
    ws = WebsocketCommunicator(router(permission=None), "/ws/faust/tables/nope/")
    assert await ws.connect() == (False, 4404)
    ws = WebsocketCommunicator(
        router(permission=None, tables=["other"]), "/ws/faust/tables/counts/"
    )
    assert await ws.connect() == (False, 4403)


def test_the_route_is_the_documented_one():
    assert str(websocket_urlpatterns[0].pattern) == "ws/faust/tables/<str:name>/"
