"""Source generation of the per-class hot-path methods of records.

Like `dataclasses`, each record class gets its own ``__init__``,
``from_data`` and ``to_representation`` written out field by field, so that
building a record from a decoded event is one straight-line function: no
loop over fields, no per-field lookups of converters, and no call at all for
fields whose type needs no conversion.

The generated source is registered with `linecache`, so tracebacks through
it show real lines. All helper names in it start with ``__faust_``; record
fields may not, which keeps them from colliding.
"""

from __future__ import annotations

import linecache
from typing import TYPE_CHECKING, Any, Callable, Iterable

from django_faust.models.fields import MISSING

if TYPE_CHECKING:
    from django_faust.models.converters import Converter
    from django_faust.models.fields import FieldDescriptor

__all__ = [
    "Construction",
    "compile_function",
    "construct_from_dict",
    "indent",
    "make_from_data",
    "make_init",
    "make_to_representation",
]

_counter = 0


class _Factory:
    """Default of parameters whose default is copied per instance."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


def compile_function(
    model: type, name: str, params: Iterable[str], body: list[str], env: dict[str, Any]
) -> Callable[..., Any]:
    """Compile ``def name(params): body`` in the globals ``env``.

    The function is named as a method of ``model``, and its source goes to
    `linecache` so that tracebacks show the generated lines.
    """
    global _counter
    _counter += 1
    lines = [f"def {name}({', '.join(params)}):"]
    lines.extend(f"    {line}" for line in body or ["pass"])
    source = "\n".join(lines) + "\n"
    filename = f"<django_faust generated {model.__qualname__}.{name} #{_counter}>"
    namespace: dict[str, Any] = {}
    exec(compile(source, filename, "exec"), env, namespace)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    function = namespace[name]
    function.__qualname__ = f"{model.__qualname__}.{name}"
    function.__module__ = model.__module__
    return function  # type: ignore[no-any-return]


def _store(name: str, expr: str, frozen: bool) -> str:
    if frozen:
        return f"__faust_d[{name!r}] = {expr}"
    return f"__faust_self.{name} = {expr}"


def indent(lines: list[str]) -> list[str]:
    """``lines`` one level (four spaces) deeper."""
    return [f"    {line}" for line in lines]


def _guarded(
    name: str, target: str, call: str, skip: tuple[type, ...] | None
) -> list[str]:
    """Lines converting ``target`` in place, turning failures into errors.

    ``skip`` lists classes the converter returns unchanged; values of
    exactly those classes (the usual case) skip the call altogether.
    """
    lines = [
        "try:",
        f"    {target} = {call}({target})",
        "except Exception as __faust_exc:",
        f"    raise __faust_invalid(__faust_model, {name!r}, {target}, __faust_exc) "
        "from __faust_exc",
    ]
    if not skip:
        return lines
    if len(skip) == 1:
        test = f"{target}.__class__ is not __faust_skip_{name}"
    else:
        test = f"{target}.__class__ not in __faust_skip_{name}"
    return [f"if {test}:", *indent(lines)]


def _skip_value(skip: tuple[type, ...] | None) -> Any:
    """What `_guarded` code compares against: one class, or a tuple of them."""
    if skip and len(skip) == 1:
        return skip[0]
    return skip


def make_init(
    model: type,
    fields: Iterable[FieldDescriptor],
    *,
    frozen: bool,
    validators: dict[str, Converter],
    skip: dict[str, tuple[type, ...]],
    post_init: bool,
    invalid: Callable[..., Exception],
) -> Callable[..., None]:
    """Generate ``__init__``.

    Parameters follow declaration order. A field without default that comes
    after one with a default (which inheritance makes easy) turns that
    parameter and all later ones keyword-only, instead of being an error.
    Defaults are trusted: only values passed by the caller are validated.
    """
    env: dict[str, Any] = {
        "__faust_FACTORY": _FACTORY,
        "__faust_invalid": invalid,
        "__faust_model": model,
    }
    params = ["__faust_self"]
    body = ["__faust_d = __faust_self.__dict__"] if frozen else []
    seen_default = keyword_only = False
    for field in fields:
        name = field.field
        validator = validators.get(name)
        if validator is not None:
            env[f"__faust_validate_{name}"] = validator
            env[f"__faust_skip_{name}"] = _skip_value(skip.get(name))
        check = _guarded(name, name, f"__faust_validate_{name}", skip.get(name))
        if field.required:
            if seen_default and not keyword_only:
                params.append("*")
                keyword_only = True
            params.append(name)
            if validator is not None:
                body.extend(check)
        elif field.default_factory is not None:
            seen_default = True
            env[f"__faust_factory_{name}"] = field.default_factory
            params.append(f"{name}=__faust_FACTORY")
            body.append(f"if {name} is __faust_FACTORY:")
            body.append(f"    {name} = __faust_factory_{name}()")
            if validator is not None:
                body.append("else:")
                body.extend(indent(check))
        else:
            seen_default = True
            env[f"__faust_default_{name}"] = field.default
            params.append(f"{name}=__faust_default_{name}")
            if validator is not None:
                body.append(f"if {name} is not __faust_default_{name}:")
                body.extend(indent(check))
        body.append(_store(name, name, frozen))
    if post_init:
        body.append("__faust_self.__post_init__()")
    return compile_function(model, "__init__", params, body, env)


class Construction:
    """The lines building a record from a dict, for inlining elsewhere.

    ``lines`` expect the dict in ``__faust_data`` (known to be a ``dict``),
    build the instance and end with ``return __faust_self``; ``env`` holds
    the names they use, all starting with ``__faust_``. Besides the
    generated ``from_data``, the JSON decoder of the serializers inlines
    them after its own decoding, so that one frame turns bytes into a
    record (see ``serializers.json_records``).
    """

    __slots__ = ("env", "lines")

    def __init__(self, lines: list[str], env: dict[str, Any]) -> None:
        self.lines = lines
        self.env = env


def construct_from_dict(
    model: type,
    fields: Iterable[FieldDescriptor],
    *,
    frozen: bool,
    converters: dict[str, Converter],
    skip: dict[str, tuple[type, ...]],
    post_init: bool,
    invalid: Callable[..., Exception],
    missing: Callable[[type, str], Exception],
) -> Construction:
    """The body of ``from_data`` after its mapping check.

    Unknown keys (including the metadata key) are ignored; absent optional
    fields take their default, which is not converted. A field needing no
    conversion costs one dict lookup and one attribute store.
    """
    env: dict[str, Any] = {
        "__faust_MISSING": MISSING,
        "__faust_invalid": invalid,
        "__faust_missing": missing,
        "__faust_model": model,
        "__faust_new": object.__new__,
    }
    body = ["__faust_self = __faust_new(__faust_model)"]
    if frozen:
        body.append("__faust_d = __faust_self.__dict__")
    for field in fields:
        name = field.field
        converter = converters.get(name)
        if converter is not None:
            env[f"__faust_convert_{name}"] = converter
            env[f"__faust_skip_{name}"] = _skip_value(skip.get(name))
        convert = _guarded(name, "__faust_v", f"__faust_convert_{name}", skip.get(name))
        lookup = f"__faust_data[{name!r}]"
        if field.required:
            missing_lines = [
                "except KeyError:",
                f"    raise __faust_missing(__faust_model, {name!r}) from None",
            ]
            if converter is None:
                body.extend(["try:", f"    {_store(name, lookup, frozen)}"])
                body.extend(missing_lines)
            else:
                body.extend(["try:", f"    __faust_v = {lookup}", *missing_lines])
                body.extend(convert)
                body.append(_store(name, "__faust_v", frozen))
            continue
        if field.default_factory is not None:
            env[f"__faust_factory_{name}"] = field.default_factory
            default = f"__faust_factory_{name}()"
        else:
            env[f"__faust_default_{name}"] = field.default
            default = f"__faust_default_{name}"
        if converter is None and field.default_factory is None:
            get = f"__faust_data.get({name!r}, {default})"
            body.append(_store(name, get, frozen))
            continue
        body.append(f"__faust_v = __faust_data.get({name!r}, __faust_MISSING)")
        body.append("if __faust_v is __faust_MISSING:")
        body.append(f"    __faust_v = {default}")
        if converter is not None:
            body.append("else:")
            body.extend(indent(convert))
        body.append(_store(name, "__faust_v", frozen))
    if post_init:
        body.append("__faust_self.__post_init__()")
    body.append("return __faust_self")
    return Construction(body, env)


def make_from_data(
    model: type,
    construction: Construction,
    *,
    as_mapping: Callable[[type, Any], Any],
) -> Callable[[Any], Any]:
    """Generate ``from_data(data)``, with the class bound in.

    A ``dict`` goes straight to ``construction``; any other argument is
    first checked by ``as_mapping``.
    """
    env = dict(construction.env)
    env["__faust_as_mapping"] = as_mapping
    env["__faust_dict"] = dict
    body = [
        "if __faust_data.__class__ is not __faust_dict:",
        "    __faust_data = __faust_as_mapping(__faust_model, __faust_data)",
        *construction.lines,
    ]
    return compile_function(model, "from_data", ["__faust_data"], body, env)


def make_to_representation(
    model: type,
    fields: Iterable[FieldDescriptor],
    *,
    representers: frozenset[str],
    represent: Callable[[Any], Any],
    metadata: tuple[str, dict[str, Any]] | None,
) -> Callable[[Any], dict[str, Any]]:
    """Generate ``to_representation()``: a fresh dict in declaration order.

    Only fields whose type may hold records go through ``represent``;
    ``metadata`` is ``(key, mapping)`` appended last, or None.
    """
    env: dict[str, Any] = {"__faust_represent": represent}
    items = []
    for field in fields:
        name = field.field
        value = f"__faust_self.{name}"
        if name in representers:
            value = f"__faust_represent({value})"
        items.append(f"    {name!r}: {value},")
    if metadata is not None:
        key, mapping = metadata
        # A new dict per call, so no caller can alter the shared original.
        items.append(f"    {key!r}: {mapping!r},")
    body = ["return {", *items, "}"]
    return compile_function(model, "to_representation", ["__faust_self"], body, env)
