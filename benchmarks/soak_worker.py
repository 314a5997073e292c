"""The worker process of ``crash_soak.py`` and ``memory_soak.py``.

Run as ``python benchmarks/soak_worker.py``; everything comes from the
environment (the soak scripts set it):

* ``SOAK_BROKER``: ``kafka://127.0.0.1:PORT``; ``SOAK_APP_ID``: the app id;
* ``SOAK_IN``, ``SOAK_OUT``: the input topic and the sink topic;
* ``SOAK_DATADIR``: the data directory (kept across restarts);
* ``SOAK_STORE``: ``rocksdb://`` (default) or ``memory://``;
* ``SOAK_LOG``: a file that gets ``<partition> <offset> <id>`` per
  processed event, appended and flushed per line, so a SIGKILLed worker's
  work is still known;
* ``SOAK_LOGLEVEL``: the worker's log level (default ``warning``);
* ``SOAK_RATE``: at most this many events per second (0: as fast as it
  goes), so that a soak's kills land while events are being processed.

One agent counts every event per key in the table ``counts`` and sends the
event's id to the sink, keyed like the input. A real ``Worker`` runs it:
signals, orderly shutdown and the final commit are the product's own.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from django_faust.testing import make_app
from django_faust.worker import Worker


def build() -> Any:
    env = os.environ
    app = make_app(
        env["SOAK_APP_ID"],
        broker=env["SOAK_BROKER"],
        store=env.get("SOAK_STORE") or "rocksdb://",
        datadir=env["SOAK_DATADIR"],
        topic_partitions=4,
        commit_interval=1.0,
        broker_session_timeout=4.0,
        broker_heartbeat_interval=1.0,
        broker_max_poll_records=500,
        worker_shutdown_timeout=10.0,
    )
    app._shutdown_timeout = None  # make_app shortens it for tests
    source = app.topic(env["SOAK_IN"], value_type=None)
    sink = app.topic(env["SOAK_OUT"], value_type=None)
    counts = app.Table("counts", default=int)
    log_path = env.get("SOAK_LOG")
    rate = float(env.get("SOAK_RATE") or 0)
    step = 50

    @app.agent(source, name="soak")
    async def soak(stream: Any) -> None:
        log = open(log_path, "a", encoding="ascii") if log_path else None  # noqa: SIM115
        try:
            n = 0
            async for event in stream.events():
                n += 1
                if rate and n % step == 0:
                    await asyncio.sleep(step / rate)
                key = event.key.decode()
                counts[key] += 1
                sink.send_soon(key=event.key, value=event.value["id"])
                if log is not None:
                    message = event.message
                    log.write(
                        f"{message.partition} {message.offset} {event.value['id']}\n"
                    )
                    log.flush()
        finally:
            if log is not None:
                log.close()

    return app


def main() -> int:
    app = build()
    worker = Worker(
        app,
        loglevel=os.environ.get("SOAK_LOGLEVEL") or "warning",
        web_enabled=False,
        quiet=True,
    )
    return worker.execute_from_commandline()


if __name__ == "__main__":
    raise SystemExit(main())
