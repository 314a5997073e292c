"""The machinery of one setting: `Setting`, the declaration and descriptor.

A `Setting` knows the Python types it accepts, its default, its help text and
its validators; `Setting.clean` turns a user's value into its normal form and
reports what is wrong with it as `Issue` objects, which `problems` phrases
for the person who wrote the value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar, overload

from .problems import ProblemKind, closest, show

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["MISSING", "Issue", "Setting", "Validator"]

T = TypeVar("T")

#: Marks "no default given" (``None`` is a valid default).
MISSING: Any = object()


class Issue(NamedTuple):
    """What a validator reports; turned into a `Problem` with a label.

    ``message`` continues a sentence that starts with the setting's label,
    e.g. ``"must be at least 1, got 0"``.
    """

    message: str
    kind: ProblemKind = "value"
    subkey: str | None = None
    hint: str = ""


Validator = Callable[[Any], Iterable[Issue]]


class Setting(Generic[T]):
    """The declaration of one setting, and the descriptor that reads it.

    ``types`` are the Python types accepted from the user; ``T`` is the type
    of the attribute after ``normalize`` (and ``resolve``, for values that
    depend on other settings) has run.  ``bool`` is only accepted where listed,
    although it is a subclass of ``int``.
    """

    key: str
    attr: str

    def __init__(
        self,
        types: type | tuple[type, ...],
        *,
        help: str,
        default: Any = MISSING,
        default_factory: Callable[[], Any] | None = None,
        default_doc: str | None = None,
        nullable: bool = False,
        items: type | None = None,
        choices: tuple[Any, ...] | None = None,
        validators: tuple[Validator, ...] = (),
        normalize: Callable[[Any], Any] | None = None,
        resolve: Callable[[Any, Mapping[str, Any]], Any] | None = None,
        expects: str | None = None,
    ) -> None:
        if (default is MISSING) == (default_factory is None):
            raise TypeError("give exactly one of default and default_factory")
        self.types = types if isinstance(types, tuple) else (types,)
        self.help = help
        self.default = None if default is MISSING else default
        self.default_factory = default_factory
        self.nullable = nullable
        self.items = items
        self.choices = choices
        self.validators = validators
        self.normalize = normalize
        self.resolve = resolve
        self.expects = expects or self._describe_types()
        self.default_doc = default_doc or repr(self.default)

    def __set_name__(self, owner: type, name: str) -> None:
        self.attr = name
        self.key = name.upper()

    @overload
    def __get__(self, instance: None, owner: type) -> Setting[T]: ...

    @overload
    def __get__(self, instance: Settings, owner: type) -> T: ...

    def __get__(self, instance: Settings | None, owner: type) -> Setting[T] | T:
        if instance is None:
            return self
        value: T = instance._values[self.attr]
        return value

    def __repr__(self) -> str:
        return f"<Setting {self.key}: {self.expects} = {self.default_doc}>"

    def get_default(self) -> Any:
        """The default as a user would write it (before normalization)."""
        if self.default_factory is not None:
            return self.default_factory()
        return self.default

    def clean(self, value: Any) -> tuple[list[Issue], Any]:
        """Check ``value`` and return the issues found and its normal form."""
        issues = self._check_type(value)
        if issues or value is None:
            return issues, value
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(repr(c) for c in self.choices)
            words = [choice for choice in self.choices if isinstance(choice, str)]
            match = closest(value, words) if isinstance(value, str) else None
            hint = f"Did you mean {match!r}?" if match else ""
            message = f"must be one of {allowed}; got {show(value)}"
            return [Issue(message, hint=hint)], value
        if self.normalize is not None:
            value = self.normalize(value)
        for validator in self.validators:
            issues.extend(validator(value))
        return issues, value

    def _check_type(self, value: Any) -> list[Issue]:
        if value is None:
            return [] if self.nullable else [self._type_issue(value)]
        if not _is_instance(value, self.types):
            return [self._type_issue(value)]
        if self.items is not None and isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                if not _is_instance(item, (self.items,)):
                    return [
                        Issue(
                            f"must be {self.expects}, but item {index} is "
                            f"{show(item)} ({type(item).__name__})",
                            kind="type",
                        )
                    ]
        return []

    def _type_issue(self, value: Any) -> Issue:
        return Issue(
            f"must be {self.expects}, got {show(value)} ({type(value).__name__})",
            kind="type",
        )

    def _describe_types(self) -> str:
        names = []
        for type_ in self.types:
            if type_ is tuple and list in self.types:
                continue
            name = "dict" if type_ is Mapping else type_.__name__
            if self.items is not None and type_ in (list, tuple):
                name = f"{name} of {self.items.__name__}"
            names.append(name)
        if self.nullable:
            names.append("None")
        if len(names) == 1:
            return names[0]
        return f"{', '.join(names[:-1])} or {names[-1]}"


def _is_instance(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types)
