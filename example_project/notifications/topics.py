"""The ``notifications`` topic, shared by every app that notifies.

Keys are account names (``key_type=str`` decodes them back to text), so all
notifications of one account land in the same partition, in order.
"""

from django_faust import app

from .records import Notification

notifications_topic = app.topic("notifications", key_type=str, value_type=Notification)
