"""Where events go that cannot be processed: the dead-letter topic.

A message whose key or value cannot be decoded, or that made an agent raise,
is logged with its topic, partition and offset, and its original bytes are
sent to the dead-letter topic (``DEAD_LETTER_TOPIC``, by default
``<id>-dead-letters``; created when the app starts) with headers that say
where it came from and why.
Then it is acknowledged, so its partition can move on. Nothing is dropped
silently and the worker keeps running.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app.base import App
    from .channels import Channel

__all__ = ["DeadLetters"]

logger = logging.getLogger(__name__)

HEADER_PREFIX = "django_faust."


class DeadLetters:
    """Sends failed messages aside, with the reason in headers."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.total = 0

    @property
    def topic_name(self) -> str:
        return self.app.conf.dead_letter_topic

    async def declare(self) -> None:
        """Create the dead-letter topic, as the app's other internal topics.

        Called when the app starts, so the topic gets TOPIC_PARTITIONS and
        TOPIC_REPLICATION_FACTOR (not whatever the broker would auto-create
        on the first failure), and a missing topic is reported at start when
        TOPIC_ALLOW_DECLARE is off.
        """
        await self.app.topic(self.topic_name, internal=True).declare()

    def undecodable(self, channel: Channel, message: Any, exc: BaseException) -> None:
        """A message of ``channel`` could not be decoded."""
        logger.error(
            "Could not decode message %s[%s]@%s: %s. Sent to %r.",
            message.topic,
            message.partition,
            message.offset,
            exc,
            self.topic_name,
        )
        self._send(message, "decode", exc)

    def failed(self, agent: Any, message: Any, exc: BaseException) -> None:
        """``agent`` raised while processing ``message``."""
        logger.error(
            "Agent %s raised %r on message %s[%s]@%s. Sent to %r.",
            agent.name,
            exc,
            message.topic,
            message.partition,
            message.offset,
            self.topic_name,
            exc_info=exc,
        )
        self._send(message, "agent", exc, agent=agent.name)

    def _send(
        self, message: Any, stage: str, exc: BaseException, agent: str | None = None
    ) -> None:
        self.total += 1
        self.app.sensors.on_dead_letter(message.topic)
        key, value = message.key, message.value
        if not _is_bytes(key) or not _is_bytes(value):
            # A local channel carries Python objects: the log line above is
            # the record of it; there are no bytes to send aside.
            return
        headers = list(message.headers or ())
        headers += [
            (HEADER_PREFIX + "stage", stage.encode()),
            (HEADER_PREFIX + "error", repr(exc).encode("utf-8", "replace")[:4096]),
            (HEADER_PREFIX + "topic", str(message.topic).encode()),
            (HEADER_PREFIX + "partition", str(message.partition).encode()),
            (HEADER_PREFIX + "offset", str(message.offset).encode()),
        ]
        if agent is not None:
            headers.append((HEADER_PREFIX + "agent", agent.encode()))
        producer = self.app.producer
        fut = producer.send_soon(self.topic_name, key, value, headers=headers)
        fut.add_done_callback(self._log_failure)

    def _log_failure(self, fut: Any) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            logger.critical(
                "Could not write to dead-letter topic %r: %r",
                self.topic_name,
                fut.exception(),
            )


def _is_bytes(data: Any) -> bool:
    return data is None or isinstance(data, (bytes, bytearray, memoryview))
