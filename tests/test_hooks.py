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
import yaml
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
from packaging.specifiers import SpecifierSet

from local_extensions import (
    answer_problems,
    derived_slug,
    markdown_text,
    python_string,
    slug_problem,
    suggested_slug,
    toml_string,
)


def cookiecutter_cli(output_dir, *answers: str, typed: str | None = None):
    """Run cookiecutter's command line: with --no-input, or answering the prompts with `typed`."""
    options = ["--no-input"] if typed is None else []
    return subprocess.run(
        [sys.executable, "-m", "cookiecutter", *options, "-o", output_dir, TEMPLATE_DIR, *answers],
        input=typed,
        capture_output=True,
        text=True,
        timeout=120,
    )


def printed_lines(result: subprocess.CompletedProcess) -> list[str]:
    return (result.stdout + result.stderr).splitlines()


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
        ("project_name", "???", "project_slug is derived from it and needs a letter or digit"),
        # Longer than core/apps.py's line holds within ruff's 100 columns.
        ("project_name", "x" * 80, "use at most 79 characters"),
        ("project_name", "\\" * 40, "use at most 79 characters"),
        ("project_slug", "", "starting with a letter"),
        ("project_slug", "../elsewhere", "try 'elsewhere'"),
        ("project_slug", "2024_cafe", "starting with a letter; try 'cafe_2024'"),
        ("project_slug", "json", "try 'json_service'"),
        ("project_slug", "My Service", "try 'my_service'"),
    ],
)
def test_bad_answer_is_refused_in_one_line_and_leaves_nothing(tmp_path, field, value, reason):
    """One line names the field, the value and what is allowed; no traceback follows it."""
    names_the_slug = field in {"project_slug", "project_name"}
    valid_slug = [] if names_the_slug else ["project_slug=fine_name"]
    result = cookiecutter_cli(tmp_path, *valid_slug, f"{field}={value}")
    assert result.returncode == 1
    (error,) = printed_lines(result)
    assert error.startswith(f"ERROR: {field} {value!r} is not allowed: ")
    assert reason in error
    assert list(tmp_path.iterdir()) == []


def test_a_name_without_letters_bakes_with_a_slug_given(tmp_path):
    project = bake(tmp_path, project_name="???", project_slug="question_marks")
    assert project.name == "question_marks"


@pytest.mark.parametrize(
    ("answer", "field"), [("database=mysql", "database"), ("use_sse=maybe", "use_sse")]
)
def test_unknown_choice_is_refused_by_cookiecutter(tmp_path, answer, field):
    """Cookiecutter checks choices and yes/no answers given with --no-input itself.

    It does so in generate_context (generate.py, apply_overwrites_to_context),
    before it loads any of the template's code, and its command line lets that
    ValueError end in a traceback: only its last line is in the template's
    reach to test. At the prompt, cookiecutter asks again instead.
    """
    result = cookiecutter_cli(tmp_path, answer)
    assert result.returncode == 1
    value = answer.partition("=")[2]
    last = printed_lines(result)[-1]
    assert last.startswith(f"ValueError: {value} provided for ")
    assert f"variable {field}" in last
    assert list(tmp_path.iterdir()) == []


# The prompts as cookiecutter numbers them: "[3/12]" is the third question.
def prompt_number(number: int) -> str:
    return f"[{number}/{len(dimensions()) + len(free_text_options()) + 1}]"


@pytest.mark.parametrize(
    ("typed", "error", "next_prompt"),
    [
        ("???\n", "ERROR: project_name '???' is not allowed: ", 2),
        ("Shop\nShop\n", "ERROR: project_slug 'Shop' is not allowed: ", 3),
        ("Shop\njson\n", "ERROR: project_slug 'json' is not allowed: ", 3),
        ("Shop\n\n\n\nshop-at-example\n", "ERROR: author_email 'shop-at-example' is ", 6),
    ],
)
def test_a_bad_answer_at_the_prompt_stops_the_questions_there(tmp_path, typed, error, next_prompt):
    """The user learns of a bad answer at once, not after every other question."""
    result = cookiecutter_cli(tmp_path, typed=typed)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert output.count("ERROR:") == 1
    assert error in output
    assert prompt_number(next_prompt) not in output
    assert "Traceback" not in output
    assert list(tmp_path.iterdir()) == []


def test_the_prompt_offers_a_valid_slug_derived_from_the_name(tmp_path):
    # The name, then Enter at every other prompt.
    others = len(dimensions()) + len(free_text_options())
    result = cookiecutter_cli(tmp_path, typed="2024 Café\n" + "\n" * others)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(cafe_2024)" in result.stdout
    assert [path.name for path in tmp_path.iterdir()] == ["cafe_2024"]


def test_a_bad_choice_or_yes_no_at_the_prompt_is_asked_again(tmp_path):
    """Cookiecutter itself answers a bad choice or yes/no with one line and asks again."""
    # Enter at the five free-text prompts, then database and use_async_views
    # answered badly and again, then Enter at every other prompt.
    others = len(dimensions()) + len(free_text_options()) + 1 - 7
    typed = "\n" * 5 + "3\n2\n" + "maybe\nno\n" + "\n" * others
    result = cookiecutter_cli(tmp_path, typed=typed)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Please select one of the available options" in result.stdout
    assert "Please enter Y or N" in result.stdout
    project = tmp_path / "my_service"
    assert (project / "core" / "postgresql").is_dir()
    assert not (project / "articles").exists()


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("My Service", "my_service"),
        ("2024 Café", "cafe_2024"),
        ("2024", "service_2024"),
        ("Django", "django_service"),
        ("Test", "test_service"),
        ("class", "class_service"),
        ("Core", "core_service"),
        ("Zoë's Café Ünïcode", "zoe_s_cafe_unicode"),
        (
            "An extremely long service name that goes on and on",
            "an_extremely_long_service_name_that_goes",
        ),
        ("x" * 50, "x" * 40),
    ],
)
def test_the_slug_derived_from_a_name_is_a_valid_one(name, slug):
    assert derived_slug(name) == slug
    assert slug_problem(slug) is None


def test_a_name_whose_slug_needs_changing_bakes_with_the_valid_one(tmp_path):
    assert bake(tmp_path, project_name="2024 Café").name == "cafe_2024"


@pytest.mark.parametrize("text", ["My Service", "1", "json", "x_" * 30, "été 2024", "import"])
def test_every_suggested_slug_is_valid(text):
    assert slug_problem(suggested_slug(text)) is None


def test_answers_that_skip_the_prompts_are_refused_by_the_hook(tmp_path):
    """A replay file's answers are not asked, so not checked at the prompts: the hook refuses them.

    Cookiecutter then logs its own traceback (hooks.py, run_hook_from_repo_dir).
    """
    declared = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text(encoding="utf-8"))
    context = {name: value for name, value in declared.items() if name != "__prompts__"}
    context |= defaults() | free_text_options() | {"project_slug": "json", "use_sse": "maybe"}
    context |= {name: "" for name in context if name.startswith("__check")}
    replay = tmp_path / "replay.json"
    replay.write_text(json.dumps({"cookiecutter": context}), encoding="utf-8")
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cookiecutter",
            "--replay-file",
            replay,
            "-o",
            output_dir,
            TEMPLATE_DIR,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    errors = [
        line for line in result.stderr.splitlines() if line.startswith("ERROR: ") and "'" in line
    ]
    assert errors == [
        "ERROR: use_sse 'maybe' is not allowed: answer yes or no.",
        "ERROR: project_slug 'json' is not allowed: it would shadow the standard library"
        " module of that name; try 'json_service'.",
    ]
    assert list(output_dir.iterdir()) == []


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


@pytest.mark.parametrize(
    ("answers", "servers"),
    [
        ([], None),
        (
            ["database=postgresql", "broker=redis"],
            "It needs a PostgreSQL server at DATABASE_URL and a Redis server at REDIS_URL,"
            " set in .env: see README.md.",
        ),
        (["broker=redis", "use_sse=no", "use_channels=no", "use_tasks=no"], None),
    ],
)
def test_a_bake_prints_the_next_steps_from_its_readme(tmp_path, answers, servers):
    """Where the project is, its README's run and test commands, and the servers they need."""
    result = cookiecutter_cli(tmp_path, *answers)
    assert result.returncode == 0, result.stdout + result.stderr
    project = tmp_path / "my_service"
    readme = (project / "README.md").read_text(encoding="utf-8").splitlines()
    lines = result.stdout.splitlines()
    assert len(lines) < 12
    assert lines[0] == f"Baked my_service in {project}. Run it:"
    assert lines[1] == f"    cd {project}"
    commands = [line.strip() for line in lines[2:] if line.startswith("    ")]
    assert commands[0] == "uv run python manage.py migrate"
    assert "uv run pytest" in commands
    assert [command for command in commands if command not in readme] == []
    assert "Then open http://127.0.0.1:8000/" in lines
    needs = [line for line in lines if line.startswith("It needs ")]
    assert needs == ([servers] if servers else [])
    # The task worker runs beside the server, when there are tasks.
    worker = "    uv run python manage.py worker"
    assert (worker in lines) == ("use_tasks=no" not in answers)
    assert result.stderr == ""


def test_the_readme_s_pre_commit_sentence_works_as_written(tmp_path):
    """`uv run pre-commit install` needs pre-commit in the dev group; its hooks run ruff."""
    project = bake(tmp_path)
    readme = (project / "README.md").read_text(encoding="utf-8")
    assert "`uv run pre-commit install` makes every commit run both" in " ".join(readme.split())
    dev = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))[
        "dependency-groups"
    ]["dev"]
    pinned = dict(re.fullmatch(r"([a-z-]+)(.*)", requirement).groups() for requirement in dev)
    assert "pre-commit" in pinned
    config = yaml.safe_load((project / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    (repo,) = config["repos"]
    assert repo["repo"] == "https://github.com/astral-sh/ruff-pre-commit"
    # The two commands the README names, with a ruff the dev group's pin admits.
    assert [hook["id"] for hook in repo["hooks"]] == ["ruff-check", "ruff-format"]
    assert repo["rev"].removeprefix("v") in SpecifierSet(pinned["ruff"])


def test_the_docs_server_leaves_the_baked_service_its_port():
    """`uv run mkdocs serve` must not clash with a baked service on 8000."""
    mkdocs = (TEMPLATE_DIR / "mkdocs.yml").read_text(encoding="utf-8")
    (address,) = re.findall(r"(?m)^dev_addr: (\S+)$", mkdocs)
    readme = (PROJECT_TEMPLATE / "README.md").read_text(encoding="utf-8")
    served = re.search(r"Then open <http://([\d.]+:\d+)/>", readme)[1]
    assert address == "127.0.0.1:8001" != served
    for page in (TEMPLATE_DIR / "README.md", TEMPLATE_DIR / "docs" / "contributing.md"):
        assert f"<http://{address}/>" in page.read_text(encoding="utf-8"), page


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


@pytest.mark.parametrize("name", ["x" * 79, "\\" * 39 + "x", "It's " + '"' * 73])
def test_the_longest_name_allowed_passes_ruff_where_python_holds_it(name):
    """core/apps.py's `verbose_name` line, with the longest names `answer_problems` allows."""
    assert answer_problems({"project_name": name}) == []
    apps = (PROJECT_TEMPLATE / "core" / "apps.py").read_text(encoding="utf-8")
    module = re.sub(
        r"\{\{\s*cookiecutter\.project_name \| python_string\s*\}\}",
        lambda _: python_string(name),
        apps,
    )
    assert module != apps
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--line-length=100",
         "--select=E501", "--stdin-filename=apps.py", "-"],
        input=module,
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
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
    assert project.name == "zoe_s_cafe_bar_brasserie_zuri_my_service"
    assert len(project.name) == 40  # the longest slug allowed
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
