"""``manage.py faust send``: send events to a topic or an agent.

The value (and key) are given as text. Text that is valid JSON is sent as the
JSON value it spells (so ``'{"id": 1}'`` reaches a Record-typed topic as a
record); any other text is sent as a string. On the ``memory://`` broker,
which lives inside one process, the command also runs the app's agents until
they have processed what it sent, so their output shows here.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

from .base import get_app


def _parse(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


@click.command()
@click.argument("entity")
@click.argument("value", required=False)
@click.option("-k", "--key", help="Key of the message (text or JSON).")
@click.option("--partition", type=int, help="Send to this partition.")
@click.option(
    "--repeat",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Send the message this many times.",
)
@click.option("--key-serializer", help="Codec for the key (default: the topic's).")
@click.option("--value-serializer", help="Codec for the value (default: the topic's).")
@click.option(
    "--timeout",
    type=float,
    default=30.0,
    show_default=True,
    help="memory:// only: seconds to wait for agents to process.",
)
@click.option(
    "-l",
    "--loglevel",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"], False),
    help="memory:// only: logging level of the agents run here.",
)
def send(
    entity: str,
    value: str | None,
    key: str | None,
    partition: int | None,
    repeat: int,
    key_serializer: str | None,
    value_serializer: str | None,
    timeout: float,
    loglevel: str,
) -> None:
    """Send VALUE to ENTITY: a topic name, or @agent for an agent's channel."""
    app = get_app()
    if app.conf.broker_url.startswith("memory:"):
        from ..worker import setup_logging

        setup_logging(loglevel)
    target = _resolve(app, entity)
    code = asyncio.run(
        _send(
            app,
            target,
            _parse(key),
            _parse(value),
            partition,
            repeat,
            key_serializer,
            value_serializer,
            timeout,
        )
    )
    if code:
        raise SystemExit(code)


def _resolve(app: Any, entity: str) -> Any:
    if not entity.startswith("@"):
        return app.topic(entity)
    wanted = entity[1:]
    matches = [
        agent
        for name, agent in app.agents.items()
        if name == wanted or name.rsplit(".", 1)[-1] == wanted
    ]
    if not matches:
        known = ", ".join("@" + n.rsplit(".", 1)[-1] for n in sorted(app.agents))
        raise click.BadParameter(
            f"No agent named {wanted!r}. Agents: {known or 'none'}.",
            param_hint="ENTITY",
        )
    if len(matches) > 1:
        names = ", ".join(a.name for a in matches)
        raise click.BadParameter(
            f"{entity} matches several agents ({names}); use the full name.",
            param_hint="ENTITY",
        )
    return matches[0]


async def _send(
    app: Any,
    target: Any,
    key: Any,
    value: Any,
    partition: int | None,
    repeat: int,
    key_serializer: str | None,
    value_serializer: str | None,
    timeout: float,
) -> int:
    in_process = app.conf.broker_url.startswith("memory:")
    if in_process:
        await app.start()
    else:
        await app.start_client()
    try:
        futures = []
        for _ in range(repeat):
            futures.append(
                await app.send(
                    target,
                    key=key,
                    value=value,
                    partition=partition,
                    key_serializer=key_serializer,
                    value_serializer=value_serializer,
                )
            )
        sent = [await fut for fut in futures]
        for md in sent:
            click.echo(
                json.dumps(
                    {"topic": md.topic, "partition": md.partition, "offset": md.offset}
                )
            )
        if in_process:
            done = await _wait_processed(app, sent, timeout)
            if not done:
                click.echo(f"Agents did not finish within {timeout}s.", err=True)
                return 1
        return 0
    finally:
        await app.stop()


async def _wait_processed(app: Any, sent: list[Any], timeout: float) -> bool:
    """Wait until every partition we sent to is acknowledged past our messages."""
    from ..types import TP

    wanted: dict[TP, int] = {}
    for md in sent:
        tp = TP(md.topic, md.partition)
        wanted[tp] = max(wanted.get(tp, 0), md.offset + 1)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    consumer = app.consumer
    while loop.time() < deadline:
        trackers = consumer.trackers
        if all(
            tp in trackers and (trackers[tp].acked or 0) >= offset
            for tp, offset in wanted.items()
        ):
            return True
        if not any(tp.topic in app.conductor for tp in wanted):
            return True  # nobody in this app reads it
        await asyncio.sleep(0.01)
    return False
