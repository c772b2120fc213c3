"""Jinja filters that escape answers for the file they land in, and template facts.

Cookiecutter loads this module through ``_extensions`` in cookiecutter.json. A
project name such as ``Zoë's "Café" & <Bar> \\ API`` must still bake a
pyproject.toml that parses, Python that compiles and Markdown that renders as
typed. Each filter also drops the spaces around an answer, which a prompt keeps
and which no file wants (a trailing space in Markdown is a line break).
HTML needs no filter: answers reach it only through Django's autoescaping.
"""

import json
import re
from pathlib import Path

from jinja2.ext import Extension

TEMPLATE_ROOT = Path(__file__).resolve().parent
PROJECT_TEMPLATE = TEMPLATE_ROOT / "{{cookiecutter.project_slug}}"

# Characters that start emphasis, code, links, HTML, entities or tables wherever they stand.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|~&])")
# What starts a block at the beginning of a line: a list item ("-", "+", "1." or
# "1)"), a thematic break or a setext underline ("---", "===").
_MARKDOWN_LINE_START = re.compile(r"^(\d*)([-+=.)])")


def toml_string(value: str) -> str:
    """A TOML basic string; JSON string escapes are a subset of TOML's."""
    return json.dumps(str(value).strip(), ensure_ascii=False)


def python_string(value: str) -> str:
    """A Python string literal, quoted the way `ruff format` quotes it.

    JSON string escapes are valid Python; ruff prefers double quotes unless
    single quotes need fewer escapes.
    """
    text = str(value).strip()
    body = json.dumps(text, ensure_ascii=False)[1:-1]
    if text.count('"') > text.count("'"):
        return "'" + body.replace('\\"', '"').replace("'", "\\'") + "'"
    return f'"{body}"'


def markdown_text(value: str) -> str:
    """Text with every Markdown control character backslash-escaped (CommonMark).

    The text is one line: pre_gen_project refuses line breaks in answers.
    """
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", str(value).strip())
    return _MARKDOWN_LINE_START.sub(r"\1\\\2", text, count=1)


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
