"""Async views that talk to the stream processor.

When ``manage.py faust worker`` serves the site, these views run in the
worker's event loop: ``await app.send(...)`` hands the order to the same
producer the agents use, and the tables they read are the ones the agent is
updating.
"""

import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from django_faust import app
from django_faust.exceptions import RecordValidationError

from .agents import orders_topic
from .records import Order
from .tables import order_counts, order_totals


@csrf_exempt
@require_POST
async def place_order(request: HttpRequest) -> JsonResponse:
    """Send the order in the JSON body to the ``orders`` topic.

    ::

        curl -X POST localhost:6066/orders/ \\
             -d '{"account": "alice", "product": "book", "amount": 3}'
    """
    try:
        data = json.loads(request.body or b"{}")
        order = Order.from_data(data)
    except (ValueError, TypeError) as exc:  # RecordValidationError is a ValueError
        status = 422 if isinstance(exc, RecordValidationError) else 400
        return JsonResponse({"error": str(exc)}, status=status)
    # Returns as soon as the producer has accepted the order; awaiting the
    # future it gives waits until the broker has stored it.
    delivery = await app.send(orders_topic, key=order.account, value=order)
    metadata = await delivery
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
