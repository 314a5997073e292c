"""The per-class settings of a record (``class P(Record, serializer="json")``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from django_faust.models.codegen import Construction
    from django_faust.models.converters import Converter
    from django_faust.models.fields import FieldDescriptor

__all__ = ["INHERITED_OPTIONS", "OPTION_NAMES", "RecordOptions"]

#: Keyword arguments accepted in a record class statement.
OPTION_NAMES = frozenset(
    {
        "serializer",
        "namespace",
        "validation",
        "include_metadata",
        "isodates",
        "abstract",
        "frozen",
    }
)
#: Options a subclass takes from its parent unless it sets them itself.
#: ``namespace`` and ``abstract`` always describe one class only.
INHERITED_OPTIONS = (
    "serializer",
    "validation",
    "include_metadata",
    "isodates",
    "frozen",
)


def _no_values(obj: Any) -> tuple[()]:
    return ()


def _abstract_from_data(data: Any) -> Any:
    raise TypeError("abstract records cannot be built")


class RecordOptions:
    """Options and derived, precomputed data of one record class.

    ``fields`` maps field names to descriptors in declaration order. The
    converter maps are filled when the class is prepared (annotations
    resolved): they only hold fields that need work.
    """

    __slots__ = (
        "abstract",
        "construction",
        "decoders",
        "field_names",
        "fields",
        "from_data",
        "frozen",
        "generated",
        "include_metadata",
        "isodates",
        "namespace",
        "prepared",
        "representers",
        "serializer",
        "validation",
        "validators",
        "values",
    )

    def __init__(
        self,
        *,
        serializer: Any = None,
        namespace: str = "",
        validation: bool = False,
        include_metadata: bool = True,
        isodates: bool = True,
        abstract: bool = False,
        frozen: bool = False,
    ) -> None:
        self.serializer = serializer
        self.namespace = namespace
        self.validation = validation
        self.include_metadata = include_metadata
        self.isodates = isodates
        self.abstract = abstract
        self.frozen = frozen
        self.fields: dict[str, FieldDescriptor] = {}
        self.field_names: tuple[str, ...] = ()
        self.prepared = False
        self.decoders: dict[str, Converter] = {}
        self.validators: dict[str, Converter] = {}
        self.representers: frozenset[str] = frozenset()
        #: Returns the field values of an instance (for equality and hashing).
        self.values: Callable[[Any], Any] = _no_values
        #: Names of the methods generated for this class (not user-defined).
        self.generated: tuple[str, ...] = ()
        #: The class's ``from_data``, reachable without a (slow) attribute
        #: lookup on the class itself.
        self.from_data: Callable[[Any], Any] = _abstract_from_data
        #: How the generated ``from_data`` builds an instance from a dict
        #: (a `codegen.Construction`), for code inlining it; None until the
        #: class is prepared, and when the class defines ``from_data``.
        self.construction: Construction | None = None

    def __repr__(self) -> str:
        return (
            f"<RecordOptions: namespace={self.namespace!r} "
            f"serializer={self.serializer!r} validation={self.validation}>"
        )
