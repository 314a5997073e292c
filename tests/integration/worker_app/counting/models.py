"""Models of the worker project: orders published on commit, notes agents write."""

from __future__ import annotations

from django.db import models


class Order(models.Model):
    """Every saved order is published to the ``order-rows`` topic (``signals.py``)."""

    account = models.CharField(max_length=40)
    amount = models.IntegerField()


class Note(models.Model):
    """Written by the ``take_notes`` agent through `database_sync_to_async`."""

    text = models.CharField(max_length=100)
    pid = models.IntegerField()
