"""Key and value encoders/decoders for topics.

A topic is declared with a type and a serializer for its keys and values;
this module turns such a pair into one function applied to every message.
The function is built (codec looked up, conversion chosen) once per
``(type, serializer)`` and cached, so the per-message work is only the
decoding itself.

Rules, given a type ``T`` and a serializer (codec name, `Codec` or None):

* ``T`` a `Record` subclass: decode with the serializer, else the record's
  own ``serializer`` option, else JSON; then build the record. A payload
  whose metadata names a subclass of ``T`` becomes that subclass.
* ``T`` is ``bytes``: decode with the serializer, else pass bytes through.
* ``T`` is ``str``: decode with the serializer, else decode UTF-8.
* ``T`` another type (``int``, ``float``, ``dict``, ``list[int]``...):
  decode with the serializer, else JSON, then coerce to ``T`` if the result
  is not already one (``"3"`` to ``3``, never ``"false"`` to ``True``).
* ``T`` is None: decode with the serializer, else return the raw bytes. A
  decoded mapping carrying record metadata becomes the registered record.
* A None payload (a Kafka tombstone) is None both ways.

Encoding mirrors this. A `bytes` object is taken to be an already
serialized payload and sent unchanged, whatever the serializer (as in
Faust), unless the type is declared as ``bytes`` *and* a serializer is
given. Without a serializer, `str` is encoded as UTF-8, records use their
own serializer (JSON by default) and anything else, keys included, is
encoded as JSON: a key of ``3`` becomes ``b"3"``, which a topic whose
``key_type`` is ``int`` decodes back to ``3``. A topic *declared* with
``bytes`` or ``str`` and no serializer refuses other objects rather than
guessing.

Failures raise `KeyDecodeError`/`ValueDecodeError` (with the cause chained
and a preview of the payload) or `EncodeError`.

For a `Record` type with the stock ``json`` codec, the functions returned
are the per-class shortcuts of `json_records` (bytes to record in one
frame, plain-field records straight to JSON text), which hand anything
unusual to the general functions built here.
"""

from __future__ import annotations

import json.encoder
from typing import Any, Callable
from uuid import UUID

from django_faust.exceptions import (
    CodecError,
    DecodeError,
    EncodeError,
    KeyDecodeError,
    RecordValidationError,
    ValueDecodeError,
)
from django_faust.models import METADATA_KEY, Record
from django_faust.models.converters import coercer_for, describe_type, show_value
from django_faust.models.namespaces import decode_model_payload, record_loader
from django_faust.serializers import codecs, json_records
from django_faust.serializers.codecs import Codec

__all__ = [
    "Decoder",
    "Encoder",
    "key_decoder",
    "key_encoder",
    "value_decoder",
    "value_encoder",
]

Decoder = Callable[[Any], Any]
Encoder = Callable[[Any], bytes | None]

_PREVIEW_BYTES = 48

_cache: dict[tuple[str, Any, Any], Callable[[Any], Any]] = {}
_cache_version = -1


def key_decoder(key_type: Any, key_serializer: str | Codec | None) -> Decoder:
    """The function turning message keys (bytes or None) into objects."""
    return _cached("key_decoder", key_type, key_serializer)


def value_decoder(value_type: Any, value_serializer: str | Codec | None) -> Decoder:
    """The function turning message values (bytes or None) into objects."""
    return _cached("value_decoder", value_type, value_serializer)


def key_encoder(key_type: Any, key_serializer: str | Codec | None) -> Encoder:
    """The function turning keys into bytes (None stays None)."""
    return _cached("key_encoder", key_type, key_serializer)


def value_encoder(value_type: Any, value_serializer: str | Codec | None) -> Encoder:
    """The function turning values into bytes (None stays None)."""
    return _cached("value_encoder", value_type, value_serializer)


def _cached(kind: str, typ: Any, serializer: Any) -> Callable[[Any], Any]:
    global _cache_version
    if _cache_version != codecs.version():
        # A codec was (re)registered: names may now mean other codecs.
        _cache.clear()
        _cache_version = codecs.version()
    key = (kind, typ, serializer)
    try:
        return _cache[key]
    except KeyError:
        pass
    except TypeError:  # unhashable type or serializer: build, do not cache
        return _BUILDERS[kind](typ, serializer)
    function = _cache[key] = _BUILDERS[kind](typ, serializer)
    return function


def _is_record_type(typ: Any) -> bool:
    return isinstance(typ, type) and issubclass(typ, Record)


def _type_name(typ: Any) -> str:
    return "any type" if typ is None else describe_type(typ)


def _serializer_name(serializer: Any) -> str:
    if isinstance(serializer, Codec):
        return str(serializer)
    return repr(serializer)


def _preview(data: Any) -> str:
    if isinstance(data, (bytes, bytearray, memoryview)):
        head = bytes(data[:_PREVIEW_BYTES])
        more = "..." if len(data) > _PREVIEW_BYTES else ""
        return f"{head!r}{more} ({len(data)} bytes)"
    return show_value(data)


# -- decoding --------------------------------------------------------------


def _as_bytes(obj: Any) -> bytes:
    if isinstance(obj, bytes):
        return obj
    if isinstance(obj, str):
        return obj.encode("utf-8")
    if isinstance(obj, (bytearray, memoryview)):
        return bytes(obj)
    raise TypeError(f"expected bytes, got {show_value(obj)}")


def _as_str(obj: Any) -> str:
    if isinstance(obj, str):
        return obj
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).decode("utf-8")
    if isinstance(obj, (int, float, UUID)) and not isinstance(obj, bool):
        return str(obj)
    raise TypeError(f"expected str, got {show_value(obj)}")


def _utf8(data: Any) -> str:
    if isinstance(data, str):
        return data
    return bytes(data).decode("utf-8")


def _identity(obj: Any) -> Any:
    return obj


def _polymorphic(obj: Any) -> Any:
    if obj.__class__ is dict and METADATA_KEY in obj:
        return decode_model_payload(obj)
    return obj


def _conversion(typ: Any, serializer: Any) -> tuple[Codec | None, Callable[..., Any]]:
    """The codec to decode with (None: none) and the conversion after it."""
    if _is_record_type(typ):
        codec = codecs.get_codec(serializer or typ._options.serializer or "json")
        return codec, record_loader(typ)
    if typ is None:
        return codecs.get_codec(serializer), _polymorphic
    if typ is bytes:
        if serializer is None:
            return None, _identity
        return codecs.get_codec(serializer), _as_bytes
    if typ is str:
        if serializer is None:
            return None, _utf8
        return codecs.get_codec(serializer), _as_str
    codec = codecs.get_codec(serializer or "json")
    return codec, coercer_for(typ) or _identity


def _make_decoder(
    typ: Any, serializer: Any, error: type[DecodeError], what: str
) -> Decoder:
    codec, convert = _conversion(typ, serializer)
    context = (
        f"Cannot decode {what} as {_type_name(typ)} "
        f"(serializer {_serializer_name(serializer)})"
    )

    def fail(data: Any, exc: Exception) -> DecodeError:
        return error(
            f"{context}: {exc}; payload: {_preview(data)}",
            field=exc.field if isinstance(exc, RecordValidationError) else None,
        )

    if codec is None:

        def decode_raw(data: Any) -> Any:
            if data is None:
                return None
            try:
                return convert(data)
            except Exception as exc:
                raise fail(data, exc) from exc

        return decode_raw

    if type(codec).loads is Codec.loads:
        decoder = _make_plain_decoder(codec, convert, fail)
        if _is_record_type(typ):
            fast = json_records.record_decoder(typ, codec, decoder, fail)
            if fast is not None:
                return fast
        return decoder

    loads = codec.loads

    def decode(data: Any) -> Any:
        if data is None:
            return None
        try:
            return convert(loads(data))
        except Exception as exc:
            raise fail(data, exc) from exc

    return decode


def _make_plain_decoder(
    codec: Codec,
    convert: Callable[..., Any],
    fail: Callable[[Any, Exception], DecodeError],
) -> Decoder:
    """A decoder calling the codec's own ``_loads``: one frame less per message.

    For codecs that keep `Codec.loads` (``json`` among them): its errors are
    translated here as `Codec.loads` would, and the conversions of the
    common cases (none; records by their metadata for ``value_type=None``)
    are done inline.
    """
    raw_loads = codec._loads

    def codec_failed(data: Any, exc: Exception) -> DecodeError:
        """The error to raise, its cause chain set (raise it without ``from``)."""
        cause: Exception = exc
        if not isinstance(exc, CodecError):
            cause = DecodeError(f"{codec!s} codec cannot decode data: {exc}")
            cause.__cause__ = exc
        error = fail(data, cause)
        error.__cause__ = cause
        return error

    if convert is _identity:

        def decode_plain(data: Any) -> Any:
            if data is None:
                return None
            try:
                return raw_loads(data)
            except Exception as exc:
                raise codec_failed(data, exc)  # noqa: B904 - cause set

        return decode_plain

    if convert is _polymorphic:

        def decode_any(data: Any) -> Any:
            if data is None:
                return None
            try:
                obj = raw_loads(data)
            except Exception as exc:
                raise codec_failed(data, exc)  # noqa: B904 - cause set
            if obj.__class__ is not dict or METADATA_KEY not in obj:
                return obj
            try:
                return decode_model_payload(obj)
            except Exception as exc:
                raise fail(data, exc) from exc

        return decode_any

    def decode_converted(data: Any) -> Any:
        if data is None:
            return None
        try:
            obj = raw_loads(data)
        except Exception as exc:
            raise codec_failed(data, exc)  # noqa: B904 - cause set
        try:
            return convert(obj)
        except Exception as exc:
            raise fail(data, exc) from exc

    return decode_converted


def _build_key_decoder(typ: Any, serializer: Any) -> Decoder:
    return _make_decoder(typ, serializer, KeyDecodeError, "key")


def _build_value_decoder(typ: Any, serializer: Any) -> Decoder:
    return _make_decoder(typ, serializer, ValueDecodeError, "value")


# -- encoding --------------------------------------------------------------


def _dump_record(record: Record) -> bytes:
    codec = codecs.get_codec(record._options.serializer or "json")
    return codec.dumps(record.to_representation())


def _json_str(text: str) -> bytes:
    """``text`` as the ``json`` codec writes it (a quoted JSON string)."""
    return _quote(text).encode("utf-8")


def _json_int(number: int) -> bytes:
    """An ``int`` as the ``json`` codec writes it."""
    return int.__repr__(number).encode("ascii")


def _json_shortcuts(codec: codecs.JSONCodec) -> dict[type, Callable[[Any], bytes]]:
    """Writers of the exact classes the stock ``json`` codec writes directly."""
    write_text = codec.encode_text

    def write_container(obj: Any) -> bytes:
        return write_text(obj).encode("utf-8")

    return {
        str: _json_str,
        int: _json_int,
        dict: write_container,
        list: write_container,
    }


def _str_bytes(text: str) -> bytes:
    return text.encode("utf-8")


def _same_bytes(data: bytes) -> bytes:
    return data


#: The ``json`` codec's string writer (``ensure_ascii=False``).
_quote: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]


def _make_encoder(typ: Any, serializer: Any, what: str) -> Encoder:
    context = f"for {_type_name(typ)} (serializer {_serializer_name(serializer)})"
    encode: Callable[[Any], bytes]
    #: Exact classes whose bytes are written without the general path:
    #: what the general path would write, one call instead of four.
    shortcuts: dict[type, Callable[[Any], bytes]] = {}
    if typ is bytes and serializer is not None:
        # Declared bytes with a codec: encode them, as the decoder will
        # decode them.
        encode = codecs.get_codec(serializer).dumps
    elif typ is bytes or (typ is str and serializer is None):
        encode = codecs.RawCodec().dumps
    elif _is_record_type(typ) or serializer is not None:
        codec_name = serializer
        if codec_name is None:
            codec_name = typ._options.serializer or "json"
        codec = codecs.get_codec(codec_name)
        dumps = codec.dumps
        if type(codec) is codecs.JSONCodec:
            shortcuts = _json_shortcuts(codec)

        def encode(obj: Any) -> bytes:
            if obj.__class__ is bytes:
                return obj  # type: ignore[no-any-return]  # already serialized
            if isinstance(obj, Record):
                return dumps(obj.to_representation())
            return dumps(obj)

    else:
        json_codec = codecs.get_codec("json")
        json_dumps = json_codec.dumps
        shortcuts = {bytes: _same_bytes, str: _str_bytes}
        if type(json_codec) is codecs.JSONCodec:
            shortcuts = {**_json_shortcuts(json_codec), **shortcuts}

        def encode(obj: Any) -> bytes:
            if obj.__class__ is bytes:
                return obj  # type: ignore[no-any-return]
            if isinstance(obj, str):
                return obj.encode("utf-8")
            if isinstance(obj, (bytearray, memoryview)):
                return bytes(obj)
            if isinstance(obj, Record):
                return _dump_record(obj)
            return json_dumps(obj)

    shortcut = shortcuts.get

    def encoder(obj: Any) -> bytes | None:
        try:
            write = shortcut(obj.__class__)
            if write is not None:
                return write(obj)
            if obj is None:
                return None
            return encode(obj)
        except Exception as exc:
            raise EncodeError(
                f"Cannot encode {what} {show_value(obj)} {context}: {exc}"
            ) from exc

    if _is_record_type(typ):
        codec = codecs.get_codec(serializer or typ._options.serializer or "json")
        fast = json_records.record_encoder(typ, codec, encoder)
        if fast is not None:
            return fast
    return encoder


def _build_key_encoder(typ: Any, serializer: Any) -> Encoder:
    return _make_encoder(typ, serializer, "key")


def _build_value_encoder(typ: Any, serializer: Any) -> Encoder:
    return _make_encoder(typ, serializer, "value")


_BUILDERS: dict[str, Callable[[Any, Any], Callable[[Any], Any]]] = {
    "key_decoder": _build_key_decoder,
    "value_decoder": _build_value_decoder,
    "key_encoder": _build_key_encoder,
    "value_encoder": _build_value_encoder,
}
