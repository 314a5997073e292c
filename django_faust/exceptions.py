"""Exceptions raised by django-faust.

Every exception derives from `DjangoFaustError`, so callers can catch the
whole family at once. Where an error is also a well-known builtin kind
(a missing key, a bad value) it inherits that builtin too, so code written
against the standard library keeps working.
"""

from __future__ import annotations

import warnings
from typing import Any

from django.core import exceptions as django_exceptions


class DjangoFaustError(Exception):
    """Base class of every error raised by django-faust."""


class ImproperlyConfigured(DjangoFaustError, django_exceptions.ImproperlyConfigured):
    """The project, app or a declaration is set up in a way that cannot work.

    It is Django's `~django.core.exceptions.ImproperlyConfigured` too, so a
    project that already handles Django's configuration errors handles ours.
    """


class CodecError(DjangoFaustError):
    """A codec could not be found, or could not turn data into bytes or back."""


class UnknownCodecError(CodecError, KeyError):
    """No codec is registered under the requested name.

    It is a `KeyError` because looking a codec up is a mapping lookup; its
    message is shown as written rather than quoted the way `KeyError` does.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DecodeError(CodecError):
    """Bytes could not be turned back into a Python object.

    ``topic`` and ``field`` are filled in when known, so that a log line can
    say where the bad payload came from.
    """

    def __init__(
        self, message: str, *, topic: str | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.topic = topic
        self.field = field


class EncodeError(CodecError):
    """A Python object could not be turned into bytes."""


class RecordValidationError(DjangoFaustError, ValueError):
    """A record field holds a value that does not match its declared type.

    ``model`` is the record class (or its name) and ``field`` the field name;
    ``value`` is the offending value. Named apart from Django's form and
    model ``ValidationError``, which a view often catches in the same module.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        model: Any = None,
        value: Any = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.model = model
        self.value = value


class KeyDecodeError(DecodeError):
    """The key of a message could not be decoded."""


class ValueDecodeError(DecodeError):
    """The value of a message could not be decoded."""


class DeliveryError(DjangoFaustError):
    """A message the producer accepted was never delivered to the broker.

    Raised before a commit, so that no offset is committed past the event
    whose output (a sink's message, a changelog record) was lost.
    """


class TransactionError(DeliveryError):
    """A Kafka transaction (PROCESSING_GUARANTEE="exactly_once") failed.

    Its sends, changelog records and offsets were aborted together: none of
    them is visible to ``read_committed`` readers, and the events it covered
    are processed again from the last committed offsets.
    """


class PoisonEventError(DjangoFaustError):
    """The worker stopped at an event it could not process (POISON_POLICY 'stop').

    ``topic``, ``partition`` and ``offset`` name the event, ``stage`` what
    failed ('key', 'value', 'validation' or 'agent'); nothing at or past
    the offset was committed, so the event is read again after a restart.
    """

    def __init__(
        self, message: str, *, topic: str, partition: int, offset: int, stage: str
    ) -> None:
        super().__init__(message)
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.stage = stage


class TableWriteError(DjangoFaustError):
    """A table was changed outside a stream event, or by a concurrent agent."""


class UnknownTopicError(DjangoFaustError, LookupError):
    """A message was sent to a topic that does not exist on the broker.

    Raised by the sync facade (``send_sync``) when the broker does not
    create topics automatically; ``topic`` is the topic's name.
    """

    def __init__(self, message: str, *, topic: str) -> None:
        super().__init__(message)
        self.topic = topic


def __getattr__(name: str) -> Any:
    # ``ValidationError`` is the old name of `RecordValidationError`; it
    # shadowed Django's and is kept, with a warning, for one release.
    if name == "ValidationError":
        warnings.warn(
            "django_faust.exceptions.ValidationError is renamed "
            "RecordValidationError; the old name goes away in the next release.",
            DeprecationWarning,
            stacklevel=2,
        )
        return RecordValidationError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
