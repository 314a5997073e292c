"""Settings as a user writes them: a FAUST dict in the example project.

Each test writes a settings module that extends the example project's
``FAUST`` and runs ``manage.py`` in a subprocess, as a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_manage_py import EXAMPLE, manage, user_env

pytestmark = pytest.mark.slow


def project_with(tmp_path: Path, faust: str) -> dict[str, str]:
    """The environment selecting the example settings with ``FAUST`` updated."""
    (tmp_path / "user_settings.py").write_text(
        "from example.settings import *  # noqa: F403\n\n"
        f"FAUST = {{**FAUST, {faust}}}  # noqa: F405\n"
    )
    return {
        "DJANGO_SETTINGS_MODULE": "user_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(EXAMPLE)]),
    }


def test_version_renames_the_changelogs_but_not_the_project_topics(tmp_path):
    env = project_with(tmp_path, '"VERSION": 2')
    result = manage("tables", "--json", env=env)
    assert result.returncode == 0, result.stderr
    changelogs = {row["name"]: row["changelog"] for row in json.loads(result.stdout)}
    assert changelogs["order-counts"] == "example-v2-order-counts-changelog"
    result = manage("agents", "--json", env=env)
    assert result.returncode == 0, result.stderr
    topics = {row["name"]: row["topic"] for row in json.loads(result.stdout)}
    assert topics["@process_order"] == "orders"


def test_worker_without_topic_declaration_names_the_missing_topic(tmp_path):
    # The memory broker starts empty, so nothing the worker needs exists.
    env = project_with(tmp_path, '"TOPIC_ALLOW_DECLARE": False, "WEB_ENABLED": False')
    result = manage("worker", env=env)
    assert result.returncode != 0
    assert "Topic 'example-dead-letters' does not exist" in result.stderr
    assert 'FAUST["TOPIC_ALLOW_DECLARE"] is False' in result.stderr


@pytest.mark.parametrize(
    ("faust", "message"),
    [
        ('"VERSION": 0', 'FAUST["VERSION"] must be at least 1, got 0'),
        ('"BROKER_COMMIT_EVRY": 100', 'did you mean "BROKER_COMMIT_EVERY"?'),
        ('"STREAM_WAIT_EMPTY": "yes"', 'FAUST["STREAM_WAIT_EMPTY"] must be bool'),
        ('"STORE": "redis://"', "valid store schemes are: memory, rocksdb"),
    ],
)
def test_bad_settings_are_refused_by_check_and_by_the_worker(tmp_path, faust, message):
    env = project_with(tmp_path, faust)
    check = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        timeout=60,
        env=user_env(**env),
    )
    # System checks (which the worker runs too) show a hint capitalized, on a
    # line of its own.
    assert check.returncode != 0
    assert message.lower() in check.stderr.lower()
    worker = manage("worker", env=env)
    assert worker.returncode != 0
    assert message.lower() in worker.stderr.lower()
