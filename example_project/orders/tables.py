"""Tables of the orders app: state the ``process_order`` agent keeps.

Tables are written only by an agent while it handles an event; anything else
(views, commands) may read them.
"""

from django_faust import app

from .records import Order

#: Number of orders seen per account.
order_counts = app.Table("order-counts", default=int)

#: Sum of the amounts ordered per account.
order_totals = app.Table("order-totals", default=int)

#: The latest order of each account: a Record value, shown field by field in
#: the admin.
last_orders = app.Table("last-order", value_type=Order)

#: Orders per account and minute, forgotten after an hour. Keyed by account
#: like the orders topic, so each entry is written from one partition; the
#: dashboard charts the sum over accounts.
orders_per_minute = app.Table("orders-per-minute", default=int).tumbling(
    60, expires=3600
)
