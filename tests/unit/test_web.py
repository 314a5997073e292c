"""Pages, table routes and the built-in views on the memory transport.

The project app of the test settings runs (memory transport: one process
owns every partition, so the router is local); requests go through
Django's async test client and ``include("django_faust.urls")``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import pytest_asyncio
from django.test import AsyncClient, override_settings
from prometheus_client.parser import text_string_to_metric_families

from django_faust import app
from django_faust.exceptions import ImproperlyConfigured
from django_faust.sensors import Sensor
from django_faust.web.pages import django_route
from django_faust.web.router import RouteUnavailable
from tests.testapp.agents import count_orders, order_counts

pytestmark = pytest.mark.urls("tests.web_urls")
module_loop = pytest.mark.asyncio(loop_scope="module")
open_views = override_settings(DEBUG=True)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def running() -> Any:
    """The project app, started once for this module (a service starts once)."""
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


def _counted() -> int:
    return sum(a.stream.events_total for a in count_orders.actors)


async def _send_orders(accounts: dict[str, int]) -> None:
    """Send orders and wait until the agent has counted them."""
    before = _counted()
    for account, n in accounts.items():
        for _ in range(n):
            await app.send("tests-orders", key=account, value=1)
    total = sum(accounts.values())
    for _ in range(200):
        if _counted() >= before + total:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the orders were not counted")


@module_loop
@open_views
async def test_ready_is_503_before_the_worker_runs() -> None:
    ready = await AsyncClient().get("/faust/health/ready/")
    assert ready.status_code == 503
    assert "no worker runs in this process" in ready.json()["reasons"]


def test_faust_paths_become_django_paths() -> None:
    assert django_route("/count/{account}/") == "count/<str:account>/"
    assert django_route("count/<int:n>/") == "count/<int:n>/"


def test_a_sync_view_is_refused_with_its_name() -> None:
    with pytest.raises(ImproperlyConfigured, match="needs an 'async def' view"):

        @app.page("sync/")
        def sync_view(request: Any) -> None: ...


def test_a_table_route_needs_one_way_to_find_the_key() -> None:
    with pytest.raises(ImproperlyConfigured, match="exactly one of match_info"):
        app.table_route(order_counts, match_info="a", query_param="b")


@module_loop
async def test_pages_answer_from_the_table(running: Any) -> None:
    # Counts from a fresh start: the table lives in memory.
    before = order_counts["acct-3"]
    await _send_orders({"acct-3": 3, "acct-7": 1})
    client = AsyncClient()
    response = await client.get("/faust/count/acct-3/")
    assert response.status_code == 200
    assert response.json() == {"account": "acct-3", "count": before + 3}
    faust = await client.get("/faust/faust-style/acct-7/")
    assert faust.json()["count"] >= 1
    query = await client.get("/faust/by-query/", {"account": "acct-3"})
    assert query.json()["count"] == before + 3
    routed_method = await client.get("/faust/accounts/acct-3/")
    assert routed_method.json() == {"account": "acct-3", "count": before + 3}
    shard = await client.get("/faust/shard/", {"account": "acct-3"})
    assert shard.json()["count"] == before + 3
    missing = await client.get("/faust/by-query/")
    assert missing.status_code == 400
    assert "'account' is required" in missing.json()["error"]


@module_loop
async def test_a_class_page_gets_and_posts(running: Any) -> None:
    client = AsyncClient()
    posted = await client.post("/faust/counter/", {"account": "acct-9"})
    assert posted.status_code == 202
    for _ in range(200):
        if order_counts["acct-9"]:
            break
        await asyncio.sleep(0.01)
    got = await client.get("/faust/counter/")
    assert got.json()["total"] >= 1
    assert (await client.put("/faust/counter/")).status_code == 405


@module_loop
async def test_the_router_is_local_on_the_memory_transport(running: Any) -> None:
    await _send_orders({"acct-5": 2})
    assert app.router.owner(order_counts, "acct-5") == app.router.url
    assert await app.router.ask(order_counts, "acct-5") == order_counts["acct-5"]
    assert await app.router.ask("order-counts", "nobody") == 0
    with pytest.raises(ImproperlyConfigured, match="No table named 'nope'"):
        await app.router.ask("nope", "x")


@module_loop
@open_views
async def test_built_in_views_answer_json_and_html(running: Any) -> None:
    await _send_orders({"acct-1": 2})
    client = AsyncClient()
    stats = (await client.get("/faust/stats/")).json()
    assert stats["worker"] is True
    assert stats["agents"]["tests.testapp.agents.count_orders"]["events"] >= 2
    assert any(k.startswith("tests-orders[") for k in stats["messages"])
    tables = (await client.get("/faust/tables/")).json()["tables"]
    mine = next(t for t in tables if t["name"] == "order-counts")
    assert mine["changelog_topic"] == "tests-order-counts-changelog"
    assert mine["recovered"] is True
    assert mine["keys"] >= 1
    agents = (await client.get("/faust/agents/")).json()["agents"]
    assert "tests.testapp.agents.count_orders" in [a["name"] for a in agents]
    assignment = (await client.get("/faust/assignment/")).json()
    assert assignment["transport"] == "memory"
    await app.consumer.commit()
    lag = (await client.get("/faust/lag/")).json()["partitions"]
    assert any(p["highwater"] for p in lag.values())
    assert all(p["lag"] == 0 for p in lag.values() if p["highwater"] is not None)
    assert (await client.get("/faust/health/live/")).status_code == 200
    ready = await client.get("/faust/health/ready/")
    assert ready.status_code == 200, ready.json()
    html = await client.get("/faust/stats/", headers={"Accept": "text/html"})
    assert html["Content-Type"].startswith("text/html")
    assert b"<table>" in html.content
    assert (await client.get("/faust/tables/?format=html")).content.startswith(
        b"<!doctype html>"
    )


@module_loop
@open_views
async def test_metrics_parse_and_count_the_events(running: Any) -> None:
    await _send_orders({"acct-2": 5})
    await app.consumer.commit()
    text = (await AsyncClient().get("/faust/metrics/")).content.decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    received = sum(
        s.value
        for s in families["faust_messages_received"].samples
        if s.name == "faust_messages_received_total"
        and s.labels["topic"] == "tests-orders"
    )
    assert received >= 5
    events = {
        s.labels["agent"]: s.value
        for s in families["faust_agent_events"].samples
        if s.name == "faust_agent_events_total"
    }
    assert events["tests.testapp.agents.count_orders"] >= 5
    assert families["faust_commit_latency_seconds"].type == "histogram"
    count = next(
        s.value
        for s in families["faust_commit_latency_seconds"].samples
        if s.name.endswith("_count")
    )
    assert count >= 1
    assert families["faust_consumer_lag"].type == "gauge"
    keys = {s.labels["table"]: s.value for s in families["faust_table_keys"].samples}
    assert keys["order-counts"] >= 1
    assert families["faust_tables_recovered"].samples[0].value == 1


@module_loop
@override_settings(DEBUG=False)
async def test_built_in_views_are_closed_in_production(running: Any) -> None:
    client = AsyncClient()
    for path in ("stats/", "tables/", "agents/", "assignment/", "lag/", "metrics/"):
        response = await client.get(f"/faust/{path}")
        assert response.status_code == 403, path
        assert "WEB_EXPOSE_STATS" in response.json()["hint"]
    assert (await client.get("/faust/health/live/")).status_code == 200


def test_no_view_shows_settings_values() -> None:
    # The views report names, counts and offsets; none reads conf values
    # other than the app id (a setting a user may hold secret never shows).
    import inspect

    from django_faust.web import views

    source = inspect.getsource(views)
    assert "conf.broker" not in source
    assert "SECRET" not in source


@module_loop
async def test_a_recovering_table_answers_503_with_retry_after(running: Any) -> None:
    client = AsyncClient()
    app.tables.recovered.clear()
    try:
        for path in ("/faust/count/acct-3/", "/faust/accounts/acct-3/"):
            routed = await client.get(path)
            assert routed.status_code == 503, path
        response = await client.get("/faust/count/acct-3/")
        assert response.status_code == 503
        assert response["Retry-After"] == "1"
        assert "recovering" in response.json()["reason"]
        with pytest.raises(RouteUnavailable):
            await app.router.ask(order_counts, "acct-3")
    finally:
        app.tables.recovered.set()
    assert (await client.get("/faust/count/acct-3/")).status_code == 200


@module_loop
async def test_a_sensor_of_ones_own_gets_the_hooks(running: Any) -> None:
    class Recorder(Sensor):
        def __init__(self) -> None:
            self.batches: list[tuple[str, int]] = []
            self.commits = 0
            self.sends: list[str] = []

        def on_batch(self, tp: Any, count: int) -> None:
            self.batches.append((tp.topic, count))

        def on_commit(self, offsets: Any, seconds: float) -> None:
            assert seconds >= 0
            self.commits += 1

        def on_send(self, topic: str, seconds: float, error: Any) -> None:
            self.sends.append(topic)

    recorder = app.sensors.add(Recorder())
    try:
        await _send_orders({"acct-8": 3})
        await app.consumer.commit()
        assert sum(n for t, n in recorder.batches if t == "tests-orders") == 3
        assert recorder.sends.count("tests-orders") == 3
        assert recorder.commits == 1
    finally:
        app.sensors.remove(recorder)


def test_sensors_add_refuses_what_is_not_a_sensor() -> None:
    with pytest.raises(TypeError, match="takes a Sensor"):
        app.sensors.add(object())  # type: ignore[arg-type]


@module_loop
@override_settings(DEBUG=False)
async def test_the_key_view_lets_in_only_signed_asks_in_production(
    running: Any,
) -> None:
    import base64
    import time

    from django_faust.web import signing

    await _send_orders({"acct-4": 2})
    key = base64.urlsafe_b64encode(b"acct-4").decode()
    target = f"/faust/tables/order-counts/key/?key={key}"
    client = AsyncClient()
    assert (await client.get(target)).status_code == 403
    now = repr(time.time())
    forged = await client.get(
        target,
        headers={signing.TIMESTAMP_HEADER: now, signing.SIGNATURE_HEADER: "0" * 64},
    )
    assert forged.status_code == 403
    stale = repr(time.time() - 2 * signing.MAX_AGE)
    replayed = await client.get(
        target,
        headers={
            signing.TIMESTAMP_HEADER: stale,
            signing.SIGNATURE_HEADER: signing.sign(target, stale),
        },
    )
    assert replayed.status_code == 403
    answer = await client.get(target, headers=signing.headers(target))
    assert answer.status_code == 200
    assert (
        order_counts.changelog_topic.decode_value(answer.content)
        == (order_counts["acct-4"])
    )


def _staff_only(request: Any, view_name: str) -> bool:
    return bool(getattr(request, "is_staff", False))


@override_settings(DEBUG=False)
def test_settings_open_and_close_the_built_in_views_in_production() -> None:
    from django.test import RequestFactory

    from django_faust import App
    from django_faust.web.access import allowed

    request = RequestFactory().get("/faust/stats/")
    closed = App("shop", broker="memory://")
    assert not allowed(closed, request, "stats")
    assert not allowed(closed, request, "metrics")
    assert allowed(closed, request, "health-ready")
    opened = App(
        "shop",
        broker="memory://",
        web_expose_stats=True,
        web_expose_metrics=True,
        web_expose_health=False,
    )
    assert allowed(opened, request, "stats")
    assert allowed(opened, request, "metrics")
    assert not allowed(opened, request, "health-ready")
    assert not allowed(opened, request, "table-key")  # WEB_EXPOSE_TABLES: DEBUG
    decided = App(
        "shop",
        broker="memory://",
        web_expose_stats=True,
        web_permission=f"{__name__}._staff_only",
    )
    assert not allowed(decided, request, "stats")
    request.is_staff = True  # type: ignore[attr-defined]
    assert allowed(decided, request, "stats")
