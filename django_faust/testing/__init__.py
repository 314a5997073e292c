"""Testing helpers: a fresh app on the memory transport, and agent test contexts.

The pytest plugin (`django_faust.testing.plugin`, registered automatically
when django-faust is installed) provides the ``faust_app`` fixture.
"""

from .apps import make_app, running

__all__ = ["make_app", "running"]
