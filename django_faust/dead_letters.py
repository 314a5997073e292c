"""Where events go that cannot be processed: the dead-letter topic.

An event is *poison* when its key or value cannot be decoded, its value
fails its Record's validation, or an agent raised on it. Each one is logged
once, with its topic, partition, offset and the reason, and then handled by
the ``POISON_POLICY`` of the app (or the agent's ``poison_policy=``):

``dead_letter`` (default)
    Its original bytes go to the dead-letter topic (``DEAD_LETTER_TOPIC``,
    by default ``<id>-dead-letters``; created when the app starts) with
    headers saying where it came from and why; it is acknowledged, so its
    partition moves on.
``skip``
    Only the log line; it is acknowledged.
``stop``
    It is *not* acknowledged, so no commit reaches it, and the app crashes
    with a `PoisonEventError`: the worker stops with an error, and after a
    restart the event is read again (once the cause is fixed).

``manage.py faust dead-letters`` lists and replays what the topic holds.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from .exceptions import (
    ImproperlyConfigured,
    PoisonEventError,
    RecordValidationError,
)

if TYPE_CHECKING:
    from .app.base import App
    from .channels import Channel

__all__ = ["HEADER_PREFIX", "POLICIES", "STAGES", "DeadLetters", "stage_of"]

logger = logging.getLogger(__name__)

HEADER_PREFIX = "django_faust."

#: The values of POISON_POLICY and of an agent's ``poison_policy``.
POLICIES = ("dead_letter", "skip", "stop")

#: What failed, as the ``django_faust.stage`` header says.
STAGES = ("key", "value", "validation", "agent")


def stage_of(exc: BaseException, default: str) -> str:
    """'validation' when a Record's validation failed (even wrapped)."""
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        if isinstance(error, RecordValidationError):
            return "validation"
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return default


def check_policy(policy: str | None, where: str) -> str | None:
    """Refuse an unknown ``poison_policy`` where it is given."""
    if policy is not None and policy not in POLICIES:
        raise ImproperlyConfigured(
            f"{where}: poison_policy must be one of {', '.join(POLICIES)}, "
            f"got {policy!r}."
        )
    return policy


class DeadLetters:
    """Logs poison events and sends them aside, skips them or stops at them."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.total = 0
        #: The event the app stopped at (policy 'stop'), if any.
        self.stopped_at: PoisonEventError | None = None

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

    def policy(self, agent: Any = None) -> str:
        """The policy of ``agent`` (its own, else POISON_POLICY)."""
        own = getattr(agent, "poison_policy", None)
        return own or self.app.conf.poison_policy

    def undecodable(
        self,
        channel: Channel,
        message: Any,
        exc: BaseException,
        *,
        part: str = "value",
        agent: Any = None,
    ) -> bool:
        """The key or value (``part``) of a message of ``channel`` is bad.

        Returns whether the message may be acknowledged (False: stop).
        """
        stage = stage_of(exc, part)
        what = {
            "key": "Could not decode the key of",
            "value": "Could not decode the value of",
            "validation": "Validation failed for",
        }[stage]
        return self._handle(f"{what} message", message, stage, exc, agent)

    def failed(self, agent: Any, message: Any, exc: BaseException) -> bool:
        """``agent`` raised while processing ``message``.

        Returns whether the message may be acknowledged (False: stop).
        """
        return self._handle(
            f"Agent {agent.name} raised on message",
            message,
            "agent",
            exc,
            agent,
            exc_info=exc,
        )

    # -- the one place a poison event is logged and handled -----------------------

    def _handle(
        self,
        what: str,
        message: Any,
        stage: str,
        exc: BaseException,
        agent: Any,
        exc_info: BaseException | None = None,
    ) -> bool:
        policy = self.policy(agent)
        where = f"{message.topic}[{message.partition}]@{message.offset}"
        self.total += 1
        self.app.monitor.on_dead_letter(message.topic)
        if policy == "stop":
            error = PoisonEventError(
                f"{what} {where}: {exc!r}. POISON_POLICY is 'stop': the worker "
                f"stops and commits nothing from this offset on; fix the cause "
                f"(or choose 'dead_letter'/'skip') and restart.",
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                stage=stage,
            )
            logger.critical("%s", error, exc_info=exc_info)
            self._stop(error, exc)
            return False
        if policy == "skip":
            logger.error(
                "%s %s: %r. Skipped (POISON_POLICY 'skip').",
                what,
                where,
                exc,
                exc_info=exc_info,
            )
            return True
        logger.error(
            "%s %s: %r. Sent to %r.",
            what,
            where,
            exc,
            self.topic_name,
            exc_info=exc_info,
        )
        self._send(message, stage, exc, agent=getattr(agent, "name", None))
        return True

    def _stop(self, error: PoisonEventError, cause: BaseException) -> None:
        error.__cause__ = cause
        if self.stopped_at is None:
            self.stopped_at = error
            # The crash stops the worker (it waits on it), without mode's
            # traceback: the line above is the one record of the event. The
            # event stays unacknowledged.
            self.app._crash(error)

    def _send(
        self, message: Any, stage: str, exc: BaseException, agent: str | None = None
    ) -> None:
        key, value = message.key, message.value
        if not _is_bytes(key) or not _is_bytes(value):
            # A local channel carries Python objects: the log line is the
            # record of it; there are no bytes to send aside.
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

    def _log_failure(self, fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            logger.critical(
                "Could not write to dead-letter topic %r: %r",
                self.topic_name,
                fut.exception(),
            )


def _is_bytes(data: Any) -> bool:
    return data is None or isinstance(data, (bytes, bytearray, memoryview))
