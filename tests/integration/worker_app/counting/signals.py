"""Publishing a model's changes: the recipe of docs/sending.rst.

Every saved `Order` is sent to the ``order-rows`` topic keyed by its primary key,
as an `OrderRecord` built from the instance, and a deleted one as a
tombstone (``None``). `send_on_commit` sends only once the transaction that
saved it commits: a rolled-back save is never published.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .agents import OrderRecord, order_rows_topic
from .models import Order


@receiver(post_save, sender=Order, dispatch_uid="counting.publish_order")
def publish_order(sender: Any, instance: Order, **kwargs: Any) -> None:
    order_rows_topic.send_on_commit(
        key=instance.pk,
        value=OrderRecord(
            id=instance.pk, account=instance.account, amount=instance.amount
        ),
    )


@receiver(post_delete, sender=Order, dispatch_uid="counting.unpublish_order")
def unpublish_order(sender: Any, instance: Order, **kwargs: Any) -> None:
    order_rows_topic.send_on_commit(key=instance.pk, value=None)
