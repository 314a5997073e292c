"""Topics: named, partitioned channels that live on the broker.

A `Topic` is a *description* (names, types, serializers, partition count). It
becomes a source of events when a stream subscribes to it: every subscription
is registered with the app's conductor and receives every message of the
topic, so two agents on one topic each see all of it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from . import client
from .channels import Channel, Subscription, _normalize_headers
from .exceptions import EncodeError, ImproperlyConfigured, RecordValidationError
from .models import Record
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
        #: Whether mappings sent here are checked against a Record value_type.
        self._checks_mappings: bool | None = None
        self._report: _SendReporter | None = None

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

    def _reporter(self, name: str) -> _SendReporter:
        """The one `SendReport` of this topic: it tells the app's sensors."""
        report = self._report
        if report is None:
            report = self._report = _SendReporter(self.app.sensors, name)
        return report

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
        app = self.app
        if app.running_loop is not asyncio.get_running_loop() and (
            loop := await client.target_loop_async(app)
        ):
            # Called from another loop than the producer's (an async view
            # under uvicorn): hand over, get a future of this loop back.
            return await client.send_from_other_loop(
                self,
                loop,
                callback,
                key=key,
                value=value,
                partition=partition,
                timestamp=timestamp,
                headers=headers,
                key_serializer=key_serializer,
                value_serializer=value_serializer,
            )
        name, key_bytes, value_bytes, header_pairs = self.prepare(
            key, value, headers, key_serializer, value_serializer
        )
        producer = app.producer
        if not producer.started:
            producer = await app.maybe_start_producer()
        fut = await producer.send(
            name,
            key_bytes,
            value_bytes,
            partition=partition,
            timestamp=timestamp,
            headers=header_pairs,
            report=self._report or self._reporter(name),
        )
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
    ) -> Any:
        """Send without waiting, from sync code anywhere.

        Inside the App's event loop (sync code called by an agent) it
        returns an `asyncio.Future`; from any other thread or loop (a WSGI
        view, a management command) a `concurrent.futures.Future`, after
        handing the message to the App's loop or to this process's client
        loop (see ``client.py``). Either resolves to the broker's
        `RecordMetadata`. A bad key or value raises here, naming the topic;
        a failed delivery is logged with the topic name (never swallowed)
        and set on the future. The message is flushed before the next
        commit, and at exit.
        """
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        app = self.app
        owner = app.running_loop
        if (
            here is None
            or (owner is not None and owner is not here)
            or (owner is None and client.needs_own_loop(app))
        ):
            # Another thread, or a loop the producer does not run on (the
            # first send there starts this process's client).
            owner = client.owner_loop(app)  # None if that loop is gone
            result = client.send_soon(
                self,
                key=key,
                value=value,
                partition=partition,
                timestamp=timestamp,
                headers=headers,
                key_serializer=key_serializer,
                value_serializer=value_serializer,
                loop=owner,
            )
            if callback is not None:
                result.add_done_callback(callback)  # type: ignore[arg-type]
            return result
        name, key_bytes, value_bytes, header_pairs = self.prepare(
            key, value, headers, key_serializer, value_serializer
        )
        fut = self.app.producer.send_soon(
            name,
            key_bytes,
            value_bytes,
            partition=partition,
            timestamp=timestamp,
            headers=header_pairs,
            report=self._report or self._reporter(name),
        )
        if callback is not None:
            fut.add_done_callback(callback)
        return fut

    def send_sync(
        self,
        *,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Any = None,
        key_serializer: Any = None,
        value_serializer: Any = None,
        timeout: client.Timeout = client.SEND_TIMEOUT,
    ) -> RecordMetadata:
        """Send from sync code and wait for the broker's acknowledgement.

        Safe from any thread (WSGI views, management commands, Celery
        tasks, the shell). Returns the `RecordMetadata`; raises
        `TimeoutError` after ``timeout`` seconds, the broker's error if it
        refused the message, and a `RecordValidationError`/`EncodeError` naming
        the topic and field for a bad key or value (nothing is sent then).
        From a running event loop it raises `SyncCallInAsyncContext`: use
        ``await topic.send_and_wait(...)`` there.
        """
        client.refuse_in_event_loop(
            f"{type(self).__name__}.send_sync", "topic.send_and_wait"
        )
        result = client.send_soon(
            self,
            key=key,
            value=value,
            partition=partition,
            timestamp=timestamp,
            headers=headers,
            key_serializer=key_serializer,
            value_serializer=value_serializer,
        )
        return client.wait_delivery(
            self.get_topic_name(), key, result, client.timeout_for(self.app, timeout)
        )

    def send_on_commit(
        self,
        *,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Any = None,
        key_serializer: Any = None,
        value_serializer: Any = None,
        using: str | None = None,
    ) -> None:
        """Send once the current database transaction commits.

        Like Django's ``transaction.on_commit``: inside ``atomic()`` the
        message is sent after the outermost block commits, and never if it
        rolls back; outside a transaction it is sent at once. The key and
        value are encoded (and validated) now, so bad input raises inside
        the block. A failed delivery is logged with the topic and key.
        """
        client.send_on_commit(
            self,
            key=key,
            value=value,
            partition=partition,
            timestamp=timestamp,
            headers=headers,
            key_serializer=key_serializer,
            value_serializer=value_serializer,
            using=using,
        )

    def prepare(
        self,
        key: Any,
        value: Any,
        headers: Any = None,
        key_serializer: Any = None,
        value_serializer: Any = None,
    ) -> tuple[str, bytes | None, bytes | None, tuple[tuple[str, bytes], ...]]:
        """The topic name, key and value bytes and headers of one message.

        A mapping sent to a topic of `Record` values is checked against the
        record first (missing fields, and field types with
        ``validation=True``). Errors name the topic: they are raised before
        anything is handed to the producer.
        """
        name = self._single_name
        if name is None:
            name = self._single_name = self.get_topic_name()
        checks = self._checks_mappings
        if checks is None:
            checks = self._checks_mappings = _is_record_type(self.value_type)
        try:
            if checks and isinstance(value, Mapping):
                self.value_type.from_data(value)  # raises RecordValidationError
            key_bytes = self.encode_key(key, key_serializer)
            value_bytes = self.encode_value(value, value_serializer)
        except RecordValidationError as exc:
            raise RecordValidationError(
                f"Cannot send to topic {name!r}: {exc}",
                field=exc.field,
                model=exc.model,
                value=exc.value,
            ) from exc
        except EncodeError as exc:
            field = self._unencodable_field(value, value_serializer)
            where = f" (field {field!r})" if field is not None else ""
            raise EncodeError(f"Cannot send to topic {name!r}{where}: {exc}") from exc
        return name, key_bytes, value_bytes, _normalize_headers(headers)

    def _unencodable_field(self, value: Any, value_serializer: Any) -> str | None:
        """The first field of a record or mapping value that cannot be encoded."""
        if isinstance(value, Record):
            items: Any = value.asdict().items()
        elif isinstance(value, Mapping):
            items = value.items()
        else:
            return None
        from .serializers import registry

        encode = registry.value_encoder(
            None, value_serializer or self._value_serializer()
        )
        for field, field_value in items:
            try:
                encode({str(field): field_value})
            except Exception:
                return str(field)
        return None

    # -- declaring -------------------------------------------------------------

    async def declare(self) -> None:
        """Create the topics on the broker if we own them.

        Topics the user owns (``internal=False``) are only created when they
        do not exist yet, never altered.  With ``TOPIC_ALLOW_DECLARE`` off
        nothing is created: each topic must exist already, and a missing one
        is an error naming it, rather than a worker waiting for it forever.
        """
        conf = self.app.conf
        producer = await self.app.maybe_start_producer()
        for name in self.topics:
            partitions = self.partitions or conf.topic_partitions
            if not conf.topic_allow_declare:
                if not await producer.partitions_for(name):
                    raise ImproperlyConfigured(
                        f"Topic {name!r} does not exist, and the app does not "
                        f'create topics because FAUST["TOPIC_ALLOW_DECLARE"] '
                        f"is False: create it on the broker (the app expects "
                        f"{partitions} partitions) or allow the app to."
                    )
                continue
            await producer.create_topic(
                name,
                partitions=partitions,
                replication=self.replicas or conf.topic_replication_factor,
                config=self.config,
                compacting=self.compacting,
                deleting=self.deleting,
                retention=self.retention,
            )


def _is_record_type(value_type: Any) -> bool:
    """Whether a topic's ``value_type`` is a `Record` class."""
    return isinstance(value_type, type) and issubclass(value_type, Record)


class _SendReporter:
    """Tells the sensors how sends to one topic went, a batch at a time.

    Handed to the producer with each message (a `SendReport`): the producer
    counts the messages per reporter in each batch and calls it once per
    delivered batch, instead of a done callback per message.
    """

    __slots__ = ("sensors", "topic")

    def __init__(self, sensors: Any, topic: str) -> None:
        self.sensors = sensors
        self.topic = topic

    def __call__(self, count: int, seconds: float, error: BaseException | None) -> None:
        self.sensors.on_sends(self.topic, count, seconds, error)
