"""The payload of the ``orders`` topic."""

from django_faust import Record


class Order(Record, validation=True):
    """One order placed by an account.

    ``validation=True`` checks the field types whenever an order is built or
    decoded: ``"amount": "3"`` becomes ``3``, while a message without a
    product, or with ``"amount": "lots"``, fails to decode and goes to the
    dead-letter topic instead of reaching the agent.
    """

    account: str
    product: str
    amount: int


class OrderChange(Record):
    """A `StoredOrder` row as published by ``signals.py`` after each commit."""

    id: int
    account: str
    product: str
    amount: int
    created: bool
