"""Validate every answer before cookiecutter writes a single file.

A bad answer prints one line naming the field, the value and what is allowed,
then exits non-zero; cookiecutter then removes the project directory it made.
"""

import json
import keyword
import re
import sys
import unicodedata

ANSWERS = json.loads(r"""{{ cookiecutter | tojson }}""")
# cookiecutter.json as declared (its choice lists), under cookiecutter and cruft alike.
DECLARED = json.loads(r"""{{ declared_options() | tojson }}""")
# The baked project's own top-level modules (config, core, ...), listed at bake time.
PROJECT_MODULES = set(json.loads(r"""{{ project_modules() | tojson }}"""))

# Import names of the packages a baked project may depend on: a project named
# like one of them would shadow it on sys.path.
DEPENDENCY_MODULES = {
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
    "psycopg",
    "psycopg_pool",
    "pydantic",
    "pytest",
    "pytest_asyncio",
    "pytest_django",
    "redis",
    "ruff",
    "servestatic",
    "stamina",
    "test",
    "tests",
    "uvicorn",
    "websockets",
}
SLUG_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,39}")
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
# Unicode categories of control characters and of line and paragraph separators.
NOT_ONE_LINE = {"Cc", "Zl", "Zp"}


def slug_problem(slug: str) -> str | None:
    if not SLUG_PATTERN.fullmatch(slug):
        return "use at most 40 lowercase ASCII letters, digits and _, starting with a letter"
    if keyword.iskeyword(slug) or keyword.issoftkeyword(slug):
        return "it is a Python keyword"
    if slug in sys.stdlib_module_names:
        return "it would shadow the standard library module of that name"
    if slug in DEPENDENCY_MODULES or slug in PROJECT_MODULES:
        return "it would shadow a package the project imports"
    return None


def is_one_line(text: str) -> bool:
    """Whether `text` has no line break or other control character.

    A prompt cannot type one, but an answer given another way (--replay,
    extra_context, a cruft update) can, and would break the README's heading.
    """
    return not any(unicodedata.category(char) in NOT_ONE_LINE for char in text)


def problems():
    """Yield (field, value, what is allowed) for each bad answer."""
    for field, declared in DECLARED.items():
        value = ANSWERS.get(field)
        if isinstance(declared, str) and isinstance(value, str) and not is_one_line(value):
            yield field, value, "it must be one line, without control characters"
    if not ANSWERS["project_name"].strip():
        yield "project_name", ANSWERS["project_name"], "it must not be empty"
    reason = slug_problem(ANSWERS["project_slug"])
    if reason:
        yield "project_slug", ANSWERS["project_slug"], reason
    if not EMAIL_PATTERN.fullmatch(ANSWERS["author_email"]):
        yield "author_email", ANSWERS["author_email"], "it must look like name@example.com"
    for field, declared in DECLARED.items():
        if field.startswith("_"):
            continue
        value = ANSWERS[field]
        if isinstance(declared, list) and value not in declared:
            yield field, value, f"choose one of {', '.join(declared)}"
        if isinstance(declared, bool) and not isinstance(value, bool):
            yield field, value, "answer yes or no"


def main() -> int:
    found = list(problems())
    for field, value, allowed in found:
        print(f"ERROR: {field} {value!r} is not allowed: {allowed}.", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
