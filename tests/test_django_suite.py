"""The project's ASGI handler and middleware classes (core/asgi.py, core/middleware.py)
against Django's own: Django's tests run on the project's classes, and the project's
tests run on Django's (DJANGO_STOCK_CLASSES).

The project's classes are copies and subclasses of Django's: a Django upgrade
that breaks them fails here first, in Django's words. core/internals.py says
which source they were read against; this says whether they still behave like it.
"""

import hashlib
import json
import os
import re
import subprocess
import tarfile
import urllib.request
from pathlib import Path

import pytest
from bakery import BAKED_TEST_ENV, bake, baked_pytest, run

RUNNER = Path(__file__).parent / "django_suite" / "run.py"
# Django's test modules that reach the handler and the middleware.
MODULES = [
    "asgi",
    "handlers",
    "middleware",
    "csrf_tests",
    "sessions_tests",
    "messages_tests",
    "auth_tests",
    "middleware_exceptions",
    "requests_tests",
    "view_tests",
    "test_client",
    "decorators",
]
# Where the project's classes differ from Django's on purpose.
DIFFERENCES = {
    # core.middleware.CommonMiddleware answers a POST, PUT or DELETE to a URL
    # missing its slash with 308 (the method and body kept) where Django, in
    # DEBUG, raises RuntimeError.
    "middleware.tests.CommonMiddlewareTest.test_append_slash_no_redirect_in_DEBUG",
    "middleware.tests.CommonMiddlewareTest.test_append_slash_no_redirect_on_POST_in_DEBUG_custom_urlconf",
}
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "async-django-template"


def django_source(version: str) -> Path:
    """Django's source release `version` from PyPI, checked against the index's SHA-256; cached."""
    archive = CACHE / f"django-{version}.tar.gz"
    if not archive.exists():
        request = urllib.request.Request(
            "https://pypi.org/simple/django/",
            headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            files = json.load(answer)["files"]
        (release,) = [f for f in files if f["filename"] == f"django-{version}.tar.gz"]
        with urllib.request.urlopen(release["url"], timeout=120) as answer:
            data = answer.read()
        assert hashlib.sha256(data).hexdigest() == release["hashes"]["sha256"]
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = archive.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(archive)
    return archive


def test_django_s_own_tests_pass_on_the_project_s_classes(tmp_path, environments):
    project = bake(tmp_path / "bake")
    python = environments.python_for(project)
    version = run([python, "-c", "import django; print(django.__version__)"], project)
    version = version.stdout.strip()
    try:
        archive = django_source(version)
    except OSError as exc:
        if os.environ.get("CI", "").lower() == "true":
            raise
        pytest.skip(f"Django {version}'s source release cannot be fetched: {exc}")
    with tarfile.open(archive) as source:
        members = [m for m in source.getmembers() if m.name.startswith(f"django-{version}/tests/")]
        source.extractall(tmp_path, members=members, filter="data")
    tests = tmp_path / f"django-{version}" / "tests"

    # Django's runner reports its tests' failures itself: its exit status is not needed.
    result = subprocess.run(
        [python, RUNNER, project, tests, "--parallel=1", "--noinput", *MODULES],
        cwd=project,
        env={**os.environ, **BAKED_TEST_ENV},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = result.stdout + result.stderr
    assert "Swapped in the project's ASGIHandler, " in output, output[-3000:]
    ran = int(re.search(r"^Ran (\d+) tests", output, re.MULTILINE)[1])
    assert ran > 2000, output[-3000:]
    failed = set(re.findall(r"^(?:FAIL|ERROR): \S+ \((\S+)\)", output, re.MULTILINE))
    assert failed == DIFFERENCES, output[-20000:]


def test_the_defaults_pass_on_django_s_own_classes_too(tmp_path, environments):
    """DJANGO_STOCK_CLASSES=true serves with Django's own ASGI handler and middleware.

    The default project's suite passes on them too: only the tests marked
    `project_classes`, about what the project's classes add, are skipped.
    """
    project = bake(tmp_path)
    python = environments.python_for(project)
    result = run(
        baked_pytest(python, tmp_path, "-q", "-p", "no:anyio", "-rs"),
        cwd=project,
        env={**BAKED_TEST_ENV, "DJANGO_STOCK_CLASSES": "true"},
    )
    skipped = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert skipped, result.stdout
    assert all("DJANGO_STOCK_CLASSES: Django's own classes" in line for line in skipped), skipped
