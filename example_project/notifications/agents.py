"""The agent that delivers notifications (here: writes them to the log)."""

import logging

from django_faust import app, current_event

from .topics import notifications_topic

logger = logging.getLogger(__name__)


@app.agent(notifications_topic)
async def notify(notifications):
    """Log one line per notification, with where it was read from."""
    async for notification in notifications:
        # The event behind the value: its key, headers and position.
        event = current_event()
        message = event.message
        logger.info(
            "Notify %s: %s  (key=%r, %s[%d]@%d)",
            notification.account,
            notification.text,
            event.key,
            message.topic,
            message.partition,
            message.offset,
        )
