"""pytest plugin: ``faust_app`` gives each test a fresh app on ``memory://``."""

from __future__ import annotations

from typing import Any, Iterator

import pytest


@pytest.fixture
def faust_app() -> Iterator[Any]:
    """A new, unstarted App on a private memory broker.

    Declare topics and agents on it, then ``async with running(faust_app):``
    (from `django_faust.testing`) to run them.
    """
    from .apps import make_app

    yield make_app()


from .broker import kafka_broker  # noqa: E402, F401  (the real-broker fixture)
from .noida import noida_broker  # noqa: E402, F401  (transactions, compaction)
