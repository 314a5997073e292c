"""The agents the worker tests run in real worker processes.

Each appends one line per event to a file in ``settings.WORKER_OUTDIR``,
opened in append mode and flushed per line, so the test sees exactly what
was processed, even by a worker it killed with SIGKILL. A line is written
with no ``await`` between the write and the agent's return to the stream,
so a written line is an acknowledged event (bar a kill in between).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from django_faust import Record, app, current_event
from django_faust.orm import database_sync_to_async

SUFFIX = settings.WORKER_TOPIC_SUFFIX
DELAY = settings.WORKER_EVENT_DELAY


class Click(Record):
    user: str
    n: int


events_topic = app.topic(f"events{SUFFIX}", value_type=int)
clicks_topic = app.topic(f"clicks{SUFFIX}", value_type=Click)


def _log(kind: str) -> Any:
    path = os.path.join(settings.WORKER_OUTDIR, f"{kind}-{os.getpid()}.log")
    return open(path, "a", encoding="utf-8")


@app.agent(events_topic)
async def counted(stream: Any) -> None:
    """``<partition> <offset> <n>`` per event, in processed-<pid>.log."""
    with _log("processed") as log:
        async for n in stream:
            if DELAY:
                await asyncio.sleep(DELAY)
            event = current_event()
            assert event is not None
            message = event.message
            log.write(f"{message.partition} {message.offset} {n}\n")
            log.flush()


@app.agent(clicks_topic)
async def regrouped(clicks: Any) -> None:
    """``<pid> <user> <n>`` per click, after repartitioning by user."""
    pid = os.getpid()
    with _log("grouped") as log:
        async for click in clicks.group_by(Click.user):
            log.write(f"{pid} {click.user} {click.n}\n")
            log.flush()


@app.on_partitions_assigned.connect
async def record_assignment(sender: Any, assigned: Any, **kwargs: Any) -> None:
    """One line per rebalance in assigned-<pid>.log: the partitions we got."""
    with _log("assigned") as log:
        parts = sorted(f"{tp.topic}:{tp.partition}" for tp in assigned)
        log.write(" ".join(parts) + "\n")


words_topic = app.topic(f"words{SUFFIX}", value_type=str)
asks_topic = app.topic(f"asks{SUFFIX}", value_type=str)


@app.agent(words_topic)
async def shout(words: Any) -> Any:
    """RPC target: replies ``WORD@<pid>``, so the asker sees who answered."""
    async for word in words:
        yield f"{word.upper()}@{os.getpid()}"


@app.agent(asks_topic)
async def relay(asks: Any) -> None:
    """Asks ``shout`` (on whichever worker owns the partition) per event."""
    pid = os.getpid()
    with _log("rpc") as log:
        async for word in asks:
            reply = await shout.ask(word, timeout=20)
            log.write(f"{pid} {word} {reply}\n")
            log.flush()


#: Events per user, kept by ``tally`` (the tables tests).
counts = app.Table("counts", default=int, help="Tallies per user.")
tallies_topic = app.topic(f"tallies{SUFFIX}", key_type=str, value_type=int)
#: With ``WORKER_MEMORY_TABLE=1``, ``tally`` also counts in a table kept in
#: memory whatever ``WORKER_STORE`` is (the SIGKILL tests compare both).
memory_counts = (
    app.Table("memory-counts", default=int, store="memory://")
    if os.environ.get("WORKER_MEMORY_TABLE")
    else None
)


#: With ``WORKER_SINK=1``, ``tally`` sends ``{"source", "count",
#: "memory_count"}`` per event here (the exactly-once test's sink).
tallied_topic = (
    app.topic(f"tallied{SUFFIX}", key_type=str)
    if os.environ.get("WORKER_SINK")
    else None
)


def _slow_commits(delay: float) -> None:
    """Offset commits that take ``delay`` seconds more (a slow broker): a
    kill then often lands between a changelog flush and its commit."""
    from django_faust.transport.kafka.consumer import AIOKafkaConsumer

    commit = AIOKafkaConsumer._commit_offsets

    async def slow_commit(self: AIOKafkaConsumer, offsets: Any) -> None:
        await asyncio.sleep(delay)
        await commit(self, offsets)

    AIOKafkaConsumer._commit_offsets = slow_commit  # type: ignore[method-assign]


def _static_member(instance_id: str) -> None:
    """Join the group as a static member (KIP-345, ``group_instance_id``):
    a restarted worker with the same id takes its killed predecessor's place
    at once. noida-db never drops a SIGKILLed member otherwise."""
    from django_faust.transport.kafka.consumer import AIOKafkaConsumer

    options = AIOKafkaConsumer.client_options

    def static(self: AIOKafkaConsumer) -> dict[str, Any]:
        return {**options(self), "group_instance_id": instance_id}

    AIOKafkaConsumer.client_options = static  # type: ignore[method-assign]


if os.environ.get("WORKER_GROUP_INSTANCE_ID"):
    _static_member(os.environ["WORKER_GROUP_INSTANCE_ID"])


if os.environ.get("WORKER_COMMIT_DELAY"):
    _slow_commits(float(os.environ["WORKER_COMMIT_DELAY"]))


@app.agent(tallies_topic)
async def tally(stream: Any) -> None:
    """Counts events per key in ``counts``.

    ``<pid> <partition> <offset> <key> <count_after>`` per event, in
    tally-<pid>.log; alike for ``memory_counts`` (if declared) in
    memory-tally-<pid>.log.
    """
    pid = os.getpid()
    with _log("tally") as log, _log("memory-tally") as memory_log:
        async for event in stream.events():
            if DELAY:
                await asyncio.sleep(DELAY)
            key = event.key
            counts[key] += 1
            message = event.message
            where = f"{pid} {message.partition} {message.offset} {key}"
            if memory_counts is not None:
                memory_counts[key] += 1
                memory_log.write(f"{where} {memory_counts[key]}\n")
                memory_log.flush()
            log.write(f"{where} {counts[key]}\n")
            log.flush()
            if tallied_topic is not None:
                await tallied_topic.send(
                    key=key,
                    value={
                        "source": f"{message.partition}:{message.offset}",
                        "count": counts[key],
                        "memory_count": (
                            memory_counts[key] if memory_counts is not None else None
                        ),
                    },
                )


@app.timer(0.2, on_leader=True)
async def leader_tick() -> None:
    """``<time>`` per tick, in tick-<pid>.log: only the group's leader ticks."""
    with _log("tick") as log:
        log.write(f"{time.time():.3f}\n")


class OrderRecord(Record):
    """An `Order` row as published by ``signals.py``."""

    id: int
    account: str
    amount: int


order_rows_topic = app.topic(
    f"order-rows{SUFFIX}", key_type=int, key_serializer="json", value_type=OrderRecord
)


@app.agent(order_rows_topic)
async def orders_seen(stream: Any) -> None:
    """``<key> <account> <amount>`` per published order (``<key> deleted``)."""
    with _log("orders") as log:
        async for event in stream.events():
            order = event.value
            if order is None:
                log.write(f"{event.key} deleted\n")
            else:
                log.write(f"{event.key} {order.account} {order.amount}\n")
            log.flush()


notes_topic = app.topic(f"notes{SUFFIX}", value_type=str)


@database_sync_to_async
def write_note(text: str) -> int:
    from .models import Note

    return Note.objects.create(text=text, pid=os.getpid()).pk


@sync_to_async
def lose_connection() -> None:
    """What a database restart does: the socket closes, Django is not told."""
    from django.db import connection

    connection.ensure_connection()
    connection.connection.close()


@sync_to_async
def count_notes_plainly() -> str:
    """The ORM through plain ``sync_to_async``: the error's name, if it fails."""
    from .models import Note

    try:
        return str(Note.objects.count())
    except Exception as exc:
        return type(exc).__name__


@app.agent(notes_topic)
async def take_notes(stream: Any) -> None:
    """Writes a `Note` per text; ``!drop`` loses the DB connection.

    ``<text> <note id>`` per note written, in notes-<pid>.log; ``!probe``
    logs what a plain ``sync_to_async`` query gives.
    """
    with _log("notes") as log:
        async for text in stream:
            if text == "!drop":
                await lose_connection()
                log.write("!drop -\n")
            elif text == "!probe":
                log.write(f"!probe {await count_notes_plainly()}\n")
            else:
                pk = await write_note(text)
                log.write(f"{text} {pk}\n")
            log.flush()


#: Orders per account (the web tests): the topic's keys are JSON, as the
#: table's changelog encodes them, so the router finds a key's partition.
orders_topic = app.topic(
    f"orders{SUFFIX}", key_type=str, value_type=int, key_serializer="json"
)
order_counts = app.Table("order-counts", default=int, help="Orders per account.")


@app.agent(orders_topic)
async def count_orders(stream: Any) -> None:
    async for event in stream.events():
        order_counts[event.key] += event.value


careful_topic = app.topic(f"careful{SUFFIX}", value_type=Click)


@app.agent(careful_topic)
async def careful(clicks: Any) -> None:
    """Raises on a negative ``n`` (a poison event, see POISON_POLICY).

    ``<partition> <offset> <n>`` per processed click, in careful-<pid>.log.
    """
    with _log("careful") as log:
        async for click in clicks:
            if click.n < 0:
                raise ValueError(f"negative n: {click.n}")
            event = current_event()
            assert event is not None
            message = event.message
            log.write(f"{message.partition} {message.offset} {click.n}\n")
            log.flush()


relay_topic = app.topic(f"relay{SUFFIX}", value_type=int)
sunk_topic = app.topic(f"sunk{SUFFIX}", value_type=int)


@app.agent(relay_topic, sink=[sunk_topic])
async def relayed(numbers: Any) -> Any:
    """Forwards each number to the ``sunk`` topic (the sink), after DELAY.

    ``<pid> <partition> <offset> <n> <time>`` per event, in relayed-<pid>.log.
    """
    pid = os.getpid()
    with _log("relayed") as log:
        async for n in numbers:
            if DELAY:
                await asyncio.sleep(DELAY)
            event = current_event()
            assert event is not None
            message = event.message
            log.write(
                f"{pid} {message.partition} {message.offset} {n} {time.time():.4f}\n"
            )
            log.flush()
            yield n
