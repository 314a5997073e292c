"""Topics: named, partitioned channels that live on the broker.

A `Topic` is a *description* (names, types, serializers, partition count). It
becomes a source of events when a stream subscribes to it: every subscription
is registered with the app's conductor and receives every message of the
topic, so two agents on one topic each see all of it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from .channels import Channel, Subscription, _normalize_headers
from .exceptions import ImproperlyConfigured
from .types import RecordMetadata

if TYPE_CHECKING:
    from .app.base import App

__all__ = ["Topic"]

logger = logging.getLogger(__name__)


class Topic(Channel):
    """A description of one (or several) topics on the broker.

    ``key_type``/``value_type`` name the model or type keys and values decode
    to; ``key_serializer``/``value_serializer`` default to the app's
    ``KEY_SERIALIZER``/``VALUE_SERIALIZER``. ``partitions``, ``replicas``,
    ``retention``, ``compacting``, ``deleting`` and ``config`` are used when
    the topic is declared (created) by us; ``internal=True`` marks topics we
    own (changelogs, repartition and reply topics), the only ones we create
    with our settings. ``acks=False`` leaves acknowledging to user code.
    """

    is_topic = True

    def __init__(
        self,
        app: App,
        *,
        topics: Sequence[str],
        key_type: Any = None,
        value_type: Any = None,
        key_serializer: Any = None,
        value_serializer: Any = None,
        partitions: int | None = None,
        retention: float | timedelta | None = None,
        compacting: bool | None = None,
        deleting: bool | None = None,
        replicas: int | None = None,
        acks: bool = True,
        internal: bool = False,
        config: Mapping[str, Any] | None = None,
        maxsize: int | None = None,
    ) -> None:
        super().__init__(app, key_type=key_type, value_type=value_type, maxsize=maxsize)
        if isinstance(topics, str):
            topics = (topics,)
        if not topics:
            raise ImproperlyConfigured("A topic needs at least one name.")
        for name in topics:
            if not isinstance(name, str) or not name:
                raise ImproperlyConfigured(
                    f"Topic names must be strings, got {name!r}."
                )
        self.topics = tuple(topics)
        self.key_serializer = key_serializer
        self.value_serializer = value_serializer
        self.partitions = partitions
        if isinstance(retention, timedelta):
            retention = retention.total_seconds()
        self.retention = retention
        self.compacting = compacting
        self.deleting = deleting
        self.replicas = replicas
        self.acks = acks
        self.internal = internal
        self.config = dict(config or {})
        self._decode_key: Callable[[Any], Any] | None = None
        self._decode_value: Callable[[Any], Any] | None = None
        self._encode_key: Callable[[Any], Any] | None = None
        self._encode_value: Callable[[Any], Any] | None = None
        self._single_name: str | None = None

    # -- identity ----------------------------------------------------------

    @property
    def label(self) -> str:
        return f"Topic: {', '.join(self.topics)}"

    @property
    def topic_names(self) -> frozenset[str]:
        return frozenset(self.topics)

    def get_topic_name(self) -> str:
        """The one topic this description names (sending needs exactly one)."""
        if len(self.topics) != 1:
            raise ImproperlyConfigured(
                f"{self.label} names several topics; send to one of them."
            )
        return self.topics[0]

    def derive(self, **kwargs: Any) -> Topic:
        """A copy of this description with some arguments changed."""
        params: dict[str, Any] = {
            "topics": self.topics,
            "key_type": self.key_type,
            "value_type": self.value_type,
            "key_serializer": self.key_serializer,
            "value_serializer": self.value_serializer,
            "partitions": self.partitions,
            "retention": self.retention,
            "compacting": self.compacting,
            "deleting": self.deleting,
            "replicas": self.replicas,
            "acks": self.acks,
            "internal": self.internal,
            "config": self.config,
            "maxsize": self.maxsize,
        }
        params.update(kwargs)
        return type(self)(self.app, **params)

    # -- codecs --------------------------------------------------------------

    def _key_serializer(self) -> Any:
        if self.key_serializer is not None:
            return self.key_serializer
        return self.app.conf.key_serializer

    def _value_serializer(self) -> Any:
        if self.value_serializer is not None:
            return self.value_serializer
        return self.app.conf.value_serializer

    @property
    def decode_key(self) -> Callable[[Any], Any]:  # type: ignore[override]
        fun = self._decode_key
        if fun is None:
            from .serializers import registry

            fun = self._decode_key = registry.key_decoder(
                self.key_type, self._key_serializer()
            )
        return fun

    @property
    def decode_value(self) -> Callable[[Any], Any]:  # type: ignore[override]
        fun = self._decode_value
        if fun is None:
            from .serializers import registry

            fun = self._decode_value = registry.value_decoder(
                self.value_type, self._value_serializer()
            )
        return fun

    def encode_key(self, key: Any, serializer: Any = None) -> bytes | None:
        if serializer is not None:
            from .serializers import registry

            return registry.key_encoder(self.key_type, serializer)(key)
        fun = self._encode_key
        if fun is None:
            from .serializers import registry

            fun = self._encode_key = registry.key_encoder(
                self.key_type, self._key_serializer()
            )
        return fun(key)

    def encode_value(self, value: Any, serializer: Any = None) -> bytes | None:
        if serializer is not None:
            from .serializers import registry

            return registry.value_encoder(self.value_type, serializer)(value)
        fun = self._encode_value
        if fun is None:
            from .serializers import registry

            fun = self._encode_value = registry.value_encoder(
                self.value_type, self._value_serializer()
            )
        return fun(value)

    # -- reading -------------------------------------------------------------

    def subscribe(self) -> Subscription:
        """A new subscription that receives every message of these topics."""
        sub = Subscription(self, self.buffer_size())
        self.app.conductor.add(sub)
        return sub

    # -- writing -------------------------------------------------------------

    async def send(
        self,
        *,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Any = None,
        key_serializer: Any = None,
        value_serializer: Any = None,
        callback: Callable[[asyncio.Future[RecordMetadata]], Any] | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        """Hand a message to the producer; returns its delivery future.

        Like Faust, this returns once the producer has *accepted* the message:
        await the returned future (or use `send_and_wait`) for the broker's
        `RecordMetadata`. Every accepted message is flushed before any offset
        is committed, so an agent that sends and then moves on stays
        at-least-once without waiting for each round trip.
        """
        producer = await self.app.maybe_start_producer()
        name = self.get_topic_name()
        started = time.monotonic()
        fut = await producer.send(
            name,
            self.encode_key(key, key_serializer),
            self.encode_value(value, value_serializer),
            partition=partition,
            timestamp=timestamp,
            headers=_normalize_headers(headers),
        )
        fut.add_done_callback(_send_sensor(self.app.sensors, name, started))
        if callback is not None:
            fut.add_done_callback(callback)
        return fut

    async def send_and_wait(self, **kwargs: Any) -> RecordMetadata:
        """Send and wait for the broker to acknowledge the message."""
        fut = await self.send(**kwargs)
        return await fut

    def send_soon(
        self,
        *,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Any = None,
        key_serializer: Any = None,
        value_serializer: Any = None,
        callback: Callable[[asyncio.Future[RecordMetadata]], Any] | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        """Send without awaiting (for sync code inside the event loop).

        The producer logs a failure with the topic name (it is never
        swallowed silently) and sets it on the returned future. The message
        is flushed before the next commit.
        """
        name = self._single_name
        if name is None:
            name = self._single_name = self.get_topic_name()
        started = time.monotonic()
        fut = self.app.producer.send_soon(
            name,
            self.encode_key(key, key_serializer),
            self.encode_value(value, value_serializer),
            partition=partition,
            timestamp=timestamp,
            headers=_normalize_headers(headers) if headers else (),
        )
        fut.add_done_callback(_send_sensor(self.app.sensors, name, started))
        if callback is not None:
            fut.add_done_callback(callback)
        return fut

    # -- declaring -------------------------------------------------------------

    async def declare(self) -> None:
        """Create the topics on the broker if we own them.

        Topics the user owns (``internal=False``) are only created when they
        do not exist yet, never altered.
        """
        conf = self.app.conf
        producer = await self.app.maybe_start_producer()
        for name in self.topics:
            await producer.create_topic(
                name,
                partitions=self.partitions or conf.topic_partitions,
                replication=self.replicas or conf.topic_replication_factor,
                config=self.config,
                compacting=self.compacting,
                deleting=self.deleting,
                retention=self.retention,
            )


def _send_sensor(
    sensors: Any, topic: str, started: float
) -> Callable[[asyncio.Future[RecordMetadata]], None]:
    """A done callback telling the sensors how a send went, and how long it took."""

    def _sent(done: asyncio.Future[RecordMetadata]) -> None:
        error = None if done.cancelled() else done.exception()
        sensors.on_send(topic, time.monotonic() - started, error)

    return _sent
