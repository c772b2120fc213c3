"""The template's own Python is held to the same ruff rules as the projects it bakes.

Ruff runs on explicit paths: the project template's pyproject.toml is Jinja,
not TOML, so ruff cannot read configuration below it.
"""

import subprocess
import sys

from matrix import TEMPLATE_DIR

OWN_CODE = ["tests", "hooks", "bench", "local_extensions.py", "docs/examples"]


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, *OWN_CODE],
        cwd=TEMPLATE_DIR,
        capture_output=True,
        text=True,
    )


def test_ruff_check():
    result = ruff("check", "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format():
    result = ruff("format", "--check", "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr
