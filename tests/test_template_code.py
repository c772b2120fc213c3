"""The template's own Python is held to the same ruff rules as the projects it bakes.

Ruff runs on explicit paths: the project template's pyproject.toml is Jinja,
not TOML, so ruff cannot read configuration below it.
"""

import subprocess
import sys

from bakery import Environments
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


def test_a_new_environment_starts_with_the_bytecode_another_compiled(tmp_path):
    """bakery.Environments: bytecode is kept by its source's inode and linked into new ones."""
    environments = Environments(tmp_path / "venvs")
    first, second = (tmp_path / name / "lib/python3.13/site-packages/pkg" for name in "ab")
    for directory in first, second:
        directory.mkdir(parents=True)
    (first / "mod.py").write_text("X = 1\n")
    (second / "mod.py").hardlink_to(first / "mod.py")  # as uv installs from its cache
    (second / "other.py").write_text("Y = 2\n")  # installed in the second only
    pyc = first / "__pycache__" / "mod.cpython-313.pyc"
    pyc.parent.mkdir()
    pyc.write_bytes(b"compiled")
    (first / "__pycache__" / "mod.cpython-313.opt-1.pyc").write_bytes(b"optimized")

    environments.keep_bytecode(tmp_path / "a" / "bin" / "python")
    environments._link_kept_bytecode(tmp_path / "b")

    assert (second / "__pycache__" / "mod.cpython-313.pyc").samefile(pyc)
    assert sorted(p.name for p in (second / "__pycache__").iterdir()) == ["mod.cpython-313.pyc"]
