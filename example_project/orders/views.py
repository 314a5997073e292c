"""Views that talk to the stream processor.

``place_order`` is a plain sync Django view: ``orders_topic.send_sync(...)``
works from any thread, under the worker's web server (where the view runs
in a thread and hands the order to the worker's event loop), under
gunicorn or ``runserver`` (where the first send starts this process's
client thread) and in tests with Django's test client. ``counts`` is an
async view, run in the worker's event loop next to the agents.
"""

import json
import time

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from django_faust import app
from django_faust.exceptions import RecordValidationError

from .agents import orders_topic
from .records import Order
from .tables import order_counts, order_totals, orders_per_minute

ORDER_FORM = """<!doctype html>
<title>Place an order</title>
<form method="post">
  <label>Account <input name="account" required></label>
  <label>Product <input name="product" required></label>
  <label>Amount <input name="amount" type="number" required></label>
  <button>Order</button>
</form>
"""


@csrf_exempt
@require_http_methods(["GET", "POST"])
def place_order(request: HttpRequest) -> HttpResponse:
    """GET: the order form. POST (form fields or JSON): send the order.

    ::

        curl -X POST localhost:6066/orders/ \\
             -d '{"account": "alice", "product": "book", "amount": 3}'
    """
    if request.method == "GET":
        return HttpResponse(ORDER_FORM)
    try:
        body = request.body.strip()
        # curl -d sends JSON as a form post: look at the body itself.
        data = json.loads(body) if body.startswith(b"{") else request.POST.dict()
        order = Order.from_data(data)
    except (ValueError, TypeError) as exc:  # RecordValidationError is a ValueError
        status = 422 if isinstance(exc, RecordValidationError) else 400
        return JsonResponse({"error": str(exc)}, status=status)
    # Waits until the broker has stored the order (or raises).
    metadata = orders_topic.send_sync(key=order.account, value=order, timeout=10)
    return JsonResponse(
        {
            "order": order.asdict(),
            "topic": metadata.topic,
            "partition": metadata.partition,
            "offset": metadata.offset,
            # The agent counts the order a moment later: this is the count
            # before it (GET /orders/counts/ shows the latest).
            "orders_counted": order_counts.get(order.account, 0),
        },
        status=202,
    )


@require_GET
async def counts(request: HttpRequest) -> JsonResponse:
    """The tables kept by the ``process_order`` agent, per account."""
    return JsonResponse(
        {
            account: {"orders": order_counts[account], "total": order_totals[account]}
            for account in sorted(order_counts)
        }
    )


@app.page("count/<str:account>/")
@app.table_route(table=order_counts, match_info="account", topic=orders_topic)
async def count(request: HttpRequest, account: str) -> JsonResponse:
    """The number of orders of ``account``, from the worker that holds it.

    ``topic=orders_topic``: the orders are keyed by the account's raw text,
    so that topic (not the table's JSON changelog) says which partition, and
    hence which worker, holds the account.
    """
    return JsonResponse({"account": account, "orders": order_counts[account]})


@require_GET
async def dashboard(request: HttpRequest) -> HttpResponse:
    """Orders per account and per minute, updated live over a WebSocket."""
    minutes = per_minute_totals()
    return render(
        request,
        "orders/dashboard.html",
        {
            "accounts": [
                (account, order_counts[account], order_totals[account])
                for account in sorted(order_counts)
            ],
            "minutes": minutes,
        },
    )


def per_minute_totals(windows: int = 10) -> list[list[object]]:
    """``[window start, {account: orders}]`` of the latest minutes, oldest first."""
    table = orders_per_minute.table
    window = table.window
    assert window is not None
    latest = window.current(time.time()).start
    starts = [latest - i * window.size for i in range(windows)][::-1]
    counts: dict[float, dict[str, int]] = {start: {} for start in starts}
    for (account, start), count in table.items():
        if start in counts:
            counts[start][account] = count
    return [[start, counts[start]] for start in starts]
