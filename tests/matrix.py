"""The option matrix, derived from cookiecutter.json, and the Pythons it runs on.

Every option whose declared value is a list (a choice) or a boolean (a flag)
is a dimension. Adding an option to cookiecutter.json adds its combinations
here with no other change.

Free-text options (a string default that is not itself a template, so not the
derived `project_slug`) are answered awkwardly in every combination but the
all-defaults one: quotes, `&`, `<`, non-ASCII letters, a backslash, Markdown
emphasis and a trailing space, as a new user might type them. An escaping
bug in any feature then fails the combinations that have the feature, while
the all-defaults combination keeps the README's own output covered.

The baked projects run on every Python the project declares that this
machine has (`pythons()`); `cases()` says which combination runs on which.
"""

import functools
import itertools
import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

from local_extensions import BROKER_FEATURES

TEMPLATE_DIR = Path(__file__).resolve().parent.parent
PROJECT_TEMPLATE = TEMPLATE_DIR / "{{cookiecutter.project_slug}}"
DECLARED = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text(encoding="utf-8"))

# What every free-text answer starts with: HTML's five special characters
# (' " & < >), non-ASCII letters, and a backslash (escape character of Python,
# TOML, JSON and Markdown). `{{` and `{%` stay out: cookiecutter renders answers
# given without prompting as Jinja.
# Long enough that the slug derived from the name is as long as a slug may be
# (40 characters): every line that holds it must still pass ruff.
AWKWARD_PREFIX = 'Zoë\'s "Café" & <Bar> \\ Brasserie Züri '
# Restricts `pythons()` to some of the declared versions, comma-separated: "3.13".
PYTHONS_VARIABLE = "TEMPLATE_PYTHONS"
# "1": every combination on every Python (cases()).
EVERY_PYTHON_VARIABLE = "TEMPLATE_EVERY_PYTHON"


def dimensions() -> dict[str, list]:
    found = {}
    for name, declared in DECLARED.items():
        if name.startswith("_"):
            continue
        if isinstance(declared, bool):
            found[name] = [True, False]
        elif isinstance(declared, list):
            found[name] = list(declared)
    return found


def combinations() -> list[dict]:
    """Every combination of the dimensions' values, as {option: value}."""
    dims = dimensions()
    return [dict(zip(dims, values, strict=True)) for values in itertools.product(*dims.values())]


def combination_id(answers: dict) -> str:
    """A short readable id: choice values, then the flags that are on."""
    parts = []
    for name, value in answers.items():
        if name not in dimensions():
            continue
        if isinstance(value, bool):
            if value:
                parts.append(name.removeprefix("use_"))
        else:
            parts.append(str(value))
    return "-".join(parts) or "default"


def defaults() -> dict:
    """The matrix answers a user gets by pressing enter at every prompt."""
    return {
        name: declared if isinstance(declared, bool) else declared[0]
        for name, declared in DECLARED.items()
        if name in dimensions()
    }


def free_text_options() -> dict[str, str]:
    """{option: default} for the options answered with free text.

    A default that is a template (`project_slug`'s) is derived from other
    answers, so it is left to derive from the awkward ones.
    """
    return {
        name: declared
        for name, declared in DECLARED.items()
        if not name.startswith("_") and isinstance(declared, str) and "{" not in declared
    }


def awkward_answers() -> dict[str, str]:
    """An awkward answer for every free-text option, of the kind its default is.

    An email (a default with an `@`) gets a plus sign, an apostrophe and a
    non-ASCII letter in its local part. Any other text gets `AWKWARD_PREFIX`,
    its default as Markdown emphasis, and a trailing space:
    `Zoë's "Café" & <Bar> \\ Brasserie Züri *My Service* `, whose slug is
    `zoe_s_cafe_bar_brasserie_zuri_my_service`, 40 characters, the most allowed.
    """
    answers = {}
    for name, default in free_text_options().items():
        if "@" in default:
            local, _, domain = default.rpartition("@")
            answers[name] = f"{local}+o'brien.zoë@{domain}"
        else:
            answers[name] = f"{AWKWARD_PREFIX}*{default}* "
    return answers


def answers_for(combination: dict) -> dict:
    """The answers the matrix bakes `combination` with.

    The all-defaults combination keeps the declared free-text defaults; every
    other one gets `awkward_answers()` as well.
    """
    if combination == defaults():
        return dict(combination)
    return {**combination, **awkward_answers()}


def declared_pythons() -> list[str]:
    """The Python versions ("3.12", ...) the baked CI workflow tests, oldest first.

    They are the ones the project supports: tests/test_hooks.py checks that
    each satisfies the baked pyproject's requires-python and that the oldest
    is its lower bound.
    """
    workflow = (PROJECT_TEMPLATE / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")
    (listed,) = re.findall(r"(?m)^\s*python-version:\s*\[(.*)\]\s*$", workflow)
    versions = re.findall(r'"(3\.\d+)"', listed)
    return sorted(versions, key=lambda version: tuple(map(int, version.split("."))))


def requires_python() -> str:
    """The baked pyproject's requires-python, e.g. ">=3.12"."""
    text = (PROJECT_TEMPLATE / "pyproject.toml").read_text(encoding="utf-8")
    (line,) = re.findall(r"(?m)^requires-python = .*$", text)
    return tomllib.loads(line)["requires-python"]


@functools.cache
def installed_pythons() -> dict[str, str]:
    """{"3.12": path, ...}: the CPython versions uv finds on this machine, never downloading."""
    listed = subprocess.run(
        ["uv", "python", "list", "--only-installed", "--output-format", "json"],
        capture_output=True,
        check=True,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        text=True,
        timeout=60,
    )
    found = {}
    for interpreter in json.loads(listed.stdout):
        if interpreter["implementation"] != "cpython" or interpreter.get("variant") != "default":
            continue
        minor = ".".join(interpreter["version"].split(".")[:2])
        found.setdefault(minor, interpreter["path"])
    return found


@functools.cache
def pythons() -> tuple[str, ...]:
    """The declared Pythons this machine has ("3.12", "3.13"), oldest first.

    TEMPLATE_PYTHONS="3.13" restricts them, for a CI job per Python.
    Raises RuntimeError when none is found, or a requested one is missing or
    not declared.
    """
    declared = declared_pythons()
    installed = installed_pythons()
    wanted = os.environ.get(PYTHONS_VARIABLE, "").replace(" ", "")
    if wanted:
        requested = wanted.split(",")
        missing = [version for version in requested if version not in installed]
        undeclared = [version for version in requested if version not in declared]
        if missing or undeclared:
            raise RuntimeError(
                f"{PYTHONS_VARIABLE}={wanted}: not installed {missing}, not declared "
                f"{undeclared}; the baked project declares {declared}, uv finds {sorted(installed)}"
            )
        return tuple(version for version in declared if version in requested)
    found = tuple(version for version in declared if version in installed)
    if not found:
        raise RuntimeError(
            f"none of the Pythons the baked project declares ({', '.join(declared)}) is "
            f"installed; uv finds {', '.join(sorted(installed)) or 'none'}"
        )
    return found


def tree_key(combination: dict) -> dict:
    """`combination` with every choice that cannot change the baked tree at its default.

    The broker only matters to the features in BROKER_FEATURES: without them,
    two combinations that differ in the broker bake byte-identical trees, and
    they must get the same Python to be tested once.
    """
    key = dict(combination)
    if "broker" in key and not any(key.get(name) is True for name in BROKER_FEATURES):
        key["broker"] = defaults()["broker"]
    return key


def python_for(combination: dict) -> str:
    """The Python `combination`'s tree is tested on: one of `pythons()`, alternating.

    The sum of each dimension's value index (flags: on 0, off 1), taken modulo
    the number of Pythons: changing any one answer moves to the next Python,
    so every value of every option meets every Python, and trees that are
    byte-identical (`tree_key`) share one.
    """
    found = pythons()
    key = tree_key(combination)
    index = sum(values.index(key[name]) for name, values in dimensions().items())
    return found[index % len(found)]


def full_feature_combinations() -> list[dict]:
    """Every flag on, with every choice at its first value, then at its last.

    With the defaults, the all-features default project and the one with the
    most services (PostgreSQL, Redis): these run on every Python.
    """
    dims = dimensions()
    return [
        {
            name: values[0] if isinstance(values[0], bool) else values[end]
            for name, values in dims.items()
        }
        for end in (0, -1)
    ]


def cases() -> list[tuple[dict, str, str]]:
    """(combination, Python, test id) for every test the matrix runs.

    Each combination runs on `python_for(combination)` under its
    `combination_id`; a combination from `full_feature_combinations()` also
    runs on every other Python, with "-py3.13" (the version) added to its id.
    With TEMPLATE_EVERY_PYTHON=1 every combination does: twice the cases, the
    work a matrix with one more yes/no option would be (bench/matrix_scaling.py).
    """
    full = full_feature_combinations()
    every_python = os.environ.get(EVERY_PYTHON_VARIABLE) == "1"
    found = []
    for combination in combinations():
        own = python_for(combination)
        found.append((combination, own, combination_id(combination)))
        if combination in full or every_python:
            found.extend(
                (combination, other, f"{combination_id(combination)}-py{other}")
                for other in pythons()
                if other != own
            )
    return found
