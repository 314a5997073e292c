"""Stream processing of the orders app.

``process_order`` reads the ``orders`` topic, counts orders per account in a
table and sends a notification for every big order. The ``fake_orders``
timer invents an order now and then, so a freshly started worker has work to
show; the views in ``views.py`` send real ones (the dashboard at
``/orders/dashboard/`` shows the tables change live).
"""

import asyncio
import logging
import random

import click
from notifications.records import Notification
from notifications.topics import notifications_topic

from django_faust import app

from .records import Order, OrderChange
from .tables import last_orders, order_counts, order_totals, orders_per_minute

logger = logging.getLogger(__name__)

#: Orders of at least this amount trigger a notification.
BIG_ORDER = 70

ACCOUNTS = ["alice", "bob", "carol", "dave"]
PRODUCTS = ["book", "coffee", "lamp", "tea", "umbrella"]

#: Orders are keyed by account: every order of one account is in the same
#: partition, processed in the order it was placed, by the worker that holds
#: that account's table entries.
orders_topic = app.topic("orders", key_type=str, value_type=Order)

#: Changes of `StoredOrder` rows, published after commit by ``signals.py``.
order_changes_topic = app.topic(
    "order-changes", key_type=int, key_serializer="json", value_type=OrderChange
)


@app.agent(orders_topic)
async def process_order(orders):
    """Count orders per account; notify about big ones."""
    async for order in orders:
        if order.amount <= 0:
            # Raising here does not stop the worker: the event goes to the
            # dead-letter topic (example-dead-letters) with the error in its
            # headers, and the agent restarts with the next order.
            raise ValueError(f"order amounts must be positive, got {order.amount}")
        order_counts[order.account] += 1
        order_totals[order.account] += order.amount
        last_orders[order.account] = order
        orders_per_minute[order.account] += 1
        logger.info(
            "Order: %s bought %s for %d (%s: orders %d, total %d)",
            order.account,
            order.product,
            order.amount,
            order.account,
            order_counts[order.account],
            order_totals[order.account],
        )
        if order.amount >= BIG_ORDER:
            await notifications_topic.send(
                key=order.account,
                value=Notification(
                    account=order.account,
                    text=f"thank you for your big order of {order.product} "
                    f"({order.amount})!",
                ),
            )


def random_order() -> Order:
    return Order(
        account=random.choice(ACCOUNTS),
        product=random.choice(PRODUCTS),
        amount=random.randint(1, 100),
    )


@app.timer(1.0)
async def fake_orders():
    """Place a random order every second."""
    order = random_order()
    logger.debug("Timer: placing %r", order)
    await orders_topic.send(key=order.account, value=order)


@app.command(
    click.option(
        "--count",
        type=click.IntRange(1),
        default=10,
        show_default=True,
        help="How many random orders to send.",
    ),
    click.option(
        "--timeout",
        type=float,
        default=10.0,
        show_default=True,
        help="Seconds to wait for the agent to count them.",
    ),
)
async def simulate(count: int, timeout: float) -> None:
    """Run the agents over random orders, then print the counts.

    It starts the app in this process (agents and timers, no web server), so
    it suits the memory:// broker: with Kafka, the partitions read by other
    workers are counted there.
    """
    if not logging.getLogger().handlers:
        # Show the agents' log lines, as the worker would.
        logging.basicConfig(
            level=logging.INFO, format="[%(levelname)s] %(name)s: %(message)s"
        )
    await app.start()
    try:
        seen_before = sum(order_counts.values())
        for _ in range(count):
            order = random_order()
            await app.send(orders_topic, key=order.account, value=order)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while sum(order_counts.values()) < seen_before + count:
            if loop.time() > deadline:
                raise click.ClickException(
                    f"The agent did not count {count} orders within {timeout}s."
                )
            await asyncio.sleep(0.05)
    finally:
        await app.stop()
    for account in sorted(order_counts):
        click.echo(
            f"{account:8} {order_counts[account]:4} orders  "
            f"{order_totals[account]:6} in total"
        )
