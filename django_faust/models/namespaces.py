"""The namespace registry: which record class a serialized payload belongs to.

Every concrete record class registers under its namespace when it is
created, and its JSON form carries ``{"__faust": {"ns": namespace}}``. A
consumer that does not know the value type of a topic (or that expects a
base class and receives a subclass) uses the namespace to rebuild the right
class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from django_faust.models.record import Record

__all__ = [
    "METADATA_KEY",
    "NAMESPACE_KEY",
    "decode_model_payload",
    "model_for_payload",
    "record_loader",
    "registry",
]

#: Key of the metadata mapping added to a record's serialized form.
METADATA_KEY = "__faust"
#: Key of the namespace inside the metadata mapping.
NAMESPACE_KEY = "ns"

#: Namespace -> record class, filled as (non-abstract) record classes are
#: created. A class declared again under the same namespace replaces the old
#: one, which is what module reloading needs.
registry: dict[str, type[Record]] = {}


def model_for_payload(
    obj: Any, preferred: type[Record] | None = None
) -> type[Record] | None:
    """The record class named by the metadata of a decoded payload.

    With ``preferred``, only that class or one of its subclasses is accepted
    and ``preferred`` itself is the fallback, so a payload can never turn
    into an unrelated type.
    """
    if isinstance(obj, dict):
        meta = obj.get(METADATA_KEY)
        if isinstance(meta, dict):
            model = registry.get(meta.get(NAMESPACE_KEY))  # type: ignore[arg-type]
            if model is not None and (
                preferred is None or issubclass(model, preferred)
            ):
                return model
    return preferred


def decode_model_payload(obj: Any, preferred: type[Record] | None = None) -> Any:
    """Turn a decoded mapping into the record it describes.

    A mapping whose metadata names a registered namespace becomes an
    instance of that class; anything else is returned unchanged, unless
    ``preferred`` is given, in which case it is built as that class.
    """
    model = model_for_payload(obj, preferred)
    if model is None:
        return obj
    return model.__dict__["_options"].from_data(obj)


def record_loader(
    model: type[Record], *, passthrough: bool = False
) -> Callable[[Any], Any]:
    """A function building ``model`` (or a subclass named by the payload).

    It is `decode_model_payload` with a fast path for the common case of a
    payload of exactly ``model``, and it calls the generated ``from_data``
    held by the class options directly: attribute lookups on record
    classes are slower than on plain classes (see `RecordMeta`). With
    ``passthrough``, values that are not dicts are returned unchanged
    (nested fields: None, or a record already built) instead of refused.
    """
    options = model.__dict__["_options"]
    namespace = options.namespace

    def load(obj: Any) -> Any:
        if obj.__class__ is dict:
            meta = obj.get(METADATA_KEY)
            if meta is None or (
                meta.__class__ is dict and meta.get(NAMESPACE_KEY) == namespace
            ):
                return options.from_data(obj)
        elif passthrough:
            return obj
        return decode_model_payload(obj, model)

    return load
