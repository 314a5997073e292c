"""Testing helpers: a fresh app on the memory transport, and agent test contexts.

The pytest plugin (`django_faust.testing.plugin`, registered automatically
when django-faust is installed) provides the ``faust_app`` fixture;
`AgentTestWrapper` is what ``agent.test_context()`` yields.
"""

from .agents import AgentTestWrapper
from .apps import make_app, running

__all__ = ["AgentTestWrapper", "make_app", "running"]
