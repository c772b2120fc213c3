"""The hooks: bad answers are refused cleanly, awkward ones bake valid projects."""

import ast
import json
import os
import stat
import subprocess
import sys
import tomllib

import pytest
from bakery import bake, project_files
from matrix import TEMPLATE_DIR


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
