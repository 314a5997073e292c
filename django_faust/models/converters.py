"""Per-type value converters, built once per record class.

A record class asks this module, for each of its fields, "what must happen
to a value of this declared type?" and gets back either ``None`` (nothing:
the value is stored as is) or a one-argument function. The answer is
computed once, when the class is prepared, so the per-event cost of a field
that needs no work is zero.

There are two kinds of converter:

* *decoders* (`decoder_for`) undo what JSON did to a value: a nested record
  arrives as a dict, a `datetime` as an ISO 8601 string, a `Decimal` as a
  string, a set or tuple as a list. They are lenient: a value that is not in
  the JSON shape is passed through untouched.
* *validators* (`validator_for`) check a value against the declared type,
  coercing the obvious cases (``"3"`` to ``3`` for an ``int``), and raise
  `TypeError` or `ValueError` with a short reason otherwise.
"""

from __future__ import annotations

import collections.abc as cabc
import types
import typing
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any, Callable, Literal, TypeVar, Union
from uuid import UUID

from django_faust.models.namespaces import (
    model_for_payload,
    record_loader,
)

__all__ = [
    "Converter",
    "coercer_for",
    "decoder_for",
    "describe_type",
    "needs_representation",
    "show_value",
    "unchanged_classes",
    "validator_for",
]

Converter = Callable[[Any], Any]

_NoneType = type(None)

_SEQUENCE_TARGETS: dict[Any, type] = {
    list: list,
    tuple: tuple,
    set: set,
    frozenset: frozenset,
    cabc.Sequence: list,
    cabc.MutableSequence: list,
    cabc.Iterable: list,
    cabc.Collection: list,
    cabc.Set: set,
    cabc.MutableSet: set,
}
_MAPPING_TARGETS: dict[Any, type] = {
    dict: dict,
    cabc.Mapping: dict,
    cabc.MutableMapping: dict,
}


def show_value(value: Any, limit: int = 60) -> str:
    """A short ``repr`` of a value with its type, for error messages."""
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{text} ({type(value).__name__})"


def describe_type(tp: Any) -> str:
    """A short, readable name for a type annotation (``list[Order] | None``)."""
    if tp is _NoneType or tp is None:
        return "None"
    if tp is Ellipsis:
        return "..."
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if _is_union(origin):
        return " | ".join(describe_type(arg) for arg in args)
    if origin is not None and origin is not Literal and args:
        inner = ", ".join(describe_type(arg) for arg in args)
        return f"{describe_type(origin)}[{inner}]"
    if isinstance(tp, type):
        return tp.__name__
    return repr(tp).replace("typing.", "")


def _is_record(tp: Any) -> bool:
    from django_faust.models.record import Record

    return isinstance(tp, type) and issubclass(tp, Record)


def _unwrap(tp: Any) -> Any:
    """Strip wrappers that do not change the runtime shape (NewType, Annotated)."""
    while True:
        supertype = getattr(tp, "__supertype__", None)
        if supertype is not None:
            tp = supertype
            continue
        if typing.get_origin(tp) is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        return tp


def _is_union(origin: Any) -> bool:
    return origin is Union or origin is types.UnionType


# -- scalar validators ------------------------------------------------------


def _validate_int(value: Any) -> int:
    if type(value) is int:
        return value
    if isinstance(value, bool):
        raise TypeError(f"expected int, got {show_value(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError(f"expected int, got {show_value(value)}") from None
    if isinstance(value, (float, Decimal)) and value == int(value):
        return int(value)
    raise TypeError(f"expected int, got {show_value(value)}")


def _validate_float(value: Any) -> float:
    if type(value) is float:
        return value
    if isinstance(value, bool):
        raise TypeError(f"expected float, got {show_value(value)}")
    if isinstance(value, (int, float, Decimal)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"expected float, got {show_value(value)}") from None
    raise TypeError(f"expected float, got {show_value(value)}")


def _validate_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(f"expected str, got {show_value(value)}")


_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _validate_bool(value: Any) -> bool:
    if value is True or value is False:
        return value  # type: ignore[no-any-return]
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise TypeError(f"expected bool, got {show_value(value)}")


def _validate_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"expected bytes, got {show_value(value)}")


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, float):
        # repr() gives the shortest string that round-trips, so 0.1 becomes
        # Decimal("0.1") rather than its exact binary expansion.
        return Decimal(repr(value))
    try:
        return Decimal(value)
    except (InvalidOperation, ValueError):
        raise ValueError(f"expected Decimal, got {show_value(value)}") from None


def _validate_decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return _to_decimal(value)
    raise TypeError(f"expected Decimal, got {show_value(value)}")


def _decode_decimal(value: Any) -> Any:
    cls = value.__class__
    if cls is str or cls is int:
        try:
            return Decimal(value)
        except InvalidOperation:
            raise ValueError(f"expected Decimal, got {show_value(value)}") from None
    if cls is float:
        return Decimal(repr(value))
    return value


def _validate_uuid(value: Any) -> UUID:
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            raise ValueError(f"expected UUID, got {show_value(value)}") from None
    raise TypeError(f"expected UUID, got {show_value(value)}")


def _decode_uuid(value: Any) -> Any:
    return _validate_uuid(value) if isinstance(value, str) else value


def _iso_parser(kind: type) -> Converter:
    """A function parsing an ISO 8601 string as ``kind`` (datetime/date/time)."""
    fromisoformat = kind.fromisoformat  # type: ignore[attr-defined]
    name = kind.__name__

    def parse(value: str) -> Any:
        try:
            return fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"expected ISO 8601 {name}, got {show_value(value)}"
            ) from None

    return parse


def _temporal_validator(kind: type) -> Converter:
    parse = _iso_parser(kind)
    name = kind.__name__

    def validate(value: Any) -> Any:
        # A datetime is also a date; a date field must not silently hold one.
        if isinstance(value, kind) and not (
            kind is date and isinstance(value, datetime)
        ):
            return value
        if isinstance(value, str):
            return parse(value)
        raise TypeError(f"expected {name}, got {show_value(value)}")

    return validate


def _temporal_decoder(kind: type) -> Converter:
    parse = _iso_parser(kind)

    def decode(value: Any) -> Any:
        return parse(value) if type(value) is str else value

    return decode


def _enum_converter(enum: type[Enum], validate: bool) -> Converter:
    def convert(value: Any) -> Any:
        if isinstance(value, enum) or (value is None and not validate):
            return value
        try:
            return enum(value)
        except ValueError:
            raise ValueError(
                f"expected {enum.__qualname__}, got {show_value(value)}"
            ) from None

    return convert


def _literal_validator(allowed: tuple[Any, ...]) -> Converter:
    def validate(value: Any) -> Any:
        for option in allowed:
            if value == option and type(value) is type(option):
                return value
        raise ValueError(f"expected one of {allowed!r}, got {show_value(value)}")

    return validate


def _instance_validator(cls: type) -> Converter:
    def validate(value: Any) -> Any:
        if isinstance(value, cls):
            return value
        raise TypeError(f"expected {cls.__qualname__}, got {show_value(value)}")

    return validate


def _none_validator(value: Any) -> None:
    if value is not None:
        raise TypeError(f"expected None, got {show_value(value)}")


# -- records ---------------------------------------------------------------


def _record_decoder(model: Any) -> Converter:
    return record_loader(model, passthrough=True)


def _record_validator(model: Any) -> Converter:
    load = record_loader(model)

    def validate(value: Any) -> Any:
        if isinstance(value, model):
            return value
        if isinstance(value, cabc.Mapping):
            return load(dict(value))
        raise TypeError(f"expected {model.__qualname__}, got {show_value(value)}")

    return validate


# -- containers ------------------------------------------------------------


def _sequence_converter(
    target: type, item: Converter | None, validate: bool
) -> Converter | None:
    name = target.__name__
    if validate:

        def validate_sequence(value: Any) -> Any:
            if not isinstance(value, (list, tuple, set, frozenset)):
                raise TypeError(f"expected {name}, got {show_value(value)}")
            if item is None:
                return value if type(value) is target else target(value)
            out = []
            for index, element in enumerate(value):
                try:
                    out.append(item(element))
                except Exception as exc:
                    raise ValueError(f"item {index}: {exc}") from exc
            return out if target is list else target(out)

        return validate_sequence

    if item is None:
        if target is list:
            return None

        def decode_plain(value: Any) -> Any:
            return target(value) if type(value) is list else value

        return decode_plain

    def decode_sequence(value: Any) -> Any:
        if type(value) is list or isinstance(value, (list, tuple)):
            if target is list:
                return [item(element) for element in value]
            return target([item(element) for element in value])
        return value

    return decode_sequence


def _fixed_tuple_converter(
    items: tuple[Converter | None, ...], validate: bool
) -> Converter | None:
    size = len(items)
    if not validate and all(conv is None for conv in items):

        def decode_plain(value: Any) -> Any:
            return tuple(value) if type(value) is list else value

        return decode_plain

    def convert(value: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            if validate:
                raise TypeError(f"expected tuple, got {show_value(value)}")
            return value
        if len(value) != size:
            if validate:
                raise ValueError(
                    f"expected a tuple of {size} items, got {show_value(value)}"
                )
            return value
        out = []
        for index, (conv, element) in enumerate(zip(items, value, strict=True)):
            if conv is None:
                out.append(element)
                continue
            try:
                out.append(conv(element))
            except Exception as exc:
                raise ValueError(f"item {index}: {exc}") from exc
        return tuple(out)

    return convert


def _json_key_decoder(tp: Any, isodates: bool) -> Converter | None:
    """JSON object keys are always strings; turn them back into ``tp``."""
    tp = _unwrap(tp)
    if tp is int or tp is float:
        number = tp

        def decode_number(key: Any) -> Any:
            return number(key) if type(key) is str else key

        return decode_number
    return _build(tp, validate=False, isodates=isodates)


def _mapping_converter(
    key: Converter | None, value: Converter | None, validate: bool
) -> Converter | None:
    if validate:

        def validate_mapping(obj: Any) -> Any:
            if not isinstance(obj, cabc.Mapping):
                raise TypeError(f"expected dict, got {show_value(obj)}")
            if key is None and value is None:
                return obj if type(obj) is dict else dict(obj)
            out = {}
            for k, v in obj.items():
                try:
                    k2 = k if key is None else key(k)
                except Exception as exc:
                    raise ValueError(f"key {k!r}: {exc}") from exc
                try:
                    out[k2] = v if value is None else value(v)
                except Exception as exc:
                    raise ValueError(f"item {k!r}: {exc}") from exc
            return out

        return validate_mapping

    if key is None and value is None:
        return None
    if key is None:
        assert value is not None

        def decode_values(obj: Any) -> Any:
            if type(obj) is dict:
                return {k: value(v) for k, v in obj.items()}
            return obj

        return decode_values
    if value is None:

        def decode_keys(obj: Any) -> Any:
            if type(obj) is dict:
                return {key(k): v for k, v in obj.items()}
            return obj

        return decode_keys

    def decode_items(obj: Any) -> Any:
        if type(obj) is dict:
            return {key(k): value(v) for k, v in obj.items()}
        return obj

    return decode_items


def _union_converter(
    tp: Any, members: tuple[Any, ...], validate: bool, isodates: bool
) -> Converter | None:
    has_none = _NoneType in members
    members = tuple(m for m in members if m is not _NoneType)
    if len(members) == 1:
        inner = _build(members[0], validate=validate, isodates=isodates)
        if inner is None or not has_none or not validate:
            # Decoders pass None (like anything not in JSON shape) through.
            return inner

        def optional(value: Any) -> Any:
            return None if value is None else inner(value)

        return optional

    # Several alternatives: keep a value that already is one of them, else
    # take the first alternative that accepts it (left to right).
    plain = (_unwrap(m) for m in members)
    exact = tuple(
        m for m in plain if isinstance(m, type) and typing.get_origin(m) is None
    )
    if object in exact:
        return None
    records = tuple(m for m in exact if _is_record(m))
    attempts = tuple(
        conv
        for conv in (_build(m, validate=True, isodates=True) for m in members)
        if conv is not None
    )
    if not validate and not attempts:
        return None
    expected = describe_type(tp)

    def convert(value: Any) -> Any:
        if value is None and has_none:
            return None
        if records and type(value) is dict:
            model = model_for_payload(value)
            if model is not None and issubclass(model, records):
                return model.__dict__["_options"].from_data(value)
        if isinstance(value, exact) and not (
            isinstance(value, bool) and bool not in exact
        ):
            return value
        for attempt in attempts:
            try:
                return attempt(value)
            except Exception:
                continue  # try the next alternative
        if validate:
            raise TypeError(f"expected {expected}, got {show_value(value)}")
        return value

    return convert


# -- dispatch --------------------------------------------------------------


_SCALAR_VALIDATORS: dict[Any, Converter] = {
    int: _validate_int,
    float: _validate_float,
    str: _validate_str,
    bool: _validate_bool,
    bytes: _validate_bytes,
    Decimal: _validate_decimal,
    UUID: _validate_uuid,
}


def _build(tp: Any, *, validate: bool, isodates: bool) -> Converter | None:
    tp = _unwrap(tp)
    if tp is Any or tp is object or isinstance(tp, TypeVar):
        return None
    if tp is None or tp is _NoneType:
        return _none_validator if validate else None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is None:
        if tp in _SEQUENCE_TARGETS:
            return _sequence_converter(_SEQUENCE_TARGETS[tp], None, validate)
        if tp in _MAPPING_TARGETS:
            return _mapping_converter(None, None, validate)
        if tp in (datetime, date, time):
            if validate:
                return _temporal_validator(tp)
            return _temporal_decoder(tp) if isodates else None
        if tp is Decimal:
            return _validate_decimal if validate else _decode_decimal
        if tp is UUID:
            return _validate_uuid if validate else _decode_uuid
        if tp in _SCALAR_VALIDATORS:
            return _SCALAR_VALIDATORS[tp] if validate else None
        if isinstance(tp, type):
            if _is_record(tp):
                return _record_validator(tp) if validate else _record_decoder(tp)
            if issubclass(tp, Enum):
                return _enum_converter(tp, validate)
            return _instance_validator(tp) if validate else None
        return None
    if _is_union(origin):
        return _union_converter(tp, args, validate, isodates)
    if origin is Literal:
        return _literal_validator(args) if validate else None
    if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        if args == ((),):
            args = ()
        return _fixed_tuple_converter(
            tuple(_build(a, validate=validate, isodates=isodates) for a in args),
            validate,
        )
    if origin in _SEQUENCE_TARGETS:
        item = _build(args[0], validate=validate, isodates=isodates) if args else None
        return _sequence_converter(_SEQUENCE_TARGETS[origin], item, validate)
    if origin in _MAPPING_TARGETS:
        key_tp, value_tp = args if len(args) == 2 else (Any, Any)
        if validate:
            key = _build(key_tp, validate=True, isodates=isodates)
        else:
            key = _json_key_decoder(key_tp, isodates)
        value = _build(value_tp, validate=validate, isodates=isodates)
        return _mapping_converter(key, value, validate)
    if validate and isinstance(origin, type):
        return _instance_validator(origin)
    return None


def decoder_for(tp: Any, *, isodates: bool = True) -> Converter | None:
    """The converter undoing JSON's encoding of ``tp``, or None if not needed.

    With ``isodates=False`` date and time fields are left as received.
    """
    return _build(tp, validate=False, isodates=isodates)


def validator_for(tp: Any) -> Converter | None:
    """The converter checking and coercing values of ``tp``, or None."""
    return _build(tp, validate=True, isodates=True)


def coercer_for(tp: Any) -> Converter | None:
    """Like `validator_for`, but a class this module has no rule for is
    called with the value (``Money("3.50")``) unless the value already is
    an instance; used for plain key and value types of topics.
    """
    plain = _unwrap(tp)
    if (
        isinstance(plain, type)
        and typing.get_origin(plain) is None
        and not _has_rule(plain)
    ):

        def coerce(value: Any) -> Any:
            return value if isinstance(value, plain) else plain(value)

        return coerce
    return validator_for(tp)


def _has_rule(cls: type) -> bool:
    return (
        cls in _SCALAR_VALIDATORS
        or cls in _SEQUENCE_TARGETS
        or cls in _MAPPING_TARGETS
        or cls in (datetime, date, time, object, _NoneType)
        or issubclass(cls, Enum)
        or _is_record(cls)
    )


_UNCHANGED_CLASSES = frozenset(
    {int, float, str, bool, bytes, Decimal, datetime, date, time, UUID}
)


def unchanged_classes(tp: Any) -> tuple[type, ...]:
    """Classes whose values the converters of ``tp`` return unchanged.

    Generated code compares a value's class against these before calling
    a converter, so that valid values cost a pointer comparison.
    """
    tp = _unwrap(tp)
    if tp in _UNCHANGED_CLASSES:
        return (tp,)
    if isinstance(tp, type) and typing.get_origin(tp) is None:
        if issubclass(tp, Enum) or _is_record(tp):
            return (tp,)
        return ()
    if _is_union(typing.get_origin(tp)):
        members = [m for m in typing.get_args(tp) if m is not _NoneType]
        if len(members) == 1:
            inner = unchanged_classes(members[0])
            return (*inner, _NoneType) if inner else ()
    return ()


def needs_representation(tp: Any) -> bool:
    """Whether values of ``tp`` may contain records to turn into dicts."""
    tp = _unwrap(tp)
    if tp is Any or tp is object or isinstance(tp, TypeVar):
        return True
    origin = typing.get_origin(tp)
    if origin is Literal:
        return False
    if origin is not None:
        args = [a for a in typing.get_args(tp) if a is not Ellipsis and a != ()]
        if not args:
            return True
        return any(needs_representation(a) for a in args)
    if tp in _SEQUENCE_TARGETS or tp in _MAPPING_TARGETS:
        return True
    if isinstance(tp, type):
        # A value declared as some other class cannot be a record.
        return _is_record(tp)
    return True
