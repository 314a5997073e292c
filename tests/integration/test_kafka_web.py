"""Table routes, the router and the built-in views across worker processes.

Two workers of ``worker_app/`` serve the project (``/faust/`` mounts
``include("django_faust.urls")`` and the pages of ``counting/views.py``)
on the test broker; a key is owned by one of them, and a request to the
other is forwarded to it. Then the owner is SIGKILLed: while its partitions
move the answer is 503 with ``Retry-After``, then the right value from the
new owner, never the table's default. A separate web process (uvicorn, no
worker) answers the same requests over HTTP to the workers.

Keys are sent as a keyed producer sends them: to the partition Kafka's
default partitioner picks for the key's bytes.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from django_faust.testing.broker import free_port
from django_faust.transport.memory import partition_for_key
from tests.integration.workers import PARTITIONS, Project

pytestmark = [pytest.mark.broker, pytest.mark.slow]

ACCOUNTS = {f"acct-{i}": i + 1 for i in range(8)}


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


#: ``manage.py shell -c``: a staff user's session key, for the admin pages.
STAFF_SESSION = """
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
user = User.objects.create_superuser("staff", "staff@example.com", "staff")
session = SessionStore()
session[SESSION_KEY] = str(user.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = user.get_session_auth_hash()
session.create()
print(session.session_key)
"""


def _get(url: str, cookie: str | None = None) -> Answer:
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Answer(
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                response.read(),
            )
    except urllib.error.HTTPError as error:
        return Answer(
            error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()
        )
    except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
        return Answer(0, {}, str(error).encode())


async def get(url: str, cookie: str | None = None) -> Answer:
    return await asyncio.to_thread(_get, url, cookie)


async def send_orders(project: Project) -> None:
    """``count`` orders of one unit per account, keyed by the JSON key."""
    records = []
    for account, count in ACCOUNTS.items():
        key = json.dumps(account)
        partition = partition_for_key(key.encode(), PARTITIONS)
        records += [(partition, key, 1)] * count
    await project.produce_keyed(project.orders, records)


async def wait_answers(
    project: Project, base: str, *, timeout: float = 60, seen: list[Answer]
) -> None:
    """Until every account's count is right at ``base``; no wrong value ever."""
    done: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(done) < len(ACCOUNTS):
        project.check_alive()
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{base}: only {sorted(done)} answered; last: "
                f"{[(a.status, a.body[:200]) for a in seen[-3:]]}"
            )
        for account, expected in ACCOUNTS.items():
            if account in done:
                continue
            answer = await get(f"{base}faust/count/{account}/")
            seen.append(answer)
            if answer.status == 200:
                data = answer.json()
                assert data["account"] == account
                # Counts only grow to the right value: a default (0) or a
                # partial count is never served.
                if data["count"] == expected:
                    done.add(account)
                else:
                    assert data["count"] < expected, data
            else:
                assert answer.status in (0, 503), (answer.status, answer.body)
                if answer.status == 503:
                    assert answer.headers["retry-after"].isdigit()
        await asyncio.sleep(0.2)


def owners_by_pid(answers: dict[str, Answer]) -> dict[str, int]:
    return {account: a.json()["pid"] for account, a in answers.items()}


async def test_table_routes_forward_to_the_owner_and_follow_a_failover(
    project_factory: Any,
) -> None:
    project: Project = project_factory("web")
    await project.declare_topics()
    project.manage("migrate", "--verbosity", "0")
    session = project.manage("shell", "-c", STAFF_SESSION).strip().splitlines()[-1]
    port_a, port_b, port_web = free_port(), free_port(), free_port()
    a = project.start_worker(web_port=port_a)
    b = project.start_worker(web_port=port_b)
    base_a, base_b = f"http://127.0.0.1:{port_a}/", f"http://127.0.0.1:{port_b}/"
    await project.wait_split(a, b)
    await send_orders(project)

    seen: list[Answer] = []
    await wait_answers(project, base_a, seen=seen)
    await wait_answers(project, base_b, seen=seen)

    # Both workers answer the same, each key from its owner.
    from_a = {acct: await get(f"{base_a}faust/count/{acct}/") for acct in ACCOUNTS}
    from_b = {acct: await get(f"{base_b}faust/count/{acct}/") for acct in ACCOUNTS}
    assert owners_by_pid(from_a) == owners_by_pid(from_b)
    assert set(owners_by_pid(from_a).values()) == {a.pid, b.pid}
    # A key of the other worker was forwarded there (one hop), and said so.
    for here, there, other, answers in (
        (a, base_b, b, from_a),
        (b, base_a, a, from_b),
    ):
        for answer in answers.values():
            forwarded = answer.headers.get("x-faust-forwarded-to")
            if answer.json()["pid"] == other.pid:
                assert forwarded == there
            else:
                assert answer.json()["pid"] == here.pid
                assert forwarded is None

    # router.ask from any worker gives the value from wherever it is.
    for account, expected in ACCOUNTS.items():
        asked = (await get(f"{base_a}faust/ask/{account}/")).json()
        assert asked == {"account": account, "count": expected, "pid": a.pid}

    # A table fed by raw text keys routes by its source topic (topic=...).
    tallies = [(partition_for_key(b"zed", PARTITIONS), "zed", 1)] * 3
    await project.produce_keyed(project.tallies, tallies)
    for _ in range(200):
        tally = await get(f"{base_b}faust/tally/zed/")
        if tally.status == 200 and tally.json()["count"] == 3:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"tally never reached 3: {tally.body!r}")

    # A web process with no worker in it answers the same, over HTTP.
    web = project.start_web(port_web)
    base_web = f"http://127.0.0.1:{port_web}/"
    await wait_answers(project, base_web, seen=seen)
    via_web = {acct: await get(f"{base_web}faust/count/{acct}/") for acct in ACCOUNTS}
    assert owners_by_pid(via_web) == owners_by_pid(from_a)
    assert all("x-faust-forwarded-to" in r.headers for r in via_web.values())
    assert (await get(f"{base_web}faust/health/ready/")).status == 503
    members = (await get(f"{base_web}faust/assignment/")).json()["members"]
    assert sorted(m["url"] for m in members.values()) == sorted([base_a, base_b])
    asked = (await get(f"{base_web}faust/ask/acct-5/")).json()
    assert asked["count"] == ACCOUNTS["acct-5"]
    # Its admin asks both workers (the router knows their URLs; nothing to
    # configure): the table page lists the keys of both.
    page = await get(
        f"{base_web}admin/django_faust/streamtable/order-counts/",
        cookie=f"sessionid={session}",
    )
    assert page.status == 200, page.body[:500]
    html_page = page.body.decode()
    for account in ACCOUNTS:
        assert account in html_page, account

    # Everything committed before the kill: the new owner recovers it all.
    await wait_committed(project, base_a, base_b)
    b.send_signal(signal.SIGKILL)
    b.wait()
    during: list[Answer] = []
    await wait_answers(project, base_a, timeout=90, seen=during)
    after = {acct: await get(f"{base_a}faust/count/{acct}/") for acct in ACCOUNTS}
    assert set(owners_by_pid(after).values()) == {a.pid}
    await wait_answers(project, base_web, timeout=60, seen=during)

    # The built-in views of the worker's own server.
    stats = (await get(f"{base_a}faust/stats/")).json()
    owned_by_a = [acct for acct, pid in owners_by_pid(from_a).items() if pid == a.pid]
    events = stats["agents"]["counting.agents.count_orders"]["events"]
    assert events >= sum(ACCOUNTS[acct] for acct in owned_by_a)
    assert stats["commits"] >= 1
    assert stats["commit_latency"]["count"] >= 1
    tables = (await get(f"{base_a}faust/tables/")).json()["tables"]
    orders_table = next(t for t in tables if t["name"] == "order-counts")
    assert orders_table["partitions"] == list(range(PARTITIONS))
    assert orders_table["keys"] == len(ACCOUNTS)
    assignment = (await get(f"{base_a}faust/assignment/")).json()
    assert [m["url"] for m in assignment["members"].values()] == [base_a]
    agents = (await get(f"{base_a}faust/agents/")).json()["agents"]
    assert "counting.agents.count_orders" in [agent["name"] for agent in agents]
    assert (await get(f"{base_a}faust/health/ready/")).status == 200
    assert (await get(f"{base_a}faust/health/live/")).status == 200
    html = await get(f"{base_a}faust/lag/?format=html")
    assert html.headers["content-type"].startswith("text/html")
    metrics = (await get(f"{base_a}faust/metrics/")).body.decode()
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    received = sum(
        s.value
        for s in families["faust_messages_received"].samples
        if s.labels.get("topic") == project.orders and s.name.endswith("_total")
    )
    assert received >= 1
    assert families["faust_table_keys"].samples
    assert web.poll() is None


async def wait_committed(project: Project, *bases: str) -> None:
    """Until no worker has uncommitted events of the orders topic."""

    async def lags() -> list[int | None]:
        out: list[int | None] = []
        for base in bases:
            parts = (await get(f"{base}faust/lag/")).json()["partitions"]
            out += [
                p["lag"] for name, p in parts.items() if name.startswith(project.orders)
            ]
        return out

    for _ in range(100):
        if all(lag == 0 for lag in await lags()):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"orders never committed: {await lags()}")
