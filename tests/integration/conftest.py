"""Fixtures of the broker tests that run real worker processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from django_faust.testing.broker import TestBroker
from tests.integration.workers import Project


@pytest.fixture
def project_factory(
    kafka_broker: TestBroker, tmp_path: Path
) -> Iterator[Callable[[str], Project]]:
    """Makes `Project` objects; their workers are killed when the test ends."""
    projects: list[Project] = []

    def make(prefix: str, partitions: int = 4) -> Project:
        project = Project(kafka_broker, tmp_path, prefix, partitions)
        projects.append(project)
        return project

    try:
        yield make
    finally:
        for project in projects:
            project.kill_all()
