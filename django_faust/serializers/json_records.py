"""One-frame JSON paths between bytes and records, for topics typed with a record.

The general path from a message to a record is a chain of small functions
(the registry's decoder, the codec, the namespace check, the record's
``from_data``), each one frame per event; on the way out, the record
becomes a dict (``to_representation``) which the ``json`` codec encodes.
For the common case, a topic whose value type is a `Record` and whose
serializer is the built-in ``json`` codec, this module generates per class:

* a decoder that runs the JSON scanner and then the record's own
  construction code (`codegen.Construction`, the body of its generated
  ``from_data``) in one function;
* an encoder that writes the JSON text of a record whose fields hold
  plain ``str``/``int``/``float``/``bool`` values (or None where the type
  allows it) with one string build, without the intermediate dict.

Both are shortcuts, never a second implementation of the rules: whatever
they do not recognise (a payload that is not ``bytes``, not exactly one
JSON object, metadata naming another namespace, a field value of another
class on encoding...) is handed, untouched, to the general function they
were built from, which then decodes or fails exactly as before. The
construction code they inline is the very code of ``from_data``, and its
errors are reported as the general decoder reports them.
"""

from __future__ import annotations

import json.encoder
import math
import re
import types
import typing
from typing import Any, Callable

from django_faust.exceptions import DecodeError, ImproperlyConfigured
from django_faust.models import codegen
from django_faust.models.namespaces import METADATA_KEY, NAMESPACE_KEY
from django_faust.serializers.codecs import JSONCodec

__all__ = ["record_decoder", "record_encoder"]

_NoneType = type(None)


def _plain_codec(codec: Any) -> bool:
    """Whether ``codec`` is the stock JSON codec, whose behaviour we inline."""
    return type(codec) is JSONCodec


def _prepared_options(model: Any) -> Any:
    """The options of ``model`` once prepared, or None if it cannot be yet."""
    try:
        model._prepare()
    except (ImproperlyConfigured, TypeError):
        return None  # forward references not resolvable yet, or abstract
    return model.__dict__["_options"]


# -- decoding --------------------------------------------------------------


def record_decoder(
    model: Any,
    codec: Any,
    fallback: Callable[[Any], Any],
    fail: Callable[[Any, Exception], DecodeError],
) -> Callable[[Any], Any] | None:
    """A one-frame decoder of ``model`` values, or None when there is none.

    ``fallback`` is the general decoder (it must accept anything, None
    included); ``fail(payload, exc)`` the error it raises when building the
    record fails, which the generated decoder raises the same way. There is
    no shortcut for another codec than the stock ``json`` one, nor for a
    class defining its own ``from_data``.
    """
    if not _plain_codec(codec):
        return None
    options = _prepared_options(model)
    if options is None or options.construction is None:
        return None
    construction = options.construction
    env = dict(construction.env)
    env.update(
        {
            "__faust_bytes": bytes,
            "__faust_dict": dict,
            "__faust_scan": codec._scan,
            "__faust_fallback": fallback,
            "__faust_fail": fail,
        }
    )
    namespace_test = (
        "__faust_meta is not None and ("
        "__faust_meta.__class__ is not __faust_dict or "
        f"__faust_meta.get({NAMESPACE_KEY!r}) != {options.namespace!r})"
    )
    body = [
        # Anything but bytes (None, str, memoryview...): the general path.
        "if __faust_payload.__class__ is not __faust_bytes:",
        "    return __faust_fallback(__faust_payload)",
        "try:",
        "    __faust_text = __faust_payload.decode('utf-8')",
        "    __faust_data, __faust_end = __faust_scan(__faust_text, 0)",
        "except Exception:",
        "    return __faust_fallback(__faust_payload)  # it raises the error",
        # Whitespace around the value, or more than one value: the codec's
        # full decode decides; so does a payload that is not an object.
        "if __faust_end != len(__faust_text) or "
        "__faust_data.__class__ is not __faust_dict:",
        "    return __faust_fallback(__faust_payload)",
        # Metadata naming another (sub)class is the registry's business.
        f"__faust_meta = __faust_data.get({METADATA_KEY!r})",
        f"if {namespace_test}:",
        "    return __faust_fallback(__faust_payload)",
        "try:",
        *codegen.indent(construction.lines),
        "except Exception as __faust_error:",
        "    raise __faust_fail(__faust_payload, __faust_error) from __faust_error",
    ]
    return codegen.compile_function(
        model, "decode_json", ["__faust_payload"], body, env
    )


# -- encoding --------------------------------------------------------------

#: Declared field type -> (test that a value ``{v}`` is one the shortcut
#: writes, expression giving its JSON text). Other values go to the general
#: path.
_WRITERS: dict[Any, tuple[str, str]] = {
    str: ("{v}.__class__ is __faust_str", "__faust_quote({v})"),
    int: ("{v}.__class__ is __faust_int", "__faust_repr({v})"),
    # JSON numbers decode to int when they have no fraction: a float field
    # of a record without validation often holds one. Infinities and NaN
    # are left to the codec, which spells them its own way.
    float: (
        "({v}.__class__ is __faust_float and __faust_isfinite({v}) or "
        "{v}.__class__ is __faust_int)",
        "__faust_repr({v})",
    ),
    bool: (
        "{v}.__class__ is __faust_bool",
        "(__faust_true if {v} else __faust_false)",
    ),
}


def _writer(tp: Any) -> tuple[str, str] | None:
    """The test and the expression writing a field of type ``tp``, or None."""
    writer = _WRITERS.get(tp)
    if writer is not None:
        return writer
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        members = [arg for arg in typing.get_args(tp) if arg is not _NoneType]
        if len(members) == 1 and members[0] in _WRITERS:
            test, write = _WRITERS[members[0]]
            return (
                f"({{v}} is None or {test})",
                f"(__faust_null if {{v}} is None else {write})",
            )
    return None


def _replacement(expression: str) -> str:
    """``expression`` as an f-string replacement field.

    ``__faust_repr(x)`` becomes ``x!r``, which f-strings format without a
    function call.
    """
    match = re.fullmatch(r"__faust_repr\((\w+)\)", expression)
    if match is not None:
        return f"{{{match.group(1)}!r}}"
    return f"{{{expression}}}"


def _literal(text: str) -> str:
    """``text`` as the literal part of a single-quoted f-string."""
    escaped = text.encode("unicode_escape").decode("ascii").replace("'", "\\'")
    return escaped.replace("{", "{{").replace("}", "}}")


def record_encoder(
    model: Any, codec: Any, fallback: Callable[[Any], bytes | None]
) -> Callable[[Any], bytes | None] | None:
    """A direct JSON encoder of ``model`` instances, or None when there is none.

    The encoder takes any object: ``fallback`` is the general encoder, to
    which it hands everything but an instance of exactly ``model`` whose
    values it can write itself, and which then encodes or fails as it
    would have without the shortcut. There is none for another
    codec than the stock ``json`` one, a class defining its own
    ``to_representation``, or one with a field of another type than
    ``str``, ``int``, ``float`` or ``bool`` (optional or not).
    """
    if not _plain_codec(codec):
        return None
    options = _prepared_options(model)
    if options is None or "to_representation" not in options.generated:
        return None
    quote = json.encoder.encode_basestring
    env: dict[str, Any] = {
        "__faust_model": model,
        "__faust_fallback": fallback,
        "__faust_quote": quote,
        "__faust_repr": repr,
        "__faust_isfinite": math.isfinite,
        "__faust_str": str,
        "__faust_int": int,
        "__faust_float": float,
        "__faust_bool": bool,
        "__faust_true": "true",
        "__faust_false": "false",
        "__faust_null": "null",
    }
    reads, tests, members = [], [], []
    for index, (name, field) in enumerate(options.fields.items()):
        writer = _writer(field.type)
        if writer is None:
            return None
        test, write = writer
        value = f"__faust_v{index}"
        reads.append(f"    {value} = __faust_self.{name}")
        tests.append(test.format(v=value))
        members.append((quote(name) + ":", _replacement(write.format(v=value))))
    if options.include_metadata:
        # Written by the codec itself, so it is the same text by construction.
        metadata = codec._encode({NAMESPACE_KEY: options.namespace})
        members.append((quote(METADATA_KEY) + ":" + metadata, ""))
    text = ",".join(_literal(key) + write for key, write in members)
    body = [
        "if __faust_self.__class__ is __faust_model:",
        "    try:",
        *codegen.indent(reads),
        f"        if {' and '.join(tests) or 'True'}:",
        f"            return f'{{{{{text}}}}}'.encode('utf-8')",
        "    except Exception:",
        "        pass  # the general path raises what it raises",
        "return __faust_fallback(__faust_self)",
    ]
    return codegen.compile_function(model, "encode_json", ["__faust_self"], body, env)
