"""Sync sends from a WSGI view: ``send_sync`` and ``send_soon`` beside a plain producer.

Run from the checkout, with the project's virtualenv::

    .venv/bin/python benchmarks/sync_send.py
    .venv/bin/python benchmarks/sync_send.py --events 50000 --sync-events 5000

It starts a test broker (the suite's ``TestBroker``), configures a minimal
Django project in this process whose one view sends ``count`` events in the
way the URL names, and calls that view through Django's WSGI test client,
``--batch`` events per request, from one thread (and, for the sync rows,
from ``--threads`` threads too). Rows:

``django_faust send_sync``
    ``topic.send_sync()``: hands the event to this process's client loop
    and waits for the broker's acknowledgement.
``django_faust send_soon``
    ``topic.send_soon()`` from the sync view: returns a
    ``concurrent.futures.Future`` at once.
``plain sync`` / ``plain soon``
    A plain synchronous producer doing the same: one aiokafka producer on an
    event loop in a thread, called with ``run_coroutine_threadsafe``
    (``send_and_wait`` and waited for; ``send`` and not waited for).
    ``plain-linger0`` is the same with ``linger_ms=0``: django-faust's
    producer hands aiokafka closed batches, which do not linger, so that is
    the like-for-like latency. confluent-kafka, the other choice, is used
    too when it is installed.

For each row: events/s (from the first send until the broker acknowledged
the last one) and the p50/p99 latency of the call as the view sees it
(``send_sync``: a broker round trip; ``send_soon``: the hand-over only).
Every row sends ``--value-size``-byte values with 4-byte keys to a fresh
4-partition topic, with the same producer settings (acks=all, linger 5 ms).
Each event's delivery is checked: every future must resolve to an offset.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LINGER_MS = 5
PARTITIONS = 4

#: mode -> one send of event ``i`` (returns a future or metadata).
SENDERS: dict[str, Callable[[int], Any]] = {}
#: What the view measured: call latencies and the futures to wait for.
LATENCIES: list[float] = []
PENDING: list[Any] = []
_lock = threading.Lock()


def send_view(request: Any, mode: str, count: int) -> Any:
    from django.http import HttpResponse

    send = SENDERS[mode]
    latencies, pending = [], []
    clock = time.perf_counter
    for i in range(count):
        start = clock()
        result = send(i)
        latencies.append(clock() - start)
        pending.append(result)
    with _lock:
        LATENCIES.extend(latencies)
        PENDING.extend(pending)
    return HttpResponse(str(count))


def urls() -> list[Any]:
    from django.urls import path

    return [path("send/<str:mode>/<int:count>/", send_view)]


urlpatterns: list[Any] = []


def configure(broker_url: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="benchmark",
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["django_faust"],
        DATABASES={},
        MIDDLEWARE=[],
        FAUST={
            "APP_ID": f"bench-sync-send-{uuid.uuid4().hex[:6]}",
            "BROKER": broker_url,
            "TOPIC_PARTITIONS": PARTITIONS,
            "WEB_ENABLED": False,
            "PRODUCER_LINGER": LINGER_MS / 1000,
            "PRODUCER_ACKS": -1,
        },
        LOGGING_CONFIG=None,
    )
    django.setup()
    urlpatterns[:] = urls()


class PlainProducer:
    """One aiokafka producer on a loop in a thread, called from sync code."""

    def __init__(self, bootstrap: str, linger_ms: int = LINGER_MS) -> None:
        from aiokafka import AIOKafkaProducer

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def start() -> Any:
            producer = AIOKafkaProducer(
                bootstrap_servers=bootstrap, linger_ms=linger_ms, acks="all"
            )
            await producer.start()
            return producer

        self.producer = self.run(start())

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def send_and_wait(self, topic: str, key: bytes, value: bytes) -> Any:
        return self.run(self.producer.send_and_wait(topic, value, key=key))

    def send_soon(
        self, topic: str, key: bytes, value: bytes
    ) -> concurrent.futures.Future[Any]:
        async def send() -> Any:
            return await (await self.producer.send(topic, value, key=key))

        return asyncio.run_coroutine_threadsafe(send(), self.loop)

    def close(self) -> None:
        self.run(self.producer.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class ConfluentProducer:
    """confluent-kafka's producer, polled by a thread (if it is installed)."""

    def __init__(self, bootstrap: str) -> None:
        import confluent_kafka  # type: ignore[import-not-found]

        self.producer = confluent_kafka.Producer(
            {"bootstrap.servers": bootstrap, "linger.ms": LINGER_MS, "acks": "all"}
        )
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)

    def send_soon(
        self, topic: str, key: bytes, value: bytes
    ) -> concurrent.futures.Future[Any]:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def delivered(err: Any, msg: Any) -> None:
            if err is not None:
                fut.set_exception(RuntimeError(str(err)))
            else:
                fut.set_result(msg.offset())

        self.producer.produce(topic, value, key, on_delivery=delivered)
        return fut

    def send_and_wait(self, topic: str, key: bytes, value: bytes) -> Any:
        return self.send_soon(topic, key, value).result()

    def close(self) -> None:
        self.producer.flush(10)
        self._stop.set()
        self.thread.join(5)


def create_topic(bootstrap: str, name: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, PARTITIONS, 1)])
        finally:
            await admin.close()

    asyncio.run(create())


def resolved(result: Any) -> Any:
    """The offset a send ended with (waiting for a future)."""
    if isinstance(result, concurrent.futures.Future):
        result = result.result(60)
    return getattr(result, "offset", result)


def run_row(
    mode: str, events: int, batch: int, threads: int
) -> dict[str, float | int | str]:
    from django.test import Client

    LATENCIES.clear()
    PENDING.clear()
    per_thread = events // threads
    errors: list[BaseException] = []

    def work() -> None:
        client = Client()
        try:
            left = per_thread
            while left > 0:
                n = min(batch, left)
                response = client.get(f"/send/{mode}/{n}/")
                assert response.status_code == 200, response.content[:500]
                left -= n
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    offsets = [resolved(result) for result in PENDING]
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    sent = per_thread * threads
    assert len(offsets) == sent and all(o is not None and o >= 0 for o in offsets)
    latencies = sorted(LATENCIES)
    return {
        "row": mode,
        "threads": threads,
        "events": sent,
        "events_per_s": sent / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99) - 1],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20000, help="per send_soon row")
    parser.add_argument("--sync-events", type=int, default=2000, help="per sync row")
    parser.add_argument("--batch", type=int, default=500, help="events per request")
    parser.add_argument("--threads", type=int, default=8, help="for the 2nd sync rows")
    parser.add_argument("--value-size", type=int, default=100)
    args = parser.parse_args(argv)

    from django_faust.testing.broker import TestBroker

    with TestBroker() as broker:
        configure(broker.url)
        from django_faust import app
        from django_faust.client import stop_clients

        value = b"v" * args.value_size
        key_of = [f"{i % 1000:04d}".encode() for i in range(1000)]
        producers: list[Any] = [
            ("plain", PlainProducer(broker.bootstrap)),
            # Our producer hands aiokafka whole batches, which go out without
            # lingering: the fair comparison for latency is linger 0.
            ("plain-linger0", PlainProducer(broker.bootstrap, linger_ms=0)),
        ]
        try:
            producers.append(("confluent", ConfluentProducer(broker.bootstrap)))
        except ImportError:
            pass

        def topic_for(row: str) -> str:
            name = f"bench-{row}-{uuid.uuid4().hex[:6]}"
            create_topic(broker.bootstrap, name)
            return name

        ours = app.topic(
            topic_for("ours"), key_serializer="raw", value_serializer="raw"
        )
        SENDERS["django_faust send_sync"] = lambda i: ours.send_sync(
            key=key_of[i % 1000], value=value
        )
        SENDERS["django_faust send_soon"] = lambda i: ours.send_soon(
            key=key_of[i % 1000], value=value
        )
        for label, producer in producers:
            name = topic_for(label)
            SENDERS[f"{label} sync"] = lambda i, p=producer, n=name: p.send_and_wait(
                n, key_of[i % 1000], value
            )
            SENDERS[f"{label} soon"] = lambda i, p=producer, n=name: p.send_soon(
                n, key_of[i % 1000], value
            )

        plan = []
        for kind, events, threads in (
            ("soon", args.events, 1),
            ("sync", args.sync_events, 1),
            ("sync", args.sync_events, args.threads),
        ):
            for mode in SENDERS:
                if mode.endswith(kind):
                    plan.append((mode, events, threads))
        # Warm up every sender: connections, metadata, the client thread.
        for mode in SENDERS:
            run_row(mode, 200, 100, 1)
        results = [run_row(m, e, args.batch, t) for m, e, t in plan]
        for _, producer in producers:
            producer.close()
        stop_clients()

    print(
        f"\nSync sends from a WSGI view ({args.value_size}-byte values, "
        f"{PARTITIONS} partitions, acks=all, linger {LINGER_MS} ms)\n"
    )
    print(
        f"{'row':28} {'threads':>7} {'events':>7} {'events/s':>10} "
        f"{'p50 ms':>8} {'p99 ms':>8}"
    )
    for r in results:
        print(
            f"{r['row']:28} {r['threads']:>7} {r['events']:>7} "
            f"{r['events_per_s']:>10,.0f} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f}"
        )
    by_row = {(r["row"], r["threads"]): r for r in results}
    soon = by_row[("django_faust send_soon", 1)]["events_per_s"]
    plain = by_row[("plain soon", 1)]["events_per_s"]
    sync_p99 = by_row[("django_faust send_sync", 1)]["p99_ms"]
    print(
        f"\nsend_soon / plain soon: {soon / plain:.0%} (goal: at least 80%)"
        f"\nsend_sync p99: {sync_p99:.1f} ms (goal: under 20 ms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
