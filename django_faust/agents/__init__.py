"""Agents: async stream processors (``@app.agent``)."""

from __future__ import annotations

from typing import Any

from .actor import Actor
from .agent import Agent
from .supervision import Supervision, supervision_for

__all__ = ["Actor", "Agent", "Supervision", "supervision_for"]


def __getattr__(name: str) -> Any:
    # AgentTestWrapper moved to django_faust.testing; importing it from here
    # keeps working (lazily: the testing package imports this one).
    if name == "AgentTestWrapper":
        from ..testing.agents import AgentTestWrapper

        return AgentTestWrapper
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
