"""The documentation site builds with no warning, and its pages keep up with the template.

`mkdocs.yml` turns every broken link, missing anchor, missing snippet and page
left out of the nav into a warning, and `--strict` makes a warning fail.
"""

import ast
import json
import os
import re
import subprocess
import sys

import yaml
from matrix import TEMPLATE_DIR, combination_id, combinations, defaults

DOCS = TEMPLATE_DIR / "docs"
PROJECT_TEMPLATE = TEMPLATE_DIR / "{{cookiecutter.project_slug}}"


class MkDocsLoader(yaml.SafeLoader):
    """Reads mkdocs.yml, leaving `!!python/name:` values (the mermaid fence's format) as None."""


MkDocsLoader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)


def nav_pages(entries) -> list[str]:
    pages = []
    for entry in entries:
        if isinstance(entry, str):
            pages.append(entry)
        elif isinstance(entry, dict):
            for value in entry.values():
                pages.extend(nav_pages(value) if isinstance(value, list) else [value])
    return pages


def test_site_builds_strict(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", tmp_path / "site"],
        cwd=TEMPLATE_DIR,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output, output
    assert (tmp_path / "site" / "index.html").exists()


def test_every_page_is_in_the_nav():
    config = yaml.load((TEMPLATE_DIR / "mkdocs.yml").read_text(encoding="utf-8"), MkDocsLoader)
    listed = nav_pages(config["nav"])
    pages = sorted(path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md"))
    assert sorted(set(pages) - set(listed)) == [], "pages missing from nav in mkdocs.yml"
    assert sorted(set(listed) - set(pages)) == [], "nav entries with no page"
    assert len(listed) == len(set(listed)), "a page is listed twice"


def fenced_block_after(text: str, marker: str) -> list[str]:
    match = re.search(rf"<!-- {marker} -->\n```sh\n(.+?)\n```", text, re.S)
    assert match, f"no sh block after <!-- {marker} -->"
    return match.group(1).splitlines()


def test_getting_started_runs_the_readme_command():
    """The home page splits the README's tested one-liner in two; the pieces must match it."""
    readme = (TEMPLATE_DIR / "README.md").read_text(encoding="utf-8")
    home = (DOCS / "index.md").read_text(encoding="utf-8")
    (readme_command,) = fenced_block_after(readme, "bake-and-serve")
    assert " && ".join(fenced_block_after(home, "bake-and-serve")) == readme_command


def test_deployment_lists_every_environment_variable():
    example = (PROJECT_TEMPLATE / ".env.example").read_text(encoding="utf-8")
    variables = set(re.findall(r"(?m)^#? ?([A-Z][A-Z0-9_]+)=", example))
    assert "DJANGO_SECRET_KEY" in variables
    deployment = (DOCS / "deployment.md").read_text(encoding="utf-8")
    missing = sorted(name for name in variables if f"`{name}`" not in deployment)
    assert missing == [], "docs/deployment.md does not describe these .env.example variables"


def test_options_page_covers_every_prompt_and_feature_path():
    options = (DOCS / "options.md").read_text(encoding="utf-8")
    declared = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text(encoding="utf-8"))
    prompts = [name for name in declared if not name.startswith("_")]
    assert [name for name in prompts if f"`{name}`" not in options] == []
    source = (TEMPLATE_DIR / "hooks" / "post_gen_project.py").read_text(encoding="utf-8")
    (feature_paths,) = [
        node.value
        for node in ast.parse(source).body
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "FEATURE_PATHS"
    ]
    paths = [path for owned in ast.literal_eval(feature_paths).values() for path in owned]
    assert [path for path in paths if f"`{path}" not in options] == []


def test_pages_quote_the_matrix_as_it_is():
    """A page that counts the combinations, or names the default one, says what the matrix has."""
    count = len(combinations())
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for quoted in re.findall(r"\b(\d+) combinations", text):
            assert int(quoted) == count, f"{page.name} says {quoted} combinations, not {count}"
    contributing = (DOCS / "contributing.md").read_text(encoding="utf-8")
    assert f"test_combination[{combination_id(defaults())}]" in contributing
