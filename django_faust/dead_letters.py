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
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .exceptions import (
    ImproperlyConfigured,
    PoisonEventError,
    RecordValidationError,
)
from .types import TP

if TYPE_CHECKING:
    from .app.base import App
    from .channels import Channel

__all__ = [
    "HEADER_PREFIX",
    "POLICIES",
    "STAGES",
    "DeadLetter",
    "DeadLetters",
    "read_dead_letters",
    "replay",
    "select",
    "stage_of",
]

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
        self.app.sensors.on_dead_letter(message.topic)
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


# -- reading and replaying the dead-letter topic ---------------------------------


@dataclass(frozen=True)
class DeadLetter:
    """One record of the dead-letter topic, with where it came from."""

    #: Where it sits in the dead-letter topic.
    partition: int
    offset: int
    #: Where it was read from, what failed and why.
    topic: str
    source_partition: int
    source_offset: int
    stage: str
    error: str
    agent: str | None
    #: The original bytes and headers, as the failed event carried them.
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @classmethod
    def from_message(cls, message: Any) -> DeadLetter:
        ours: dict[str, str] = {}
        original: list[tuple[str, bytes]] = []
        for name, data in message.headers or ():
            if name.startswith(HEADER_PREFIX):
                ours[name[len(HEADER_PREFIX) :]] = bytes(data).decode(
                    "utf-8", "replace"
                )
            else:
                original.append((name, bytes(data)))

        def number(name: str) -> int:
            try:
                return int(ours.get(name, "-1"))
            except ValueError:
                return -1

        return cls(
            partition=message.partition,
            offset=message.offset,
            topic=ours.get("topic", ""),
            source_partition=number("partition"),
            source_offset=number("offset"),
            stage=ours.get("stage", ""),
            error=ours.get("error", ""),
            agent=ours.get("agent"),
            key=message.key,
            value=message.value,
            headers=tuple(original),
        )

    @property
    def source(self) -> str:
        return f"{self.topic}[{self.source_partition}]@{self.source_offset}"


def preview(data: bytes | None, width: int = 24) -> str:
    """A short printable form of ``data`` for listings."""
    if data is None:
        return "-"
    text = repr(bytes(data))[2:-1]
    return text if len(text) <= width else text[: width - 1] + "…"


def select(
    letters: Iterable[DeadLetter],
    *,
    topic: str | None = None,
    agent: str | None = None,
    partition: int | None = None,
    offsets: tuple[int, int] | None = None,
) -> list[DeadLetter]:
    """The letters from ``topic``/``agent``/``partition``, source offsets in range.

    ``offsets`` is an inclusive ``(first, last)`` range of source offsets.
    """
    chosen = []
    for letter in letters:
        if topic is not None and letter.topic != topic:
            continue
        if agent is not None and letter.agent != agent:
            continue
        if partition is not None and letter.source_partition != partition:
            continue
        if offsets is not None and not (
            offsets[0] <= letter.source_offset <= offsets[1]
        ):
            continue
        chosen.append(letter)
    return chosen


async def read_dead_letters(app: App, *, timeout: float = 30.0) -> list[DeadLetter]:
    """Every record of the app's dead-letter topic, oldest first per partition.

    Reads outside the consumer group, to the end of each partition as it is
    when the read starts; the app must be started (`App.start_client`).
    """
    producer = await app.maybe_start_producer()
    name = app.conf.dead_letter_topic
    partitions = await producer.partitions_for(name)
    reader = app.transport.create_reader({TP(name, p): 0 for p in partitions})
    await reader.start()
    letters: list[DeadLetter] = []
    try:
        left = {TP(name, p) for p in partitions}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while left:
            for tp in list(left):
                highwater = reader.highwater(tp)
                if highwater is not None and reader.position(tp) >= highwater:
                    left.discard(tp)
            if not left:
                break
            if loop.time() > deadline:
                raise TimeoutError(
                    f"Reading dead-letter topic {name!r} did not reach its end "
                    f"within {timeout:.0f}s (partitions left: "
                    f"{sorted(tp.partition for tp in left)})."
                )
            letters.extend(
                DeadLetter.from_message(m) for m in await reader.getmany(0.5)
            )
    finally:
        await reader.stop()
    letters.sort(key=lambda letter: (letter.partition, letter.offset))
    return letters


async def replay(app: App, letters: Iterable[DeadLetter]) -> int:
    """Send each letter's original bytes back to its topic and partition.

    Waits until the broker has them all; returns how many were sent. A
    letter that lost its origin headers is refused, naming its position.
    """
    producer = await app.maybe_start_producer()
    futures = []
    for letter in letters:
        if not letter.topic or letter.source_partition < 0:
            raise ValueError(
                f"Dead letter {letter.partition}@{letter.offset} has no "
                f"{HEADER_PREFIX}topic/partition header: cannot replay it."
            )
        futures.append(
            await producer.send(
                letter.topic,
                letter.key,
                letter.value,
                partition=letter.source_partition,
                headers=letter.headers,
            )
        )
    await producer.flush()
    await asyncio.gather(*futures)
    return len(futures)
