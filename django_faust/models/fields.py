"""Field descriptors: what a record declares about each of its fields.

``Point.x`` evaluates to the `FieldDescriptor` of field ``x``; stream
operators use it to name a field and read it from events
(``stream.group_by(Point.x)``). Instances never go through the descriptor:
field values live in the instance ``__dict__`` and the record metaclass only
hands out descriptors for *class* attribute lookups, so ``point.x`` stays a
plain, fully optimised attribute read.
"""

from __future__ import annotations

import copy
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Callable
from uuid import UUID

if TYPE_CHECKING:
    from django_faust.models.record import Record

__all__ = ["MISSING", "FieldDescriptor"]


class _Missing:
    """Sentinel type for "no default" / "not given"."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<MISSING>"

    def __reduce__(self) -> str:
        return "MISSING"


#: Marks a field without default, and an argument that was not passed.
MISSING: Any = _Missing()

# Defaults of these types can be shared by every instance; anything else is
# shallow-copied per instance so that ``tags: list[str] = []`` is not shared.
_IMMUTABLE_TYPES: tuple[type, ...] = (
    type(None),
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    Decimal,
    datetime,
    date,
    time,
    timedelta,
    UUID,
    Enum,
    tuple,
    frozenset,
    range,
    type,
)


def _default_factory(default: Any) -> Callable[[], Any] | None:
    """Return a callable making a fresh copy of a mutable default, else None."""
    if default is MISSING or isinstance(default, _IMMUTABLE_TYPES):
        return None
    options = getattr(type(default), "_options", None)
    if options is not None and getattr(options, "frozen", False):
        return None
    if type(default) in (list, dict, set, bytearray):
        return default.copy  # type: ignore[no-any-return]
    return lambda: copy.copy(default)


class FieldDescriptor:
    """One field of a record class.

    Attributes: ``field`` (name), ``model`` (record class), ``required``,
    ``default`` (`MISSING` when required), ``index`` (declaration position)
    and ``type`` (the resolved annotation). ``getattr(obj)`` reads the
    field from an instance.
    """

    __slots__ = (
        "_type",
        "annotation",
        "default",
        "default_factory",
        "field",
        "getattr",
        "index",
        "model",
        "required",
    )

    getattr: Callable[[Any], Any]

    def __init__(
        self,
        field: str,
        model: type[Record],
        annotation: Any,
        default: Any = MISSING,
        index: int = 0,
    ) -> None:
        self.field = field
        self.model = model
        self.annotation = annotation
        self.default = default
        self.required = default is MISSING
        self.index = index
        self.default_factory = _default_factory(default)
        self.getattr = attrgetter(field)
        self._type: Any = MISSING

    @property
    def type(self) -> Any:
        """The field's annotation, resolved (forward references evaluated)."""
        if self._type is MISSING:
            self.model._resolve_types()
        return self._type

    def get_default(self) -> Any:
        """The default value for a new instance (a fresh copy if mutable)."""
        if self.default_factory is not None:
            return self.default_factory()
        return self.default

    def __repr__(self) -> str:
        annotation = self._type if self._type is not MISSING else self.annotation
        shown = getattr(annotation, "__name__", None) or str(annotation)
        return f"<FieldDescriptor: {self.model.__qualname__}.{self.field}: {shown}>"
