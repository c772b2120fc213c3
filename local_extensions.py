"""Jinja filters that escape answers for the file they land in, and template facts.

Cookiecutter loads this module through ``_extensions`` in cookiecutter.json. A
project name such as ``Zoë's "Café" \\ API`` must still bake a pyproject.toml
that parses, Python that compiles and Markdown that renders as typed.
"""

import json
import re
from pathlib import Path

from jinja2.ext import Extension

TEMPLATE_ROOT = Path(__file__).resolve().parent
PROJECT_TEMPLATE = TEMPLATE_ROOT / "{{cookiecutter.project_slug}}"

# Characters that start emphasis, code, links, HTML or tables wherever they stand.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|~])")


def toml_string(value: str) -> str:
    """A TOML basic string; JSON string escapes are a subset of TOML's."""
    return json.dumps(str(value), ensure_ascii=False)


def python_string(value: str) -> str:
    """A Python string literal, quoted the way `ruff format` quotes it.

    JSON string escapes are valid Python; ruff prefers double quotes unless
    single quotes need fewer escapes.
    """
    text = str(value)
    body = json.dumps(text, ensure_ascii=False)[1:-1]
    if text.count('"') > text.count("'"):
        return "'" + body.replace('\\"', '"').replace("'", "\\'") + "'"
    return f'"{body}"'


def markdown_text(value: str) -> str:
    """Text with every Markdown control character backslash-escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(value))


# Options whose feature carries live events through the `broker` choice.
BROKER_FEATURES = ("use_sse", "use_channels")


def uses_redis(answers) -> bool:
    """Whether the baked project talks to Redis: the broker only matters to its features."""
    return answers["broker"] == "redis" and any(answers[name] is True for name in BROKER_FEATURES)


def project_modules() -> list[str]:
    """Top-level module names of the baked project (config, core, manage, ...)."""
    return sorted({path.stem for path in PROJECT_TEMPLATE.iterdir() if path.stem})


def declared_options() -> dict:
    """cookiecutter.json as declared: every option's default, choices and prompts.

    cookiecutter also puts this in the context as ``_cookiecutter``; cruft does
    not, so the hooks read it from the template itself.
    """
    return json.loads((TEMPLATE_ROOT / "cookiecutter.json").read_text(encoding="utf-8"))


class EscapeExtension(Extension):
    def __init__(self, environment):
        super().__init__(environment)
        environment.globals["project_modules"] = project_modules
        environment.globals["declared_options"] = declared_options
        environment.filters["toml_string"] = toml_string
        environment.filters["python_string"] = python_string
        environment.filters["markdown_text"] = markdown_text
        environment.filters["uses_redis"] = uses_redis
