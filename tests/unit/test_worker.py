"""The Worker: runs the app until asked to stop, and reports how it ended."""

from __future__ import annotations

import asyncio
import io

from django_faust import Worker
from django_faust.testing import make_app
from tests.helpers import wait_for


async def test_worker_runs_until_stopped_and_exits_zero():
    app = make_app()
    inits, seen = [], []
    app.on_worker_init.connect(lambda sender, **kw: inits.append(sender))
    topic = app.topic("w", value_type=int, partitions=1)

    @app.agent(topic)
    async def work(stream):
        async for value in stream:
            seen.append(value)

    out = io.StringIO()
    worker = Worker(app, web_enabled=False, stdout=out, setup_logging=False)
    run = asyncio.ensure_future(worker.run())
    await wait_for(lambda: app.started and work.started)
    await topic.send(value=1)
    await wait_for(lambda: seen == [1])
    worker.request_stop()
    assert await asyncio.wait_for(run, 10) == 0
    assert inits == [app]
    assert "django-faust worker" in out.getvalue()
    assert app.should_stop


async def test_worker_exits_one_when_the_app_crashes():
    from mode import CrashingSupervisor

    app = make_app()
    topic = app.topic("boom", value_type=int, partitions=1)

    @app.agent(topic, supervisor_strategy=CrashingSupervisor)
    async def boom(stream):
        async for _ in stream:
            raise RuntimeError("fatal")

    worker = Worker(app, web_enabled=False, quiet=True, setup_logging=False)
    run = asyncio.ensure_future(worker.run())
    await wait_for(lambda: boom.started)
    await topic.send(value=1)
    assert await asyncio.wait_for(run, 10) == 1


def test_banner_describes_the_app():
    app = make_app("bannered")
    text = Worker(app, web_enabled=False).banner()
    assert "bannered" in text and "memory://" in text and "web        disabled" in text


def test_command_line_web_options_become_the_settings_the_group_is_told():
    from django_faust.transport.kafka.consumer import AIOKafkaConsumer

    app = make_app("announced", broker="kafka://127.0.0.1:9", web_host="127.0.0.1")
    worker = Worker(app, web_enabled=True, web_port=7123, web_bind="0.0.0.0")
    assert (app.conf.web_enabled, app.conf.web_port, app.conf.web_bind) == (
        True,
        7123,
        "0.0.0.0",
    )
    assert "http://0.0.0.0:7123/" in worker.banner()
    consumer = app.consumer
    assert isinstance(consumer, AIOKafkaConsumer)
    assert consumer.assignor.url == "http://127.0.0.1:7123/"


def test_a_worker_without_web_announces_no_url():
    app = make_app("quiet", broker="kafka://127.0.0.1:9")
    Worker(app, web_enabled=False)
    assert app.consumer.assignor.url is None  # type: ignore[attr-defined]
