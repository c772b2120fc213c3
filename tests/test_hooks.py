"""The hooks: bad answers are refused cleanly, awkward ones bake valid projects."""

import ast
import html
import json
import os
import re
import stat
import subprocess
import sys
import tomllib

import pytest
from bakery import bake, leftovers, project_files
from markdown_it import MarkdownIt
from matrix import (
    PROJECT_TEMPLATE,
    TEMPLATE_DIR,
    answers_for,
    awkward_answers,
    combinations,
    declared_pythons,
    defaults,
    dimensions,
    free_text_options,
    python_for,
    pythons,
    requires_python,
)

from local_extensions import markdown_text, python_string, toml_string


def cookiecutter_cli(output_dir, *answers: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "cookiecutter",
            "--no-input",
            "-o",
            output_dir,
            TEMPLATE_DIR,
            *answers,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("project_slug", "My Service", "lowercase ASCII letters"),
        ("project_slug", "1service", "starting with a letter"),
        ("project_slug", "café", "lowercase ASCII letters"),
        ("project_slug", "x" * 41, "at most 40"),
        ("project_slug", "class", "Python keyword"),
        ("project_slug", "match", "Python keyword"),
        ("project_slug", "json", "standard library"),
        ("project_slug", "asyncio", "standard library"),
        ("project_slug", "test", "shadow a package"),
        ("project_slug", "django", "shadow a package"),
        ("project_slug", "channels", "shadow a package"),
        ("project_slug", "httpx", "shadow a package"),
        ("project_slug", "config", "shadow a package"),
        ("project_slug", "core", "shadow a package"),
        ("author_email", "not-an-email", "name@example.com"),
        ("author_email", "a@b", "name@example.com"),
        ("author_email", "a b@example.com", "name@example.com"),
        ("project_name", "   ", "must not be empty"),
        ("project_name", "Two\nlines", "one line"),
        ("description", "Colour \x1b[31mescape", "one line"),
        ("author_name", "Tab\tseparated", "one line"),
        ("description", "Line\u2028separator", "one line"),
    ],
)
def test_bad_answer_is_refused_and_leaves_nothing(tmp_path, field, value, reason):
    valid_slug = [] if field == "project_slug" else ["project_slug=fine_name"]
    result = cookiecutter_cli(tmp_path, *valid_slug, f"{field}={value}")
    assert result.returncode != 0
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert error.startswith(f"ERROR: {field} {value!r} is not allowed: ")
    assert reason in error
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_unknown_choice_is_refused(tmp_path):
    result = cookiecutter_cli(tmp_path, "database=mysql")
    assert result.returncode != 0
    assert "mysql" in result.stderr
    assert list(tmp_path.iterdir()) == []


AWKWARD = {
    "project_name": 'Zoë\'s "Café" \\ API <v2> # *one*',
    "description": 'Says "hi", it\'s \\n not a newline; `code` [link](x) | pipe',
    "author_name": "Seán O'Brien-Łukasz \\ Jr.",
    "author_email": "sean.o'brien@example.com",
}


def test_awkward_answers_bake_a_valid_project(tmp_path):
    project = bake(tmp_path, **AWKWARD)
    assert project.name == "zoe_s_cafe_api_v2_one"
    metadata = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert metadata["description"] == AWKWARD["description"]
    assert metadata["authors"] == [
        {"name": AWKWARD["author_name"], "email": AWKWARD["author_email"]}
    ]
    for path in project_files(project):
        if path.suffix == ".py":
            ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    readme = (project / "README.md").read_text(encoding="utf-8")
    assert readme.startswith('# Zoë\'s "Café" \\\\ API \\<v2\\> \\# \\*one\\*\n')


def test_each_bake_gets_its_own_secret_key(tmp_path):
    keys = set()
    for attempt in range(2):
        project = bake(tmp_path / str(attempt))
        dotenv = project / ".env"
        assert stat.S_IMODE(dotenv.stat().st_mode) == 0o600
        lines = dotenv.read_text().splitlines()
        (key,) = [line.split("=", 1)[1] for line in lines if line.startswith("DJANGO_SECRET_KEY=")]
        assert len(key) >= 50
        assert "DJANGO_DEBUG=true" in lines
        keys.add(key)
        example = (project / ".env.example").read_text().splitlines()
        assert "DJANGO_SECRET_KEY=" in example
        assert "DJANGO_DEBUG=false" in example
    assert len(keys) == 2


def test_feature_map_names_only_paths_that_exist():
    source = (TEMPLATE_DIR / "hooks" / "post_gen_project.py").read_text()
    tree = ast.parse(source)
    (feature_paths,) = [
        node.value
        for node in tree.body
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "FEATURE_PATHS"
    ]
    declared = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text())
    project_template = TEMPLATE_DIR / "{{cookiecutter.project_slug}}"
    for feature, paths in ast.literal_eval(feature_paths).items():
        option, _, value = feature.partition("=")
        assert option in declared, f"{feature} is not an option"
        if value:
            assert value in declared[option], f"{feature}: {value} is not a choice"
        for relative in paths:
            assert os.path.exists(project_template / relative), f"{feature}: {relative} missing"


# Answers a user may type, one per kind of trouble: HTML's five special characters,
# non-ASCII, a backslash, Markdown's inline and line-start syntax, an entity, spaces.
AWKWARD_TEXTS = [
    *awkward_answers().values(),
    'Zoë\'s "Café" & <Bar> ',
    "  leading and trailing  ",
    "\\ backslash at the end \\",
    "`code` *em* _em_ [link](x) ![img](y) <b>bold</b> | pipe | ~strike~ # hash {braces}",
    "&copy; &amp; &#169; AT&T",
    "- a list item?",
    "+ another",
    "1. numbered",
    "2) numbered",
    "---",
    "===",
    '"""triple quotes""" and \'\'\'',
]


@pytest.mark.parametrize("text", AWKWARD_TEXTS)
def test_markdown_text_renders_as_typed(text):
    """As a heading (the README's title) and as a paragraph, CommonMark shows the answer."""
    typed = html.escape(text.strip(), quote=False).replace('"', "&quot;")
    renderer = MarkdownIt("commonmark")
    assert renderer.render(f"# {markdown_text(text)}\n") == f"<h1>{typed}</h1>\n"
    paragraph = renderer.render(f"Intro.\n\n{markdown_text(text)}\n")
    assert paragraph == f"<p>Intro.</p>\n<p>{typed}</p>\n"


@pytest.mark.parametrize("text", AWKWARD_TEXTS)
def test_toml_and_python_strings_read_back_as_typed(text):
    assert tomllib.loads(f"value = {toml_string(text)}")["value"] == text.strip()
    assert ast.literal_eval(python_string(text)) == text.strip()


def test_python_strings_are_quoted_as_ruff_formats_them():
    """The baked project's `ruff format --check` passes whatever quotes the answers hold."""
    module = "".join(f"name = {python_string(text)}\n" for text in AWKWARD_TEXTS)
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--stdin-filename", "apps.py", "-"],
        input=module,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_free_text_answers_reach_files_only_through_their_escape_filter():
    """Each answer a user types lands in a file through the filter for that file's syntax.

    An answer used in a new kind of file (YAML, JSON, .env, JS) fails here
    until a filter for that syntax exists and is applied; HTML gets answers
    only at run time, through Django's autoescaping.
    """
    filters = {".md": "markdown_text", ".toml": "toml_string", ".py": "python_string"}
    names = "|".join(free_text_options())
    use = re.compile(r"\{\{-?\s*cookiecutter\.(" + names + r")\b([^}]*)\}\}")
    unescaped = []
    for path in project_files(PROJECT_TEMPLATE):
        text = path.read_text(encoding="utf-8")
        for match in use.finditer(text):
            wanted = filters.get(path.suffix)
            if wanted is None or not re.fullmatch(rf"\s*\|\s*{wanted}\s*-?", match[2]):
                unescaped.append(f"{path.relative_to(PROJECT_TEMPLATE)}: {match[0]}")
    assert unescaped == []


def test_awkward_answers_bake_a_clean_project_that_shows_them_as_typed(tmp_path):
    """The matrix's awkward answers: no trailing space, and each file reads them back."""
    answers = awkward_answers()
    project = bake(tmp_path, **answers)
    assert project.name == "zoe_s_cafe_bar_my_service"
    assert leftovers(project) == []
    metadata = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert metadata["description"] == answers["description"].strip()
    assert metadata["authors"] == [
        {"name": answers["author_name"].strip(), "email": answers["author_email"]}
    ]
    apps_py = ast.parse((project / "core" / "apps.py").read_text(encoding="utf-8"))
    names = [
        node.value.value
        for node in ast.walk(apps_py)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "verbose_name"
    ]
    assert names == [answers["project_name"].strip()]
    readme = MarkdownIt("commonmark").render((project / "README.md").read_text(encoding="utf-8"))
    for field in ("project_name", "description"):
        assert html.escape(answers[field].strip(), quote=False).replace('"', "&quot;") in readme


def test_the_matrix_answers_awkwardly_but_for_the_defaults():
    # project_slug is derived from the name, so from the awkward one.
    assert "project_slug" not in free_text_options()
    assert {"project_name", "description", "author_email"} <= set(free_text_options())
    awkward = awkward_answers()
    for name, default in free_text_options().items():
        assert awkward[name] != default
    assert "+" in awkward["author_email"]
    assert answers_for(defaults()) == defaults()
    others = [
        answers_for(combination) for combination in combinations() if combination != defaults()
    ]
    assert others
    assert all(answers.items() >= awkward.items() for answers in others)


def test_the_declared_pythons_are_the_ones_requires_python_admits():
    """The baked CI tests the Pythons the matrix runs on; the oldest is requires-python's floor."""
    declared = declared_pythons()
    assert len(declared) >= 2
    assert requires_python() == f">={declared[0]}"
    minors = [int(version.split(".")[1]) for version in declared]
    assert minors == list(range(minors[0], minors[0] + len(minors)))


def test_every_python_meets_every_answer():
    """Each value of each option is tested on each Python this run has."""
    for name, values in dimensions().items():
        for value in values:
            met = {python_for(c) for c in combinations() if c[name] == value}
            assert met == set(pythons()), (name, value)
