"""`Record`: typed, serializable event payloads declared like dataclasses.

::

    class Point(Record, namespace="geo.Point", validation=True):
        x: int
        y: int = 0

Class options (keywords of the class statement, inherited by subclasses
except ``namespace`` and ``abstract``):

``serializer``
    Codec used by `Record.dumps`/`Record.loads` and by topics typed with the
    record when they name no serializer. ``None`` (default) leaves the
    choice to the topic or app; standalone it means ``"json"``.
``namespace``
    Name in the serialized metadata and in `registry`; defaults to
    ``"module.QualName"``.
``validation``
    Check and coerce values against the annotations when constructing and
    decoding, raising `RecordValidationError`. Off by default: it costs time.
``include_metadata``
    Add ``{"__faust": {"ns": namespace}}`` to the serialized form, which is
    what lets consumers without a declared value type rebuild the record.
``isodates``
    Parse ISO 8601 strings into date/time fields in `Record.from_data`
    (with ``validation`` they are always parsed).
``abstract``
    A base class only: not registered, cannot be instantiated.
``frozen``
    Instances are immutable and hashable (by field values). Other records
    are unhashable, as mutable objects with value equality must be.

Like dataclasses, a field without default may not follow one with a
default positionally; rather than refusing the class, such fields become
keyword-only arguments. Mutable defaults (``[]``, ``{}``, records...) are
shallow-copied for each instance. A ``__post_init__()`` method, if defined,
runs after ``__init__`` and ``from_data``.

Performance: field values live in the instance ``__dict__`` and nothing is
installed on the class under field names (the metaclass answers
``Point.x`` with a `FieldDescriptor` only when normal lookup fails), so
attribute reads and writes on instances take CPython's fastest paths.
``__init__``, ``from_data`` and ``to_representation`` are generated per
class (see `codegen`), unless the class body defines them, once annotations
can be resolved: eagerly when the class is created, or on first use when
it refers to a class defined later.
"""

from __future__ import annotations

import collections.abc as cabc
import keyword
import re
import reprlib
import typing
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Callable, ClassVar, TypeVar

from django_faust.exceptions import ImproperlyConfigured, RecordValidationError
from django_faust.models import codegen
from django_faust.models.converters import (
    decoder_for,
    needs_representation,
    unchanged_classes,
    validator_for,
)
from django_faust.models.fields import MISSING, FieldDescriptor
from django_faust.models.namespaces import (
    METADATA_KEY,
    NAMESPACE_KEY,
    decode_model_payload,
    registry,
)
from django_faust.models.options import INHERITED_OPTIONS, OPTION_NAMES, RecordOptions
from django_faust.serializers import codecs

if TYPE_CHECKING:
    from django_faust.serializers.codecs import Codec

__all__ = ["Record", "RecordMeta"]

_R = TypeVar("_R", bound="Record")

#: Methods generated per class unless the class body defines them itself.
_GENERATED = ("__init__", "from_data", "to_representation")

_CLASSVAR = re.compile(r"^\s*(?:typing\.|t\.)?ClassVar\b")

# Attribute names of `Record` itself, which fields may not shadow.
_reserved: frozenset[str] = frozenset()


def _invalid(model: type, field: str, value: Any, exc: BaseException) -> Exception:
    return RecordValidationError(
        f"{model.__name__}.{field}: {exc}", field=field, model=model, value=value
    )


def _missing(model: type, field: str) -> Exception:
    return RecordValidationError(
        f"{model.__name__}: missing required field {field!r}",
        field=field,
        model=model,
        value=MISSING,
    )


def _as_mapping(model: type, data: Any) -> Any:
    if isinstance(data, cabc.Mapping):
        return data
    raise TypeError(
        f"{model.__name__}.from_data() expects a mapping, got {type(data).__name__}"
    )


def _represent(value: Any) -> Any:
    """Replace records inside ``value`` by their representation."""
    if isinstance(value, Record):
        return value.to_representation()
    cls = value.__class__
    if cls is list or cls is tuple:
        return [_represent(item) for item in value]
    if cls is dict:
        return {key: _represent(item) for key, item in value.items()}
    return value


def _is_classvar(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return bool(_CLASSVAR.match(annotation))
    return annotation is ClassVar or typing.get_origin(annotation) is ClassVar


def _check_field_name(cls: type, name: str) -> None:
    problem = None
    if not name.isidentifier() or keyword.iskeyword(name):
        problem = "is not a valid identifier"
    elif name.startswith("__"):
        problem = "starts with a double underscore"
    elif name in _reserved:
        problem = "is the name of a Record attribute"
    if problem is not None:
        raise TypeError(f"Field name {name!r} of record {cls.__qualname__} {problem}.")


class RecordMeta(type):
    """Reads the class options and fields, and answers ``Model.field``.

    The price of ``__getattr__`` on a metaclass is that every attribute
    lookup *on a record class* (not on instances) takes a slower path, about
    80ns; per-event code inside django-faust therefore holds on to what it
    needs (``options.from_data``) instead of looking it up on the class.
    """

    _options: RecordOptions

    def __new__(
        mcs,
        name: str,
        bases: tuple[type, ...],
        attrs: dict[str, Any],
        **options: Any,
    ) -> RecordMeta:
        unknown = set(options) - OPTION_NAMES
        if unknown:
            raise TypeError(
                f"Unknown record option(s) for {name}: {', '.join(sorted(unknown))}. "
                f"Known options: {', '.join(sorted(OPTION_NAMES))}."
            )
        cls = super().__new__(mcs, name, bases, attrs)
        _configure(cls, attrs, options)
        return cls

    def __init__(
        cls,
        name: str,
        bases: tuple[type, ...],
        attrs: dict[str, Any],
        **options: Any,
    ) -> None:
        super().__init__(name, bases, attrs)

    def __getattr__(cls, name: str) -> Any:
        # Only called when normal lookup failed: field names are never class
        # attributes, so that instance access to them stays fast.
        options = cls.__dict__.get("_options")
        if options is not None:
            field = options.fields.get(name)
            if field is not None:
                return field
        raise AttributeError(
            f"type object {cls.__qualname__!r} has no attribute {name!r}"
        )


def _configure(cls: RecordMeta, attrs: dict[str, Any], options: dict[str, Any]) -> None:
    """Collect fields and options of a new record class and prepare it."""
    parent: RecordOptions | None = None
    for base in cls.__mro__[1:]:
        if "_options" in base.__dict__:
            parent = base.__dict__["_options"]
            break
    if parent is None:  # `Record` itself
        type.__setattr__(cls, "_options", RecordOptions(abstract=True))
        return

    specs: dict[str, tuple[Any, Any]] = {}
    for base in reversed(cls.__mro__[1:]):
        base_options = base.__dict__.get("_options")
        if base_options is not None:
            for field in base_options.fields.values():
                specs[field.field] = (field.annotation, field.default)
    for name in specs:
        if name in attrs and name not in attrs.get("__annotations__", {}):
            raise TypeError(
                f"{cls.__qualname__}.{name} hides the inherited field {name!r}; "
                f"to change its default, annotate it again: {name}: <type> = ..."
            )
    for name, annotation in attrs.get("__annotations__", {}).items():
        if _is_classvar(annotation):
            continue
        _check_field_name(cls, name)
        inherited_default = specs.get(name, (None, MISSING))[1]
        specs[name] = (annotation, attrs.get(name, inherited_default))
        if name in attrs:
            type.__delattr__(cls, name)

    values = {key: options.get(key, getattr(parent, key)) for key in INHERITED_OPTIONS}
    if parent.fields and values["frozen"] != parent.frozen:
        raise TypeError(
            f"{cls.__qualname__}: a frozen record cannot inherit from a mutable "
            "one, nor a mutable record from a frozen one."
        )
    opts = RecordOptions(
        namespace=options.get("namespace") or f"{cls.__module__}.{cls.__qualname__}",
        abstract=bool(options.get("abstract", False)),
        **values,
    )
    opts.fields = {
        name: FieldDescriptor(name, cls, annotation, default, index)  # type: ignore[arg-type]
        for index, (name, (annotation, default)) in enumerate(specs.items())
    }
    opts.field_names = tuple(opts.fields)
    if opts.field_names:
        opts.values = attrgetter(*opts.field_names)
    opts.generated = tuple(name for name in _GENERATED if name not in attrs)
    type.__setattr__(cls, "_options", opts)

    if opts.frozen:
        type.__setattr__(cls, "__setattr__", _frozen_setattr)
        type.__setattr__(cls, "__delattr__", _frozen_delattr)
        if "__hash__" not in attrs:
            type.__setattr__(cls, "__hash__", _frozen_hash)
    if not opts.abstract:
        registry[opts.namespace] = cls  # type: ignore[assignment]
    _install_stubs(cls, opts)
    if not opts.abstract:
        try:
            cls._prepare()  # type: ignore[attr-defined]
        except ImproperlyConfigured:
            pass  # refers to a name defined later: prepared on first use


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise AttributeError(f"cannot assign to {name!r}: {type(self).__name__} is frozen")


def _frozen_delattr(self: Any, name: str) -> None:
    raise AttributeError(f"cannot delete {name!r}: {type(self).__name__} is frozen")


def _frozen_hash(self: Any) -> int:
    return hash(self._options.values(self))


def _install_stubs(cls: Any, opts: RecordOptions) -> None:
    """Put placeholders for the generated methods on the class.

    They prepare the class (or raise if it is abstract) and then call the
    real method; once prepared, the class holds the generated methods and
    the placeholders are never reached again.
    """
    if opts.abstract:

        def abstract_init(self: Any, *args: Any, **kwargs: Any) -> None:
            raise TypeError(f"{cls.__name__} is an abstract record")

        def abstract_from_data(data: Any) -> Any:
            raise TypeError(f"{cls.__name__} is an abstract record")

        stubs: dict[str, Any] = {
            "__init__": abstract_init,
            "from_data": staticmethod(abstract_from_data),
        }
    else:

        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            cls._prepare()
            cls.__init__(self, *args, **kwargs)

        def from_data(data: Any) -> Any:
            cls._prepare()
            return cls.from_data(data)

        def to_representation(self: Any) -> dict[str, Any]:
            cls._prepare()
            return cls.to_representation(self)  # type: ignore[no-any-return]

        stubs = {
            "__init__": __init__,
            "from_data": staticmethod(from_data),
            "to_representation": to_representation,
        }
    for name, stub in stubs.items():
        if name in opts.generated:
            type.__setattr__(cls, name, stub)
    # The same entry point for code holding the options (see record_loader).
    opts.from_data = cls.from_data


class Record(metaclass=RecordMeta):
    """Base class of records; see the module documentation."""

    if TYPE_CHECKING:
        _options: ClassVar[RecordOptions]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Every record class gets its own generated __init__.
        raise TypeError(f"{type(self).__name__} is an abstract record")

    @classmethod
    def from_data(cls: type[_R], data: cabc.Mapping[str, Any]) -> _R:
        """Build an instance from the decoded (JSON) form of a record.

        Nested records, containers of records, dates and decimals are
        converted back from their JSON shapes whatever the ``validation``
        option; unknown keys are ignored. A missing required field or a
        value that cannot be converted raises `RecordValidationError`.
        """
        raise TypeError("Record is an abstract record")  # replaced per class

    def to_representation(self) -> dict[str, Any]:
        """The JSON-ready form: fields in declaration order, records as dicts.

        Includes the metadata key when ``include_metadata`` is set. Values
        such as datetimes are left for the codec to encode.
        """
        raise NotImplementedError  # replaced per class

    def asdict(self) -> dict[str, Any]:
        """Field values by name, shallow (nested records stay records)."""
        values = self.__dict__
        return {name: values[name] for name in self._options.field_names}

    def dumps(self, serializer: str | Codec | None = None) -> bytes:
        """Serialize with ``serializer``, else the class option, else JSON."""
        codec = serializer or self._options.serializer or "json"
        return codecs.get_codec(codec).dumps(self.to_representation())

    @classmethod
    def loads(cls: type[_R], data: bytes, serializer: str | Codec | None = None) -> _R:
        """Deserialize bytes made by `dumps` (or by another Faust producer).

        A payload whose metadata names a subclass of ``cls`` becomes that
        subclass.
        """
        codec = serializer or cls._options.serializer or "json"
        obj = codecs.get_codec(codec).loads(data)
        return decode_model_payload(obj, cls)  # type: ignore[no-any-return]

    def validate(self) -> list[RecordValidationError]:
        """Check every field against its annotation; return the errors found.

        Works whatever the ``validation`` option, and does not change the
        record.
        """
        cls = type(self)
        cls._prepare()
        errors: list[RecordValidationError] = []
        values = self.__dict__
        for name, validator in cls._options.validators.items():
            value = values.get(name, MISSING)
            try:
                validator(value)
            except Exception as exc:
                error = _invalid(cls, name, value, exc)
                assert isinstance(error, RecordValidationError)
                errors.append(error)
        return errors

    def is_valid(self) -> bool:
        """Whether `validate` finds no error."""
        return not self.validate()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            values = self._options.values
            return bool(values(self) == values(other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        values = self.__dict__
        shown = ", ".join(
            f"{name}={values.get(name, MISSING)!r}"
            for name in self._options.field_names
        )
        return f"{type(self).__name__}({shown})"

    @classmethod
    def _resolve_types(cls) -> dict[str, Any]:
        """Evaluate the field annotations (they may be strings)."""
        options = cls._options
        try:
            hints = typing.get_type_hints(cls, localns={cls.__name__: cls})
        except Exception as exc:
            raise ImproperlyConfigured(
                f"Cannot resolve the annotations of record {cls.__qualname__}: "
                f"{exc}. Annotations are evaluated in the globals of the module "
                "declaring the record, so the names they use must exist there."
            ) from exc
        types = {name: hints.get(name, Any) for name in options.fields}
        for name, field in options.fields.items():
            field._type = types[name]
        return types

    @classmethod
    def _prepare(cls) -> None:
        """Build converters and generate the hot-path methods of ``cls``."""
        options = cls.__dict__["_options"]
        if options.prepared:
            return
        if options.abstract:
            raise TypeError(f"{cls.__name__} is an abstract record")
        types = cls._resolve_types()
        validators: dict[str, Callable[[Any], Any]] = {}
        decoders: dict[str, Callable[[Any], Any]] = {}
        for name, tp in types.items():
            validator = validator_for(tp)
            if validator is not None:
                validators[name] = validator
            decoder = (
                validator
                if options.validation
                else decoder_for(tp, isodates=options.isodates)
            )
            if decoder is not None:
                decoders[name] = decoder
        options.validators = validators
        options.decoders = decoders
        options.representers = frozenset(
            name for name, tp in types.items() if needs_representation(tp)
        )
        skip = {name: unchanged_classes(tp) for name, tp in types.items()}
        fields = list(options.fields.values())
        post_init = hasattr(cls, "__post_init__")
        construction = codegen.construct_from_dict(
            cls,
            fields,
            frozen=options.frozen,
            converters=decoders,
            skip=skip,
            post_init=post_init,
            invalid=_invalid,
            missing=_missing,
        )
        generated: dict[str, Any] = {
            "__init__": codegen.make_init(
                cls,
                fields,
                frozen=options.frozen,
                validators=validators if options.validation else {},
                skip=skip,
                post_init=post_init,
                invalid=_invalid,
            ),
            "from_data": staticmethod(
                codegen.make_from_data(cls, construction, as_mapping=_as_mapping)
            ),
            "to_representation": codegen.make_to_representation(
                cls,
                fields,
                representers=options.representers,
                represent=_represent,
                metadata=(
                    (METADATA_KEY, {NAMESPACE_KEY: options.namespace})
                    if options.include_metadata
                    else None
                ),
            ),
        }
        for name, function in generated.items():
            if name in options.generated:
                type.__setattr__(cls, name, function)
        options.from_data = cls.from_data
        if "from_data" in options.generated:
            options.construction = construction
        options.prepared = True


_reserved = frozenset(dir(Record))
