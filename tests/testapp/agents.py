"""Agents discovered from an installed app, as a user would write them."""

from django_faust import app

greetings = app.topic("tests-greetings", value_type=str)
seen: list[str] = []


@app.agent(greetings)
async def greet(stream):
    """Collect greetings (used by the autodiscovery tests)."""
    async for name in stream:
        seen.append(name)
        yield f"hello {name}"


#: Orders per account, for the web tests (pages with a table route).
orders = app.topic("tests-orders", key_type=str, value_type=int)
order_counts = app.Table(
    "order-counts", default=int, key_type=str, key_serializer="raw"
)


@app.agent(orders)
async def count_orders(stream):
    """Count orders per account (the key)."""
    async for event in stream.events():
        order_counts[event.key] += 1
