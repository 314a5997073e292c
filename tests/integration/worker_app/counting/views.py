"""Views that send events: a plain sync view (WSGI) and an async one (ASGI)."""

from __future__ import annotations

import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from django_faust.client import get_client

from .agents import events_topic, shout


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
