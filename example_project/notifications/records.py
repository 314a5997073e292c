"""The payload of the ``notifications`` topic."""

from django_faust import Record


class Notification(Record):
    """Something an account should hear about."""

    account: str
    text: str
