"""Codecs: named, composable ways of turning Python objects into bytes.

A codec is looked up by name (``"json"``, ``"raw"``, ``"binary"``,
``"pickle"``) or passed as an instance. Codecs compose with ``|``:
``"json|binary"`` encodes with JSON and then base64-encodes the result;
decoding runs the chain backwards.

Projects add their own codecs with `register`, or ship them in a package
under the ``django_faust.codecs`` entry point group; entry points are only
consulted when a name is not already registered, so installing a plugin
costs nothing until it is used.

This module must stay free of Django and of the models package: records are
recognised by duck typing (``to_representation()``), which also lets any
object that can describe itself as JSON take part.
"""

from __future__ import annotations

import base64
import binascii
import json
import pickle
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from importlib import metadata
from typing import Any, Callable, Iterable
from uuid import UUID

from django_faust.exceptions import (
    CodecError,
    DecodeError,
    EncodeError,
    UnknownCodecError,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "BinaryCodec",
    "BytesLike",
    "Codec",
    "ComposedCodec",
    "JSONCodec",
    "PickleCodec",
    "RawCodec",
    "dumps",
    "get_codec",
    "loads",
    "register",
]

#: What codecs decode. (The json codec also accepts `str`.)
BytesLike = bytes | bytearray | memoryview

#: setuptools entry point group searched for codecs that are not registered.
ENTRY_POINT_GROUP = "django_faust.codecs"


class Codec:
    """Base class of codecs.

    Subclasses implement `_dumps` and `_loads`; `dumps` and `loads` add the
    error translation, so every failure surfaces as `EncodeError` or
    `DecodeError` whatever library the codec uses underneath.
    """

    #: Name used in error messages; set by subclasses.
    name: str = ""

    def _dumps(self, obj: Any) -> bytes:
        raise NotImplementedError

    def _loads(self, data: Any) -> Any:
        raise NotImplementedError

    def dumps(self, obj: Any) -> bytes:
        """Encode ``obj`` to bytes."""
        try:
            return self._dumps(obj)
        except CodecError:
            raise
        except Exception as exc:
            raise EncodeError(
                f"{self!s} codec cannot encode {type(obj).__name__}: {exc}"
            ) from exc

    def loads(self, data: BytesLike) -> Any:
        """Decode bytes produced by `dumps` back to an object."""
        try:
            return self._loads(data)
        except CodecError:
            raise
        except Exception as exc:
            raise DecodeError(f"{self!s} codec cannot decode data: {exc}") from exc

    def __or__(self, other: Codec) -> Codec:
        if not isinstance(other, Codec):
            return NotImplemented
        return ComposedCodec(self, other)

    def __str__(self) -> str:
        return self.name or type(self).__name__

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self!s}>"


class ComposedCodec(Codec):
    """Codecs applied in a chain: ``dumps`` left to right, ``loads`` backwards."""

    def __init__(self, *codecs: Codec) -> None:
        chain: list[Codec] = []
        for codec in codecs:
            if isinstance(codec, ComposedCodec):
                chain.extend(codec.chain)
            else:
                chain.append(codec)
        if not chain:
            raise ValueError("ComposedCodec needs at least one codec")
        self.chain: tuple[Codec, ...] = tuple(chain)
        self._reversed = tuple(reversed(chain))
        self.name = "|".join(str(codec) for codec in chain)

    def dumps(self, obj: Any) -> bytes:
        for codec in self.chain:
            obj = codec.dumps(obj)
        return obj  # type: ignore[no-any-return]

    def loads(self, data: BytesLike) -> Any:
        obj: Any = data
        for codec in self._reversed:
            obj = codec.loads(obj)
        return obj

    _dumps = dumps
    _loads = loads


def _want_bytes(data: Any) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise EncodeError(f"expected bytes or str, not {type(data).__name__}")


def _json_default(obj: Any) -> Any:
    """Encode the types JSON lacks, the same way every time."""
    if isinstance(obj, (datetime, date, time)):
        return obj.isoformat()
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, UUID):
        return str(obj)
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, (set, frozenset)):
        # Set iteration order changes between processes (hash seeds), which
        # would break byte-for-byte stable output; sort when the items allow.
        try:
            return sorted(obj)
        except TypeError:
            return list(obj)
    to_representation = getattr(obj, "to_representation", None)
    if to_representation is not None:
        return to_representation()
    raise EncodeError(
        f"Object of type {type(obj).__module__}.{type(obj).__qualname__} "
        "is not JSON serializable"
    )


class JSONCodec(Codec):
    """Compact, stable JSON in UTF-8.

    Dates and times become ISO 8601 strings, `Decimal` and `UUID` strings,
    enums their value, sets and tuples lists, and records (any object with
    a ``to_representation()`` method) that representation.
    """

    name = "json"

    def __init__(self) -> None:
        self._encode = json.JSONEncoder(
            separators=(",", ":"), ensure_ascii=False, default=_json_default
        ).encode
        #: ``obj`` as JSON text (what `dumps` encodes to UTF-8), for writers
        #: that skip the error translation because they do their own.
        self.encode_text: Callable[[Any], str] = self._encode
        decoder = json.JSONDecoder()
        self._decode = decoder.decode
        # ``decode`` runs two whitespace regexes around the scanner; calling
        # the scanner directly halves the cost of small payloads. Anything
        # it does not consume exactly goes through ``decode`` for the
        # whitespace rules and the proper error message.
        self._scan = decoder.scan_once  # type: ignore[attr-defined]

    def _dumps(self, obj: Any) -> bytes:
        return self._encode(obj).encode("utf-8")

    def _loads(self, data: Any) -> Any:
        if isinstance(data, str):
            text = data
        elif isinstance(data, (bytes, bytearray)):
            text = data.decode("utf-8")
        elif isinstance(data, memoryview):
            text = bytes(data).decode("utf-8")
        else:
            raise DecodeError(
                f"json codec expects bytes or str, not {type(data).__name__}"
            )
        try:
            obj, end = self._scan(text, 0)
        except StopIteration:
            return self._decode(text)
        if end != len(text):
            return self._decode(text)
        return obj


class RawCodec(Codec):
    """No transformation: bytes pass through and `str` is encoded as UTF-8."""

    name = "raw"

    def _dumps(self, obj: Any) -> bytes:
        return _want_bytes(obj)

    def _loads(self, data: Any) -> Any:
        if isinstance(data, bytes):
            return data
        if isinstance(data, (bytearray, memoryview)):
            return bytes(data)
        raise DecodeError(f"raw codec expects bytes, not {type(data).__name__}")


class BinaryCodec(Codec):
    """Base64, for byte payloads that must travel through text-only channels."""

    name = "binary"

    def _dumps(self, obj: Any) -> bytes:
        return base64.b64encode(_want_bytes(obj))

    def _loads(self, data: Any) -> Any:
        try:
            return base64.b64decode(data, validate=True)
        except binascii.Error as exc:
            raise DecodeError(f"binary codec: invalid base64 data: {exc}") from exc


class PickleCodec(Codec):
    """Python pickle.

    Only use it between trusted processes: unpickling runs arbitrary code.
    """

    name = "pickle"

    def _dumps(self, obj: Any) -> bytes:
        return pickle.dumps(obj)

    def _loads(self, data: Any) -> Any:
        return pickle.loads(data)


_registry: dict[str, Codec] = {}
_composites: dict[str, Codec] = {}
# Bumped on every `register`, so that caches built on top of this module
# (see ``serializers.registry``) can tell that a name may now mean another codec.
_version = 0

#: What ``None`` means as a codec: bytes in, bytes out.
_NO_CODEC: Codec = RawCodec()


def register(name: str, codec: Codec) -> None:
    """Make ``codec`` available as ``name``, replacing any previous codec."""
    global _version
    if not isinstance(codec, Codec):
        raise TypeError(f"register() needs a Codec instance, not {codec!r}")
    if not name or "|" in name:
        raise ValueError(f"Invalid codec name {name!r}")
    _registry[name] = codec
    _composites.clear()
    _version += 1


def version() -> int:
    """A number that changes whenever the set of registered codecs changes."""
    return _version


def get_codec(name_or_codec: str | Codec | None) -> Codec:
    """Return the codec for a name, a ``"a|b"`` chain or a `Codec` instance.

    ``None`` means "no codec" (see `RawCodec`).
    """
    if isinstance(name_or_codec, Codec):
        return name_or_codec
    if name_or_codec is None:
        return _NO_CODEC
    if not isinstance(name_or_codec, str):
        raise TypeError(f"A codec is a name or a Codec instance, not {name_or_codec!r}")
    codec = _registry.get(name_or_codec) or _composites.get(name_or_codec)
    if codec is not None:
        return codec
    if "|" in name_or_codec:
        parts = [_lookup(part.strip()) for part in name_or_codec.split("|")]
        codec = ComposedCodec(*parts)
        _composites[name_or_codec] = codec
        return codec
    return _lookup(name_or_codec.strip())


def _lookup(name: str) -> Codec:
    codec = _registry.get(name)
    if codec is None:
        codec = _load_entry_point(name)
    if codec is None:
        known = ", ".join(sorted(_registry))
        raise UnknownCodecError(
            f"Unknown codec {name!r}. Known codecs: {known}. Register one with "
            f"django_faust.serializers.register() or the {ENTRY_POINT_GROUP!r} "
            "entry point group."
        )
    return codec


def _entry_points() -> Iterable[Any]:
    return metadata.entry_points(group=ENTRY_POINT_GROUP)


def _load_entry_point(name: str) -> Codec | None:
    """Register and return the codec an installed package ships as ``name``."""
    for entry_point in _entry_points():
        if entry_point.name != name:
            continue
        obj = entry_point.load()
        if not isinstance(obj, Codec) and callable(obj):
            obj = obj()  # a Codec subclass or a factory
        if not isinstance(obj, Codec):
            raise CodecError(
                f"Entry point {entry_point.name!r} in group {ENTRY_POINT_GROUP!r} "
                f"did not provide a Codec (got {obj!r})"
            )
        register(name, obj)
        return obj
    return None


def dumps(codec: str | Codec | None, obj: Any) -> bytes:
    """Encode ``obj`` with ``codec``; ``None`` accepts only bytes and `str`."""
    return get_codec(codec).dumps(obj)


def loads(codec: str | Codec | None, data: BytesLike) -> Any:
    """Decode ``data`` with ``codec``; ``None`` returns the bytes unchanged."""
    return get_codec(codec).loads(data)


register("json", JSONCodec())
register("raw", RawCodec())
register("binary", BinaryCodec())
register("pickle", PickleCodec())
