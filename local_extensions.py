"""Jinja filters that escape answers for the file they land in, the answers' checks, and facts.

Cookiecutter loads this module through ``_extensions`` in cookiecutter.json. A
project name such as ``Zoë's "Café" & <Bar> \\ API`` must still bake a
pyproject.toml that parses, Python that compiles and Markdown that renders as
typed. Each filter also drops the spaces around an answer, which a prompt keeps
and which no file wants (a trailing space in Markdown is a line break).
HTML needs no filter: answers reach it only through Django's autoescaping.

The checks run in cookiecutter's own process while it asks the questions
(``derived_slug`` and ``refuse_bad_answers`` in cookiecutter.json), so a bad
answer stops the prompts at once with one line, and again in
hooks/pre_gen_project.py for answers that skip the prompts (``--replay``).
"""

import json
import keyword
import re
import sys
import unicodedata
from collections.abc import Mapping
from pathlib import Path

from cookiecutter.exceptions import FailedHookException
from jinja2.ext import Extension
from slugify import slugify

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


# The longest Python literal of the project's name (quotes and escapes
# included) that fits the line it is baked into, core/apps.py's
# `    verbose_name = ...`, within ruff's 100 columns.
MAX_NAME_LITERAL = 100 - len("    verbose_name = ")


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

    The text is one line: `answer_problems` refuses line breaks in answers.
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


# Import names of the packages a baked project may depend on: a project named
# like one of them would shadow it on sys.path.
DEPENDENCY_MODULES = frozenset(
    {
        "aiofiles",
        "asgiref",
        "channels",
        "channels_redis",
        "daphne",
        "django",
        "environ",
        "httpcore",
        "httpx",
        "httpx_sse",
        "ninja",
        "pre_commit",
        "psycopg",
        "psycopg_pool",
        "pydantic",
        "pytest",
        "pytest_asyncio",
        "pytest_django",
        "pythonjsonlogger",
        "redis",
        "ruff",
        "servestatic",
        "stamina",
        "test",
        "tests",
        "uvicorn",
        "websockets",
    }
)
SLUG_MAX_LENGTH = 40
SLUG_PATTERN = re.compile(rf"[a-z][a-z0-9_]{{0,{SLUG_MAX_LENGTH - 1}}}")
# Added to a slug that names a module, or that has only digits.
SLUG_SUFFIX = "service"
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
# Unicode categories of control characters and of line and paragraph separators.
NOT_ONE_LINE = {"Cc", "Zl", "Zp"}


class BadAnswers(FailedHookException):
    """Answers the template refuses; the message has one line per bad answer.

    A FailedHookException because cookiecutter's command line prints that
    exception's message alone and exits 1, where any other would end in a
    traceback (cookiecutter/cli.py).
    """


def slug_problem(slug: str) -> str | None:
    """Why `slug` cannot name the project's directory and package, or None."""
    if not SLUG_PATTERN.fullmatch(slug):
        return (
            f"use at most {SLUG_MAX_LENGTH} lowercase ASCII letters, digits and _,"
            " starting with a letter"
        )
    if keyword.iskeyword(slug) or keyword.issoftkeyword(slug):
        return "it is a Python keyword"
    if slug in sys.stdlib_module_names:
        return "it would shadow the standard library module of that name"
    if slug in DEPENDENCY_MODULES or slug in project_modules():
        return "it would shadow a package the project imports"
    return None


def suggested_slug(text: str) -> str:
    """A valid slug as close to `text` as the rules allow, or "" when it has no letter or digit.

    `text` is slugified with `_` (`2024 Café` gives `2024_cafe`); leading digits
    move to the end (`cafe_2024`), digits alone get a prefix (`service_2024`),
    a long slug is cut at a `_` to fit, and one that would shadow a module
    gets a suffix (`django_service`).
    """
    slug = slugify(str(text), separator="_")
    digits, rest = re.fullmatch(r"(\d*)_?(.*)", slug).groups()
    if digits:
        slug = f"{rest}_{digits}" if rest else f"{SLUG_SUFFIX}_{digits}"
    if len(slug) > SLUG_MAX_LENGTH:
        cut = slug[: SLUG_MAX_LENGTH + 1].rfind("_")
        slug = slug[: cut if cut > 0 else SLUG_MAX_LENGTH].rstrip("_")
    if slug and slug_problem(slug):
        base = slug[: SLUG_MAX_LENGTH - len(SLUG_SUFFIX) - 1].rstrip("_")
        slug = f"{base}_{SLUG_SUFFIX}"
    return slug


def is_one_line(text: str) -> bool:
    """Whether `text` has no line break or other control character.

    A prompt cannot type one, but an answer given another way (--replay,
    extra_context, a cruft update) can, and would break the README's heading.
    """
    return not any(unicodedata.category(char) in NOT_ONE_LINE for char in text)


def answer_problems(answers: Mapping) -> list[tuple[str, object, str]]:
    """(field, value, what is allowed) for each bad answer in `answers`.

    `answers` may hold only the answers given so far: a field not in it is
    not checked.
    """
    declared = declared_options()
    found = []
    for field, value in answers.items():
        if field.startswith("_") or field not in declared:
            continue
        allowed = declared[field]
        if isinstance(allowed, str) and isinstance(value, str) and not is_one_line(value):
            found.append((field, value, "it must be one line, without control characters"))
        elif isinstance(allowed, list) and value not in allowed:
            found.append((field, value, f"choose one of {', '.join(allowed)}"))
        elif isinstance(allowed, bool) and not isinstance(value, bool):
            found.append((field, value, "answer yes or no"))
    if "project_name" in answers:
        name = str(answers["project_name"])
        if not name.strip():
            found.append(("project_name", name, "it must not be empty"))
        elif len(python_string(name)) > MAX_NAME_LITERAL:
            allowed = (
                f"use at most {MAX_NAME_LITERAL - 2} characters "
                "(a backslash, and a quote of the rarer kind, counts as two)"
            )
            found.append(("project_name", name, allowed))
    if "project_slug" in answers and (reason := slug_problem(str(answers["project_slug"]))):
        suggestion = suggested_slug(answers["project_slug"])
        if suggestion:
            reason += f"; try {suggestion!r}"
        found.append(("project_slug", answers["project_slug"], reason))
    if "author_email" in answers and not EMAIL_PATTERN.fullmatch(str(answers["author_email"])):
        found.append(
            ("author_email", answers["author_email"], "it must look like name@example.com")
        )
    return found


def problem_lines(problems: list) -> list[str]:
    """One line per bad answer: `ERROR: <field> '<value>' is not allowed: <why>.`"""
    return [
        f"ERROR: {field} {value!r} is not allowed: {allowed}." for field, value, allowed in problems
    ]


def refuse_bad_answers(answers: Mapping) -> str:
    """Raise BadAnswers for the bad ones among the answers given so far; else "".

    cookiecutter.json renders it right after the slug's and the email's
    prompts, so that a bad answer stops the questions where it was typed.
    """
    problems = answer_problems(answers)
    if problems:
        raise BadAnswers("\n".join(problem_lines(problems)))
    return ""


def derived_slug(name: str) -> str:
    """The default `project_slug` for `name`: a valid one, so the prompt offers one that works.

    Raises BadAnswers when the name is refused, or has no letter or digit to
    derive a slug from (`???`).
    """
    refuse_bad_answers({"project_name": name})
    slug = suggested_slug(name)
    if not slug:
        raise BadAnswers(
            f"ERROR: project_name {name!r} is not allowed: project_slug is derived from it"
            " and needs a letter or digit: use a name with one, or pass project_slug=..."
            " on the command line."
        )
    return slug


class EscapeExtension(Extension):
    def __init__(self, environment):
        super().__init__(environment)
        environment.globals["project_modules"] = project_modules
        environment.globals["declared_options"] = declared_options
        environment.globals["answer_problems"] = answer_problems
        environment.globals["problem_lines"] = problem_lines
        environment.filters["derived_slug"] = derived_slug
        environment.filters["refuse_bad_answers"] = refuse_bad_answers
        environment.filters["toml_string"] = toml_string
        environment.filters["python_string"] = python_string
        environment.filters["markdown_text"] = markdown_text
        environment.filters["uses_redis"] = uses_redis
