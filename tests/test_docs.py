"""docs/ stays true to the code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_settings_reference_is_generated_from_the_code():
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "gen_settings.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_module_map_names_every_module():
    text = (ROOT / "docs" / "module-map.rst").read_text()
    named = set(re.findall(r"``([\w/]+\.py)``", text))
    package = ROOT / "django_faust"
    missing = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package).as_posix()
        if path.name == "__init__.py" and path.parent != package:
            continue
        if relative not in named and path.name not in named:
            missing.append(relative)
    assert not missing, f"docs/module-map.rst does not mention: {missing}"


def test_readme_starts_with_the_two_commands():
    head = (ROOT / "README.rst").read_text().split("What it is")[0]
    assert "manage.py faust worker" in head
    assert "bash .ci/run" in head
