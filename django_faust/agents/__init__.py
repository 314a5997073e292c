"""Agents: async stream processors (``@app.agent``)."""

from .actor import Actor
from .agent import Agent, AgentTestWrapper

__all__ = ["Actor", "Agent", "AgentTestWrapper"]
