"""Publish every change of a `StoredOrder` once its transaction commits.

The recipe of docs/sending.rst: ``post_save`` and ``post_delete`` send with
``send_on_commit``, keyed by primary key (every change of one row goes to one
partition, in order), with a record built from the instance; a deleted row
becomes a tombstone (``None``). A save that is rolled back publishes
nothing. Try it after ``manage.py migrate``::

    python manage.py shell -c "from orders.models import StoredOrder; \
        StoredOrder.objects.create(account='ann', product='tea', amount=3)"
"""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .agents import order_changes_topic
from .models import StoredOrder
from .records import OrderChange


@receiver(post_save, sender=StoredOrder, dispatch_uid="orders.publish_change")
def publish_change(sender, instance, created, **kwargs):
    order_changes_topic.send_on_commit(
        key=instance.pk,
        value=OrderChange(
            id=instance.pk,
            account=instance.account,
            product=instance.product,
            amount=instance.amount,
            created=created,
        ),
    )


@receiver(post_delete, sender=StoredOrder, dispatch_uid="orders.publish_delete")
def publish_delete(sender, instance, **kwargs):
    order_changes_topic.send_on_commit(key=instance.pk, value=None)
