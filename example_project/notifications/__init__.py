"""Notifications: an app whose agent reports big orders.

It knows nothing about orders: any app may send a `Notification` to the
``notifications`` topic declared in ``topics.py``.
"""
