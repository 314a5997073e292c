"""Sending from Django code that is not the worker, against the test broker.

A worker process of ``worker_app/`` consumes what is sent, and its agents log
every event they process (see ``workers.py``): a sync view through Django's
test client, an async view served by uvicorn, management commands with one
and eight threads, ``send_on_commit`` and a model's signals inside committed
and rolled-back ``atomic()`` blocks, and an agent that writes through the
ORM after its database connection was closed under it.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable

import pytest

from django_faust.testing.broker import free_port
from tests.integration.workers import Project, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def processed(project: Project, worker) -> Counter[int]:
    """How many times the worker processed each value of the events topic."""
    return Counter(int(line[2]) for line in project.lines("processed", worker.pid))


async def started(project_factory: Callable[[str], Project], prefix: str):
    project = project_factory(prefix)
    await project.declare_topics()
    await asyncio.to_thread(project.manage, "migrate", "-v", "0")
    worker = project.start_worker()
    await project.wait_split(worker)
    return project, worker


async def wait_processed(project: Project, worker, wanted: set[int]) -> None:
    await wait_for(
        lambda: set(processed(project, worker)) >= wanted,
        timeout=60,
        what=f"the worker to process {len(wanted)} events",
        project=project,
    )


async def test_sync_view_and_management_commands_reach_the_worker(project_factory):
    """WSGI view (test client), send_sync, and send_soon flushed at exit."""
    project, worker = await started(project_factory, "send-sync")
    try:
        out = await asyncio.to_thread(
            project.manage, "send_events", "--via", "view", "--count", "20"
        )
        assert "sent 20 via view" in out
        await asyncio.to_thread(
            project.manage, "send_events", "--via", "sync", "--start", "100"
        )
        # Fire and forget: the command exits right after; the exit flushes.
        await asyncio.to_thread(
            project.manage, "send_events", "--via", "soon", "--start", "200"
        )
        # The same when the process ends with SIGTERM.
        out = await asyncio.to_thread(
            project.manage,
            "send_events",
            "--via",
            "soon",
            "--start",
            "300",
            "--count",
            "500",
            "--sigterm",
            check=False,
        )
        assert "sent 500 via soon" in out
        # What the issue tried from `manage.py shell`: async_to_sync runs
        # each call on a new loop; the client's loop does the sending.
        out = await asyncio.to_thread(
            project.manage,
            "shell",
            "-c",
            "from asgiref.sync import async_to_sync\n"
            "from counting.agents import events_topic\n"
            "md = async_to_sync(events_topic.send_and_wait)(value=900)\n"
            "fut = async_to_sync(events_topic.send)(value=901)\n"
            "print('offset', md.offset, fut.get_loop().is_closed())\n"
            "from counting.agents import shout\n"
            "print('reply', async_to_sync(shout.ask)('yo', timeout=20))\n"
            "print('reply', async_to_sync(shout.join)(['a', 'b'], timeout=20))\n",
        )
        assert "offset" in out and "True" in out, out
        assert f"reply YO@{worker.pid}" in out, out
        assert f"reply ['A@{worker.pid}', 'B@{worker.pid}']" in out, out
        assert "Unclosed" not in out, out
        wanted = {
            *range(20),
            *range(100, 110),
            *range(200, 210),
            *range(300, 800),
            900,
            901,
        }
        await wait_processed(project, worker, wanted)
        project.stop_all()
    finally:
        project.kill_all()
    counts = processed(project, worker)
    assert set(counts) == wanted
    assert set(counts.values()) == {1}


async def test_ask_sync_from_a_management_command(project_factory):
    project, worker = await started(project_factory, "send-ask")
    try:
        out = await asyncio.to_thread(
            project.manage, "send_events", "--via", "ask", "--count", "3"
        )
        project.stop_all()
    finally:
        project.kill_all()
    replies = [line.split()[1] for line in out.splitlines() if line.startswith("reply")]
    assert replies == [f"W{n}@{worker.pid}" for n in range(3)]


async def test_eight_threads_send_8000_events_each_processed_once(project_factory):
    project, worker = await started(project_factory, "send-threads")
    try:
        await asyncio.to_thread(
            project.manage, "send_events", "--threads", "8", "--count", "1000"
        )
        await wait_processed(project, worker, set(range(8000)))
        project.stop_all()
    finally:
        project.kill_all()
    counts = processed(project, worker)
    assert set(counts) == set(range(8000))
    assert set(counts.values()) == {1}, "some events were processed twice"


async def test_async_view_served_by_uvicorn_in_another_process(project_factory):
    project, worker = await started(project_factory, "send-asgi")
    port = free_port()
    server = project.start_web(port)
    url = f"http://127.0.0.1:{port}/async-events/"

    def post(n: int) -> dict:
        request = urllib.request.Request(
            url,
            data=json.dumps({"n": n}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=20) as response:
            return json.loads(response.read())

    def server_up() -> bool:
        return "Uvicorn running" in project.output(server)

    try:
        await wait_for(server_up, timeout=30, what="uvicorn to listen", project=project)
        replies = [await asyncio.to_thread(post, n) for n in range(10)]
        await wait_processed(project, worker, set(range(10)))
        ask_url = f"http://127.0.0.1:{port}/async-ask/hi/"
        with await asyncio.to_thread(urllib.request.urlopen, ask_url, None, 30) as r:
            answer = json.loads(r.read())
        project.stop_all()
    finally:
        project.kill_all()
    assert all(reply["offset"] >= 0 for reply in replies)
    assert set(processed(project, worker)) == set(range(10))
    assert answer == {"reply": f"HI@{worker.pid}"}


async def test_send_on_commit_only_sends_what_was_committed(project_factory):
    """send_on_commit and post_save publishing: a rolled-back block sends nothing."""
    project, worker = await started(project_factory, "send-commit")
    try:
        for args in (
            ("--via", "on-commit", "--start", "0", "--count", "5"),
            ("--via", "on-commit", "--start", "50", "--count", "5", "--rollback"),
            ("--via", "orders", "--start", "0", "--count", "3"),
            ("--via", "orders", "--start", "50", "--count", "3", "--rollback"),
            # Something after the rolled-back ones, to know they had their chance.
            ("--via", "on-commit", "--start", "100", "--count", "1"),
        ):
            await asyncio.to_thread(project.manage, "send_events", *args)
        await wait_processed(project, worker, {*range(5), 100})
        await wait_for(
            lambda: len(project.lines("orders", worker.pid)) >= 3,
            timeout=30,
            what="the three committed orders",
            project=project,
        )
        await asyncio.sleep(1.0)
        project.stop_all()
    finally:
        project.kill_all()
    assert set(processed(project, worker)) == {*range(5), 100}
    orders = project.lines("orders", worker.pid)
    # Keyed by primary key, the record built from the row.
    assert sorted(orders) == [
        ["1", "acct-0", "0"],
        ["2", "acct-1", "1"],
        ["3", "acct-2", "2"],
    ]


async def test_agent_writes_through_the_orm_after_its_connection_was_closed(
    project_factory,
):
    """faust-streaming #666: a dead persistent connection is replaced, not reused."""
    project, worker = await started(project_factory, "send-orm")
    try:
        texts = ["first", "!drop", "second", "!drop", "!probe"]
        await project.produce(project.notes, [(0, text) for text in texts])
        await wait_for(
            lambda: len(project.lines("notes", worker.pid)) >= len(texts),
            timeout=30,
            what="the agent to take the notes",
            project=project,
        )
        project.stop_all()
    finally:
        project.kill_all()
    lines = project.lines("notes", worker.pid)
    assert [line[0] for line in lines] == texts
    # The control: the dropped connection does fail plain sync_to_async.
    assert lines[-1] == ["!probe", "ProgrammingError"]
    db = sqlite3.connect(project.outdir / "db.sqlite3")
    try:
        rows = db.execute("SELECT text FROM counting_note ORDER BY id").fetchall()
    finally:
        db.close()
    assert rows == [("first",), ("second",)]
    assert "Traceback" not in project.output(worker, tail=0)


async def test_sync_view_served_by_the_worker_hands_over_to_its_loop(project_factory):
    """Under the worker's web server a sync view runs in a thread: no client loop."""
    project = project_factory("send-web")
    await project.declare_topics()
    port = free_port()
    worker = project.start_worker(web_port=port)
    await project.wait_split(worker)

    def post(n: int) -> dict:
        data = urllib.parse.urlencode({"n": n}).encode()
        url = f"http://127.0.0.1:{port}/events/"
        with urllib.request.urlopen(url, data=data, timeout=20) as response:
            return json.loads(response.read())

    try:
        replies = [await asyncio.to_thread(post, n) for n in range(10)]
        await wait_processed(project, worker, set(range(10)))
        project.stop_all()
    finally:
        project.kill_all()
    assert all(reply["offset"] >= 0 for reply in replies)
    assert not any(reply["client"] for reply in replies), "a client thread started"


def test_send_sync_raises_while_the_broker_is_down_then_works(monkeypatch):
    """The first send starts the client: a broker that is not there is an error
    at the call site, and a later send, once the broker is up, goes through."""
    from django_faust.client import get_client
    from django_faust.testing import broker as broker_module
    from django_faust.testing import make_app

    port = free_port()
    app = make_app(broker=f"kafka://127.0.0.1:{port}")
    topic = app.topic("late", value_type=int)
    monkeypatch.setattr(broker_module, "free_port", lambda host="127.0.0.1": port)
    try:
        with pytest.raises(Exception, match=r"127\.0\.0\.1|bootstrap|connect"):
            topic.send_sync(value=1, timeout=20)
        with broker_module.TestBroker() as broker:
            assert broker.port == port
            metadata = topic.send_sync(value=2, timeout=20)
            assert metadata.topic == "late" and metadata.offset == 0
            get_client(app).stop()
    finally:
        get_client(app).stop()
