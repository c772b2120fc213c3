"""Bake projects and run commands in them, for the template's tests."""

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from cookiecutter.main import cookiecutter
from filelock import FileLock
from matrix import TEMPLATE_DIR, pythons

# Files that differ between two bakes of the same answers, or are made by running.
UNSTABLE = {".env", "uv.lock"}
IGNORED_DIRS = {".venv", "__pycache__", ".pytest_cache", ".ruff_cache"}
# Django templates legitimately use {{ }} and {% %}.
JINJA_SYNTAX_ALLOWED = {".html"}
# A Jinja statement, comment or cookiecutter variable; plain `{{`/`}}` are ordinary
# in Python (f-strings, nested dicts).
JINJA_LEFTOVER = re.compile(r"\{%|%\}|\{#|\{\{-?\s*cookiecutter")
# A baked project's tests as its own CI workflow runs them: no .env, DEBUG off.
BAKED_TEST_ENV = {"DJANGO_ENV_FILE": "/nonexistent/.env", "DJANGO_SECRET_KEY": "test-" + "k3y" * 20}


def copy_template(destination: Path) -> Path:
    """A copy of this repository as a user's clone has it: no git, environments or caches."""
    shutil.copytree(
        TEMPLATE_DIR,
        destination,
        ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "*_cache", "site"),
    )
    return destination


def bake(output_dir: Path, **answers) -> Path:
    """Bake the template with `answers` (others default) and return the project directory."""
    output_dir.mkdir(parents=True, exist_ok=True)
    return Path(
        cookiecutter(
            str(TEMPLATE_DIR),
            no_input=True,
            extra_context=answers,
            output_dir=str(output_dir),
        )
    )


def project_files(project: Path):
    for root, dirs, files in os.walk(project):
        dirs[:] = sorted(d for d in dirs if d not in IGNORED_DIRS)
        for name in sorted(files):
            yield Path(root, name)


def tree_digest(project: Path) -> str:
    """Hash of the baked tree (paths, modes and contents), without per-bake files."""
    digest = hashlib.sha256()
    for path in project_files(project):
        relative = path.relative_to(project).as_posix()
        if relative in UNSTABLE:
            continue
        digest.update(f"{relative}\0{path.stat().st_mode & 0o777:o}\0".encode())
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def leftovers(project: Path) -> list[str]:
    """Template remains and sloppy whitespace in a baked tree."""
    problems = []
    for path in project_files(project):
        relative = path.relative_to(project).as_posix()
        text = path.read_text(encoding="utf-8")
        if "cookiecutter" in text.lower():
            problems.append(f"{relative}: mentions cookiecutter")
        if path.suffix not in JINJA_SYNTAX_ALLOWED and JINJA_LEFTOVER.search(text):
            problems.append(f"{relative}: Jinja syntax left over")
        if text and not text.endswith("\n"):
            problems.append(f"{relative}: no newline at end of file")
        if text.endswith("\n\n"):
            problems.append(f"{relative}: blank lines at end of file")
        if "\n\n\n\n" in text:
            problems.append(f"{relative}: three blank lines in a row")
        for number, line in enumerate(text.splitlines(), 1):
            if line != line.rstrip():
                problems.append(f"{relative}:{number}: trailing whitespace")
    return problems


class CommandFailed(AssertionError):
    pass


def run(command: list[str], cwd: Path, env: dict | None = None, timeout: float = 600):
    """Run a command; on failure raise with its whole output."""
    result = subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise CommandFailed(
            f"{' '.join(map(str, command))} exited {result.returncode} in {cwd}\n"
            f"--- stdout ---\n{result.stdout[-20000:]}\n--- stderr ---\n{result.stderr[-20000:]}"
        )
    return result


class Environments:
    """One virtual environment per distinct pyproject.toml and Python, shared by the projects.

    A baked project is not installed into its environment (uv `package = false`),
    so two projects with the same pyproject.toml need exactly the same one.
    """

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def python_for(self, project: Path, python: str | None = None) -> Path:
        """The interpreter of `project`'s environment on `python` ("3.13").

        `python` defaults to the oldest of matrix.pythons(), the Pythons the
        project declares that this machine has; uv never downloads one.
        """
        python = python or pythons()[0]
        digest = hashlib.sha256((project / "pyproject.toml").read_bytes()).hexdigest()[:16]
        venv = self.root / f"{digest}-py{python}"
        with FileLock(str(venv) + ".lock"):
            if not (venv / "ready").exists():
                run(
                    ["uv", "sync", "--quiet", "--no-python-downloads", "--python", python],
                    cwd=project,
                    env={"UV_PROJECT_ENVIRONMENT": str(venv)},
                )
                (venv / "ready").touch()
        return venv / "bin" / "python"


def check_lint(python: Path, project: Path, *paths: str) -> None:
    """ruff check and ruff format --check, with the project's environment and settings."""
    bin_dir = python.parent
    targets = list(paths) or ["."]
    run([bin_dir / "ruff", "check", "--no-cache", *targets], cwd=project)
    run([bin_dir / "ruff", "format", "--check", "--no-cache", *targets], cwd=project)
