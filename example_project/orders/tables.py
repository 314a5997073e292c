"""Tables of the orders app: state the ``process_order`` agent keeps.

Tables are written only by an agent while it handles an event; anything else
(views, commands) may read them.
"""

from django_faust import app

#: Number of orders seen per account.
order_counts = app.Table("order-counts", default=int)

#: Sum of the amounts ordered per account.
order_totals = app.Table("order-totals", default=int)
