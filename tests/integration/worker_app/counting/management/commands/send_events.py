"""``manage.py send_events``: send ints to the ``events`` topic from sync code.

The ways a Django project sends, one per ``--via``:

* ``sync``: ``events_topic.send_sync()`` (waits for the broker);
* ``soon``: ``events_topic.send_soon()`` (fire and forget: the exit flushes);
* ``view``: POSTs to the sync view through Django's test client (WSGI);
* ``on-commit``: ``send_on_commit()`` inside ``atomic()``;
* ``orders``: saves `Order` rows inside ``atomic()`` (published by signals);
* ``ask``: ``shout.ask_sync("w<n>")``, printing each reply.

``--rollback`` rolls the ``atomic()`` block back. ``--threads`` sends from
that many threads at once, each its own ``--count`` values. ``--sigterm``
ends the command with a SIGTERM to itself right after sending.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.test import Client

from counting.agents import events_topic, shout
from counting.models import Order


class Rollback(Exception):
    pass


class Command(BaseCommand):
    help = "Send ints to the events topic from sync code."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--count", type=int, default=10)
        parser.add_argument("--start", type=int, default=0)
        parser.add_argument("--threads", type=int, default=1)
        parser.add_argument(
            "--via",
            choices=["sync", "soon", "view", "on-commit", "orders", "ask"],
            default="sync",
        )
        parser.add_argument("--rollback", action="store_true")
        parser.add_argument("--sigterm", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        count, start, via = options["count"], options["start"], options["via"]
        errors: list[BaseException] = []

        def run(first: int) -> None:
            try:
                self.send(via, range(first, first + count), options["rollback"])
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=run, args=(start + i * count,))
            for i in range(options["threads"])
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        self.stdout.write(f"sent {count * len(threads)} via {via}")
        self.stdout.flush()
        if options["sigterm"]:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)  # the signal ends the process before this does
            raise CommandError("SIGTERM did not end the command")

    def send(self, via: str, values: range, rollback: bool) -> None:
        if via == "sync":
            for n in values:
                events_topic.send_sync(value=n)
        elif via == "soon":
            for n in values:
                events_topic.send_soon(value=n)
        elif via == "ask":
            for n in values:
                self.stdout.write(f"reply {shout.ask_sync(f'w{n}', timeout=20)}")
        elif via == "view":
            client = Client()
            for n in values:
                response = client.post("/events/", {"n": n})
                assert response.status_code == 200, response.content
                assert response.json()["client"] is True, "not the client thread"
        else:
            try:
                with transaction.atomic():
                    for n in values:
                        if via == "on-commit":
                            events_topic.send_on_commit(value=n)
                        else:
                            Order.objects.create(account=f"acct-{n}", amount=n)
                    if rollback:
                        raise Rollback
            except Rollback:
                pass
