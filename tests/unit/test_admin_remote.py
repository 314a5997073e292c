"""A web process without a worker: the admin asks the workers, signed."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.urls import path

from django_faust import admin_data
from django_faust.admin_data import LocalAdminData, RemoteAdminData
from django_faust.testing import make_app, running
from django_faust.web.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def worker(app_id: str):
    app = make_app(app_id, topic_partitions=2)
    topic = app.topic("clicks", key_type=str, value_type=int)
    counts = app.Table("counts", default=int)

    @app.agent(topic)
    async def count(stream):
        async for key, _ in stream.items():
            counts[key] += 1

    return app, topic, counts


async def test_pages_and_tables_of_two_workers_are_merged(monkeypatch):
    one, one_topic, one_counts = worker("w1")
    two, two_topic, two_counts = worker("w2")
    apps = {"http://one": one, "http://two": two}
    asked = {}

    def fetch(url, headers):
        # The worker's side: its admin answers from its own tables.
        base, path = url[: url.index("/", 8)], url[url.index("/", 8) :]
        asked["app"] = apps[base]
        response = Client().get(path, headers=headers)
        return response.status_code, response.content

    monkeypatch.setattr(
        admin_data, "admin_data_factory", lambda _: LocalAdminData(asked["app"])
    )
    remote = RemoteAdminData(one, lambda: list(apps), fetch=fetch)
    async with running(one), running(two):
        for key in ["b", "d", "f"]:
            await one_topic.send(key=key, value=1)
        for key in ["a", "c", "e", "g"]:
            await two_topic.send(key=key, value=1)
        await two_topic.send(key="c", value=1)
        await wait_for(lambda: len(one_counts) == 3 and two_counts["c"] == 2)

        first = await sync_to_async(remote.page)("counts", limit=4)
        assert [e.key for e in first.entries] == ["a", "b", "c", "d"]
        assert first.entries[2].value == 2
        rest = await sync_to_async(remote.page)(
            "counts", cursor=first.next_cursor, limit=4
        )
        assert [e.key for e in rest.entries] == ["e", "f", "g"]
        assert rest.next_cursor is None
        exact = await sync_to_async(remote.page)("counts", search="c", exact=True)
        assert [(e.key, e.value) for e in exact.entries] == [("c", 2)]

        [info] = [t for t in await sync_to_async(remote.tables)() if t.name == "counts"]
        assert info.keys == 7
        assert len(info.partitions) == 1  # both report the same default URL here
        workers = await sync_to_async(remote.workers)()
        assert {w.name for w in workers} == {"w1", "w2"}


def test_unsigned_or_stale_questions_are_refused(client):
    url = "/admin/django_faust/streamtable/_data/tables/"
    assert client.get(url).status_code == 403
    stale = "1000.0"
    headers = {
        TIMESTAMP_HEADER: stale,
        SIGNATURE_HEADER: sign(url, stale),
    }
    assert client.get(url, headers=headers).status_code == 403
    fresh = repr(__import__("time").time())
    forged = {TIMESTAMP_HEADER: fresh, SIGNATURE_HEADER: "0" * 64}
    assert client.get(url, headers=forged).status_code == 403
    good = {TIMESTAMP_HEADER: fresh, SIGNATURE_HEADER: sign(url, fresh)}
    assert client.get(url, headers=good).status_code == 200


def test_live_updates_are_not_relayed_by_a_web_process():
    app, _, _ = worker("w3")
    remote = RemoteAdminData(app, lambda: [])
    with pytest.raises(LookupError, match="worker that holds it"):
        remote.subscribe("counts", lambda *args: None)


async def test_a_web_process_relays_live_updates_from_the_workers(monkeypatch):
    import socket

    from channels.routing import URLRouter
    from channels.testing import WebsocketCommunicator

    from django_faust.consumers import TableUpdatesConsumer, websocket_urlpatterns
    from django_faust.web.server import WebServer

    app, topic, _ = worker("w4")
    monkeypatch.setattr(admin_data, "admin_data_factory", lambda _: LocalAdminData(app))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # The worker serves the consumer; it only takes signed relays (or staff).
    server = WebServer(
        app, port=port, bind="127.0.0.1", application=URLRouter(websocket_urlpatterns)
    )

    class WebProcess(TableUpdatesConsumer):
        def admin_data(self):
            return RemoteAdminData(app, lambda: [f"http://127.0.0.1:{port}/"])

    web = URLRouter(
        [path("ws/faust/tables/<str:name>/", WebProcess.as_asgi(permission=None))]
    )
    async with running(app):
        await server.start()
        try:
            browser = WebsocketCommunicator(web, "/ws/faust/tables/counts/")
            assert (await browser.connect())[0]
            await topic.send(key="zed", value=1)
            message = await browser.receive_json_from(timeout=5)
            assert [(c["key"], c["value"]) for c in message["changes"]] == [("zed", 1)]
            await browser.disconnect()
        finally:
            await server.stop()


async def test_the_admin_reads_locally_where_the_worker_runs_else_asks_the_router():
    from django_faust.admin_data import default_admin_data

    # memory://: one process holds everything.
    memory_app, _, _ = worker("w5")
    assert isinstance(default_admin_data(memory_app), LocalAdminData)

    # Kafka: a web process (no worker started) asks the workers...
    kafka_app = make_app("w6", broker="kafka://127.0.0.1:1")
    remote = default_admin_data(kafka_app)
    assert isinstance(remote, RemoteAdminData)
    assert remote.admin_prefix == "/admin/"
    # ...and the worker itself, once started, answers from its own tables.
    kafka_app.running_loop = __import__("asyncio").get_running_loop()
    assert isinstance(default_admin_data(kafka_app), LocalAdminData)
    kafka_app.client_only = True  # a client start (sending) is no worker
    assert isinstance(default_admin_data(kafka_app), RemoteAdminData)
