"""Views of the worker project: views that send events (a plain sync view for
WSGI, async ones for ASGI) and pages as a user writes them from the Faust docs."""

from __future__ import annotations

import json
import os
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from django_faust import app
from django_faust.client import get_client

from .agents import counts, events_topic, order_counts, shout, tallies_topic


@csrf_exempt
@require_POST
def send_event(request: HttpRequest) -> JsonResponse:
    """POST ``n=<int>``: sends it and answers with where the broker put it.

    ``client`` says whether the send went through this process's client
    thread (True outside a worker) or the worker's own loop.
    """
    n = int(request.POST["n"])
    metadata = events_topic.send_sync(value=n, timeout=10)
    return JsonResponse(
        {
            "partition": metadata.partition,
            "offset": metadata.offset,
            "client": get_client(events_topic.app).running,
        }
    )


@csrf_exempt
@require_POST
async def send_event_async(request: HttpRequest) -> JsonResponse:
    """The same from an async view, awaiting the send on the server's loop."""
    n = json.loads(request.body)["n"]
    metadata = await events_topic.send_and_wait(value=n)
    return JsonResponse({"partition": metadata.partition, "offset": metadata.offset})


async def ask_async(request: HttpRequest, word: str) -> JsonResponse:
    """GET: ask the ``shout`` agent from an async view; its reply."""
    return JsonResponse({"reply": await shout.ask(word, timeout=20)})


@app.page("count/<str:account>/")
@app.table_route(table=order_counts, match_info="account")
async def count(request: Any, account: str) -> JsonResponse:
    return JsonResponse(
        {"account": account, "count": order_counts[account], "pid": os.getpid()}
    )


@app.page("/tally/{user}/")
@app.table_route(table=counts, match_info="user", topic=tallies_topic)
async def tally(web: Any, request: Any, user: str) -> Any:
    """Faust's form; ``tallies`` keys are raw text, unlike the table's JSON."""
    return web.json({"user": user, "count": counts[user], "pid": os.getpid()})


@app.page("ask/<str:account>/")
async def ask(request: Any, account: str) -> JsonResponse:
    """Any worker answers, with the value from wherever the key is."""
    value = await app.router.ask(order_counts, account)
    return JsonResponse({"account": account, "count": value, "pid": os.getpid()})
