"""Bake projects and run commands in them, for the template's tests."""

import contextlib
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


def baked_pytest(python: Path, tmp_path: Path, *args: str) -> list:
    """The command that runs a baked project's pytest with `args`, for `run` or subprocess.

    Each run gets its own --basetemp under `tmp_path`. Without one, a run
    prunes the numbered /tmp/pytest-of-<user> directories of earlier runs
    (pytest keeps three) before its summary: on a machine that has run this
    suite, gigabytes of virtual environments, which once held a 10 s baked
    run past its 300 s timeout. No cache either: the tree is tested once.
    """
    basetemp = tmp_path / "pytest"  # emptied by each run that uses it
    return [python, "-m", "pytest", "-p", "no:cacheprovider", f"--basetemp={basetemp}", *args]


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

    Nearly every tree of the matrix has a pyproject.toml of its own (its dependencies
    follow its options), so nearly every tree gets a new environment, and its first
    run compiled Django, pydantic, pytest and the rest to bytecode again: 1.5 s of CPU
    per tree. uv hard-links each installed file from its cache, so a module installed
    in two environments is one file (one inode); `keep_bytecode` keeps the bytecode a
    run compiled, by the inode of its source, and a new environment starts with what
    was kept. Python checks a .pyc against its source's mtime and size, which a hard
    link shares, and recompiles when they differ, so a kept file can be stale only
    in the way any .pyc can.
    """

    def __init__(self, root: Path):
        self.root = root
        self.bytecode = root / "bytecode"
        self.bytecode.mkdir(parents=True, exist_ok=True)

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
                self._link_kept_bytecode(venv)
                (venv / "ready").touch()
        return venv / "bin" / "python"

    def keep_bytecode(self, python: Path) -> None:
        """Keep the bytecode that runs in `python`'s environment compiled, for new ones."""
        for pyc in _site_packages(python.parent.parent).glob("**/__pycache__/*.*.pyc"):
            module, tag, suffix = pyc.name.split(".", 2)  # name.cpython-312.pyc
            if suffix != "pyc":
                continue  # optimized bytecode: name.cpython-312.opt-1.pyc
            try:
                source = pyc.parent.parent / f"{module}.py"
                kept = self.bytecode / f"{source.stat().st_ino}.{tag}.pyc"
                if not kept.exists():
                    # Linked under another name, then renamed: no reader sees a
                    # half-made file, and two workers keeping one file both succeed.
                    partial = kept.with_name(f"{kept.name}.{os.getpid()}")
                    os.link(pyc, partial)
                    partial.replace(kept)
            except OSError:
                continue  # a module without its source, or a file removed meanwhile

    def _link_kept_bytecode(self, venv: Path) -> None:
        site_packages = _site_packages(venv)
        tag = "cpython-" + site_packages.parent.name.removeprefix("python").replace(".", "")
        for source in site_packages.glob("**/*.py"):
            kept = self.bytecode / f"{source.stat().st_ino}.{tag}.pyc"
            if kept.exists():
                pyc = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
                pyc.parent.mkdir(exist_ok=True)
                with contextlib.suppress(FileExistsError):
                    os.link(kept, pyc)


def _site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def check_lint(python: Path, project: Path, *paths: str) -> None:
    """ruff check and ruff format --check, with the project's environment and settings."""
    bin_dir = python.parent
    targets = list(paths) or ["."]
    run([bin_dir / "ruff", "check", "--no-cache", *targets], cwd=project)
    run([bin_dir / "ruff", "format", "--check", "--no-cache", *targets], cwd=project)
