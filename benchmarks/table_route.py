"""Requests per second and latency of a table route, local and forwarded.

Usage::

    .venv/bin/python benchmarks/table_route.py [--seconds 5] [--concurrency 8]

Starts a Tansu broker and two workers of ``tests/integration/worker_app``
serving ``/faust/`` (the page ``count/<account>/`` with
``@app.table_route(table=order_counts, match_info="account")``), fills the
table, then sends GET requests to worker A for ``--seconds`` each: first for
a key A owns (answered locally), then for a key B owns (forwarded A -> B and
back). Requests go over keep-alive connections, ``--concurrency`` at a
time, from this process. Prints requests/s, p50 and p99 for both, and for
``health/live/`` (a built-in view with no table route) as the baseline of
Django and uvicorn themselves.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from django_faust.testing.broker import TestBroker, free_port  # noqa: E402
from django_faust.transport.memory import partition_for_key  # noqa: E402
from django_faust.web.http import HTTPClient  # noqa: E402
from tests.integration.workers import PARTITIONS, Project  # noqa: E402

ACCOUNTS = [f"acct-{i}" for i in range(16)]


async def hammer(url: str, seconds: float, concurrency: int) -> tuple[int, list[float]]:
    client = HTTPClient()
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def one() -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = await client.request("GET", url)
            latencies.append(time.perf_counter() - started)
            if response.status != 200:
                raise AssertionError(f"{url}: {response.status} {response.body!r}")

    await asyncio.gather(*(one() for _ in range(concurrency)))
    client.close()
    return len(latencies), latencies


def summary(what: str, count: int, latencies: list[float], seconds: float) -> str:
    ordered = sorted(latencies)
    p50 = ordered[len(ordered) // 2] * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    return (
        f"{what:<22} {count / seconds:>8.0f} req/s   p50 {p50:6.2f} ms   "
        f"p99 {p99:6.2f} ms   ({count} requests)"
    )


async def main(seconds: float, concurrency: int) -> None:
    with TestBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        project = Project(broker, Path(tmp), "bench-web")
        try:
            await project.declare_topics()
            port_a, port_b = free_port(), free_port()
            a = project.start_worker(web_port=port_a)
            b = project.start_worker(web_port=port_b)
            await project.wait_split(a, b)
            records = []
            for account in ACCOUNTS:
                key = json.dumps(account)
                records.append((partition_for_key(key.encode(), PARTITIONS), key, 1))
            await project.produce_keyed(project.orders, records)
            client = HTTPClient()
            base = f"http://127.0.0.1:{port_a}/faust/count/"
            owners: dict[str, int] = {}
            while len(owners) < len(ACCOUNTS):
                for account in ACCOUNTS:
                    response = await client.request("GET", f"{base}{account}/")
                    if response.status == 200 and json.loads(response.body)["count"]:
                        owners[account] = json.loads(response.body)["pid"]
                await asyncio.sleep(0.2)
            client.close()
            local = next(k for k, pid in owners.items() if pid == a.pid)
            remote = next(k for k, pid in owners.items() if pid == b.pid)
            print(
                f"concurrency {concurrency}, {seconds:.0f} s each, worker A :{port_a}"
            )
            rows = (
                (
                    "no route (health/live)",
                    f"http://127.0.0.1:{port_a}/faust/health/live/",
                ),
                ("local key", f"{base}{local}/"),
                ("forwarded key (A->B)", f"{base}{remote}/"),
            )
            for what, url in rows:
                count, latencies = await hammer(url, seconds, concurrency)
                print(summary(what, count, latencies, seconds))
        finally:
            project.stop_all()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.concurrency))
