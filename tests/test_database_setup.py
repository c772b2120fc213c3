"""A PostgreSQL bake's first hour: its .env, and what it says when no server answers.

A new user bakes with PostgreSQL and runs the README's commands before (or
without) starting a server. `migrate` and `pytest` must each end at once with
one line naming the host, port and database, and what to do; not a traceback
after a 10 s wait, nor thousands of lines of errors.
"""

import getpass
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from bakery import BAKED_TEST_ENV, bake, baked_pytest
from servers import free_port

SLUG = "my_service"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return bake(tmp_path_factory.mktemp("postgresql"), database="postgresql")


@pytest.fixture(scope="module")
def python(project, environments) -> Path:
    return environments.python_for(project)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: connections are refused at once."""
    return free_port()


@pytest.fixture
def earlier_runs(tmp_path) -> list[Path]:
    """Numbered directories an earlier pytest run left in a temporary root of their own.

    A run without its own --basetemp creates a numbered directory beside them
    and deletes all but the newest three; the ones a template suite's runs
    leave hold gigabytes of virtual environments (`bakery.baked_pytest`).
    """
    runs = tmp_path / "temproot" / f"pytest-of-{getpass.getuser()}"
    for number in range(1, 5):
        (runs / f"pytest-{number}").mkdir(parents=True)
        (runs / f"pytest-{number}" / "kept").touch()
    return sorted(runs.iterdir())


def run(project: Path, port: int, command: list, ci: bool = False, temproot: Path | None = None):
    """Run `command` in the project, DATABASE_URL on `port`; (result, seconds)."""
    environment = {
        **os.environ,
        **BAKED_TEST_ENV,
        # pytest's root for its numbered temporary directories, if not tempfile's.
        **({"PYTEST_DEBUG_TEMPROOT": str(temproot)} if temproot else {}),
        "DATABASE_URL": f"postgres://{SLUG}:secret@127.0.0.1:{port}/{SLUG}",
        "CI": "true" if ci else "",
    }
    started = time.monotonic()
    result = subprocess.run(
        command,
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result, time.monotonic() - started


def named(port: int) -> str:
    """The start of the line that names the server the project could not reach."""
    return f"PostgreSQL at 127.0.0.1:{port}, database '{SLUG}', user '{SLUG}': Connection refused"


def test_migrate_without_a_server_says_which_in_one_line_within_5_s(python, project, closed_port):
    result, seconds = run(project, closed_port, [python, "manage.py", "migrate"])
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert seconds < 5, output
    assert "Traceback" not in output
    (line,) = [line for line in output.splitlines() if named(closed_port) in line]
    assert "start PostgreSQL there, or point DATABASE_URL at a server that runs" in line
    # Django's frame for a system check error, around the one line.
    assert len(output.strip().splitlines()) <= 5, output


def test_pytest_without_a_server_skips_the_database_tests_with_one_line(
    python, project, closed_port, tmp_path, earlier_runs
):
    temproot = earlier_runs[0].parent.parent
    result, _ = run(project, closed_port, baked_pytest(python, tmp_path, "-q"), temproot=temproot)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    lines = output.strip().splitlines()
    # Progress dots, the line, the summary: not a traceback per test.
    assert len(lines) < 30, output[-5000:]
    assert f"Database tests skipped: {named(closed_port)}" in output
    assert re.fullmatch(r"\d+ passed, \d+ skipped in .*", lines[-1]), lines[-1]
    assert all((run / "kept").exists() for run in earlier_runs)


def test_pytest_without_a_server_fails_at_once_under_ci(python, project, closed_port, tmp_path):
    result, _ = run(project, closed_port, baked_pytest(python, tmp_path, "-q"), ci=True)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-5000:]
    assert len(output.strip().splitlines()) <= 3, output[-5000:]
    assert named(closed_port) in output


def test_env_has_a_password_and_agrees_with_the_readme_and_settings(project):
    """.env's DATABASE_URL is the documented default, plus a password generated for the bake."""
    default = f"postgres://{SLUG}@127.0.0.1:5432/{SLUG}"
    dotenv = (project / ".env").read_text(encoding="utf-8")
    (url,) = re.findall(r"(?m)^DATABASE_URL=(.*)$", dotenv)
    password = re.fullmatch(rf"postgres://{SLUG}:([0-9a-f]{{32}})@127\.0\.0\.1:5432/{SLUG}", url)
    assert password, url
    assert f"DATABASE_URL={default}\n" in (project / ".env.example").read_text(encoding="utf-8")
    assert f"| `DATABASE_URL` | `{default}` |" in (project / "README.md").read_text(
        encoding="utf-8"
    )
    settings = (project / "config/settings.py").read_text(encoding="utf-8")
    (name,) = re.findall(r'(?m)^_name = "(.*)"$', settings)
    (template,) = re.findall(r'env\.db\("DATABASE_URL", default=f"(postgres://.*)"\)', settings)
    assert template.replace("{_name}", name) == default
    # Another bake, another password.
    assert (
        password[1]
        not in (bake(project.parent / "again", database="postgresql") / ".env").read_text()
    )
