"""Problem analysis: what is wrong with a set of settings, and how to say it.

`analyse` checks every given setting against its declaration, collects every
problem at once (so a broken FAUST dict is fixed in one round trip) and runs
the checks that involve more than one setting.  Unknown names get a
did-you-mean hint from `closest`.

The module knows nothing of the declarations themselves: the caller passes
them in a `Style`, which also says how the source spells a setting
(``FAUST["TOPIC_PARTITIONS"]`` or ``topic_partitions``).
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    from .setting import Issue, Setting

__all__ = [
    "Given",
    "Problem",
    "ProblemKind",
    "Style",
    "analyse",
    "closest",
    "describe",
    "did_you_mean",
    "show",
]

ProblemKind = Literal["not_a_mapping", "unknown", "type", "value"]

_short_repr = reprlib.Repr()
_short_repr.maxstring = 60
_short_repr.maxother = 60


def show(value: Any) -> str:
    """A short repr of a user's value, for messages."""
    return _short_repr.repr(value)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a FAUST dict, phrased for the person who wrote it.

    ``key`` is the setting (``"TOPIC_PARTITIONS"``), or ``None`` when the
    problem is with FAUST itself; ``subkey`` names the entry inside a
    dict-valued setting such as BROKER_CREDENTIALS.  ``kind`` says what sort
    of problem it is, so system checks can give each its own id.  ``hint``,
    when set, suggests a fix.
    """

    key: str | None
    kind: ProblemKind
    message: str
    hint: str = ""
    subkey: str | None = None

    def __str__(self) -> str:
        if not self.hint:
            return self.message
        hint = self.hint
        if hint[:1].isupper() and hint[1:2].islower():
            hint = hint[0].lower() + hint[1:]
        return f"{self.message.rstrip('.')}; {hint}"


class Given:
    """The settings one source gave, as cross-setting checks see them."""

    def __init__(
        self, cleaned: Mapping[str, Any], spelled: Mapping[str, str], style: Style
    ) -> None:
        self.cleaned = cleaned
        self.spelled = spelled
        self.style = style

    def label(self, key: str) -> str:
        """The setting's label as the user spelled it, else in the source's style."""
        name = self.spelled.get(key)
        if name is None:
            name = key if self.style.upper else self.style.declarations[key].attr
        return self.style.label(name)

    def effective(self, key: str) -> Any:
        """The value in force: the given one, else the default.

        ``None`` when the setting was given but is invalid, since that is
        already reported.
        """
        if key in self.cleaned:
            return self.cleaned[key]
        if key in self.spelled:
            return None
        setting = self.style.declarations[key]
        return setting.clean(setting.get_default())[1]


#: A check that involves more than one setting.
CrossCheck = Callable[[Given], Iterable[Problem]]


class Style(NamedTuple):
    """How settings are spelled in one source: FAUST keys or keyword names."""

    #: The setting of each name the source may use.
    names: Mapping[str, Setting[Any]]
    #: How a name is shown in a message (``FAUST["X"]`` or ``x``).
    label: Callable[[object], str]
    #: Every setting, by upper-case key.
    declarations: Mapping[str, Setting[Any]]
    #: Whether the source spells settings by their upper-case key.
    upper: bool
    checks: tuple[CrossCheck, ...] = ()


def analyse(given: object, style: Style) -> tuple[list[Problem], dict[str, Any]]:
    """Validate ``given``; return its problems and its cleaned values by key."""
    if not isinstance(given, Mapping):
        message = (
            f"FAUST must be a dict of settings, got {show(given)} "
            f"({type(given).__name__})."
        )
        return [Problem(None, "not_a_mapping", message)], {}
    problems: list[Problem] = []
    cleaned: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for name, value in given.items():
        setting = style.names.get(name) if isinstance(name, str) else None
        if setting is None:
            problems.append(_unknown(name, style))
            continue
        if setting.key in spelled:
            first, second = style.label(spelled[setting.key]), style.label(name)
            problems.append(
                Problem(
                    setting.key, "value", f"{second} repeats {first}; give only one."
                )
            )
            continue
        spelled[setting.key] = name
        issues, value = setting.clean(value)
        for issue in issues:
            problems.append(_to_problem(setting, style.label(name), issue))
        if not issues:
            cleaned[setting.key] = value
    context = Given(cleaned, spelled, style)
    for check in style.checks:
        problems.extend(check(context))
    return problems, cleaned


def _unknown(name: object, style: Style) -> Problem:
    return Problem(
        name if isinstance(name, str) else None,
        "unknown",
        f"Unknown setting {style.label(name)}.",
        hint=did_you_mean(name if isinstance(name, str) else repr(name), style.names),
    )


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """A hint naming the closest valid name, or where to look them up."""
    match = closest(name, valid)
    if match is not None:
        return f'Did you mean "{match}"?'
    return "It is not close to any known name; see django_faust.conf.SETTINGS."


def closest(name: str, valid: Iterable[str]) -> str | None:
    """The valid name most like ``name``, ignoring case and dash/underscore."""
    candidates = {_fold(choice): choice for choice in valid}
    matches = difflib.get_close_matches(_fold(name), candidates, n=1, cutoff=0.6)
    return candidates[matches[0]] if matches else None


def _fold(name: str) -> str:
    return name.upper().replace("-", "_")


def _to_problem(setting: Setting[Any], label: str, issue: Issue) -> Problem:
    if issue.subkey is not None:
        label = f'{label}["{issue.subkey}"]'
    if issue.kind == "unknown":
        message = f"Unknown key {label}."
    else:
        message = f"{label} {issue.message}."
    return Problem(setting.key, issue.kind, message, issue.hint, issue.subkey)


def describe(problems: list[Problem]) -> str:
    """The text of the ImproperlyConfigured raised for ``problems``."""
    if len(problems) == 1:
        return f"Invalid django-faust settings: {problems[0]}"
    lines = "\n".join(f"  - {problem}" for problem in problems)
    return f"Invalid django-faust settings ({len(problems)} problems):\n{lines}"
