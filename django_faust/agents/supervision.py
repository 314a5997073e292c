"""What happens to an agent's actors when one of them raises.

Strategies are named with mode's supervisor classes, as in Faust (a class, a
subclass of one, or its dotted import path); this module is the one place
that turns that name into a `Supervision` the actors follow:

================================  ==============================================
``mode.OneForOneSupervisor``      restart the failed actor on a fresh stream
                                  (the default)
``mode.OneForAllSupervisor``      restart it and every other actor of the agent,
                                  each after the event in hand
``mode.ForfeitOneForOneSupervisor``  stop the failed actor; the others go on
``mode.ForfeitOneForAllSupervisor``  stop every actor of the agent (the others
                                  after the event in hand)
``mode.CrashingSupervisor``       crash the app, so the worker exits
================================  ==============================================

Anything else is refused with `ImproperlyConfigured` rather than quietly
treated as the default.
"""

from __future__ import annotations

import enum
from typing import Any

from mode import (
    CrashingSupervisor,
    ForfeitOneForAllSupervisor,
    ForfeitOneForOneSupervisor,
    OneForAllSupervisor,
    OneForOneSupervisor,
)
from mode.utils.imports import symbol_by_name

from ..exceptions import ImproperlyConfigured

__all__ = ["Supervision", "supervision_for"]


class Supervision(enum.Enum):
    """The behaviour of a supervisor strategy after an actor raised."""

    RESTART_ONE = "restart the failed actor"
    RESTART_ALL = "restart every actor"
    FORFEIT_ONE = "stop the failed actor"
    FORFEIT_ALL = "stop every actor"
    CRASH = "crash the app"

    @property
    def restarts(self) -> bool:
        """Whether the failed actor is started again on a fresh stream."""
        return self in (Supervision.RESTART_ONE, Supervision.RESTART_ALL)

    @property
    def reaches_siblings(self) -> bool:
        """Whether the other actors of the agent are restarted or stopped too."""
        return self in (Supervision.RESTART_ALL, Supervision.FORFEIT_ALL)


#: Most specific first: a user's subclass maps to what its parent does.
_STRATEGIES: tuple[tuple[type, Supervision], ...] = (
    (OneForOneSupervisor, Supervision.RESTART_ONE),
    (OneForAllSupervisor, Supervision.RESTART_ALL),
    (ForfeitOneForOneSupervisor, Supervision.FORFEIT_ONE),
    (ForfeitOneForAllSupervisor, Supervision.FORFEIT_ALL),
    (CrashingSupervisor, Supervision.CRASH),
)


def supervision_for(strategy: type | str, *, agent: str) -> Supervision:
    """The `Supervision` of ``strategy`` (a class or dotted path).

    ``agent`` names the agent in the error raised for an unknown strategy.
    """
    cls: Any = strategy
    if isinstance(strategy, str):
        try:
            cls = symbol_by_name(strategy)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ImproperlyConfigured(
                f"Agent {agent}: supervisor_strategy {strategy!r} cannot be "
                f"imported ({exc})."
            ) from exc
    if isinstance(cls, type):
        for known, supervision in _STRATEGIES:
            if issubclass(cls, known):
                return supervision
    names = ", ".join(f"mode.{known.__name__}" for known, _ in _STRATEGIES)
    raise ImproperlyConfigured(
        f"Agent {agent}: unknown supervisor_strategy {strategy!r}; use one of "
        f"{names} (or a subclass, or its dotted path)."
    )
