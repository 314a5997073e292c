"""Pages of the worker project, as a user writes them from the Faust docs."""

from __future__ import annotations

import os
from typing import Any

from django.http import JsonResponse

from django_faust import app

from .agents import counts, order_counts, tallies_topic


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
