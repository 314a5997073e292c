"""A model whose changes are published to a topic (see ``signals.py``)."""

from django.db import models


class StoredOrder(models.Model):
    """An order kept in the database; saving or deleting one publishes it."""

    account = models.CharField(max_length=100)
    product = models.CharField(max_length=100)
    amount = models.IntegerField()
