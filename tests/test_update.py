"""A project baked with cruft takes template changes with `cruft update`.

The template is copied into a git repository of its own, baked with cruft,
then changed in new commits, as a user's project would see its upstream move:
a clean update arrives whole, keeps the project's own edits and its .env, and
leaves a project whose tests pass; an edit to the same line as the template
ends as a git conflict. A project baked with plain cookiecutter is linked to
the template with `cruft link`.
"""

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from bakery import (
    BAKED_TEST_ENV,
    IGNORED_DIRS,
    baked_pytest,
    check_lint,
    copy_template,
    leftovers,
    run,
)

TEMPLATE_NAME = "async-django-template"
SLUG = "my_service"
# The lines the template's later versions add or change, and a test that looks for them.
SETTINGS_ADDITION = '\n# A setting the second template version added.\nUPDATE_ARRIVED = "v2"\n'
NEW_TEST = (
    "from django.conf import settings\n"
    "\n"
    "\n"
    "def test_the_template_update_arrived():\n"
    '    assert settings.UPDATE_ARRIVED == "v2"\n'
)
NEW_TEST_PATH = "core/tests/test_update_arrived.py"
README_V2 = "Second template version."
README_V3 = "Third template version."
README_OURS = "Second template version, edited in the project."


@pytest.fixture
def tools(tmp_path):
    """Runs git, cruft and cookiecutter apart from the user's own configuration."""
    home = tmp_path / "home"  # no ~/.gitconfig, ~/.cookiecutterrc or replay files of the user
    home.mkdir()
    env = {
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "Template Tests",
        "GIT_AUTHOR_EMAIL": "tests@example.com",
        "GIT_COMMITTER_NAME": "Template Tests",
        "GIT_COMMITTER_EMAIL": "tests@example.com",
    }

    class Tools:
        replay_dir = home / ".cookiecutter_replay"

        @staticmethod
        def git(cwd: Path, *args: str) -> str:
            return run(["git", *args], cwd=cwd, env=env, timeout=60).stdout

        @staticmethod
        def cruft(cwd: Path, *args: str, check: bool = True):
            command = [sys.executable, "-m", "cruft", *args]
            if check:
                return run(command, cwd=cwd, env=env, timeout=120)
            return subprocess.run(
                command,
                cwd=cwd,
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                timeout=120,
            )

        @staticmethod
        def cookiecutter(cwd: Path, *args: str):
            return run([sys.executable, "-m", "cookiecutter", *args], cwd=cwd, env=env, timeout=120)

    return Tools


def commit_all(tools, repo: Path, message: str) -> str:
    tools.git(repo, "add", "-A")
    tools.git(repo, "commit", "--quiet", "--no-verify", "--allow-empty", "-m", message)
    return tools.git(repo, "rev-parse", "HEAD").strip()


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} is not in {path} exactly once"
    path.write_text(text.replace(old, new), encoding="utf-8")


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(text)


def snapshot(project: Path) -> dict[str, tuple[int, bytes]]:
    """Mode and content of every file a bake or an update writes, but .env and cruft's state."""
    files = {}
    for root, dirs, names in os.walk(project):
        dirs[:] = [d for d in dirs if d not in IGNORED_DIRS | {".git"}]
        for name in names:
            path = Path(root, name)
            relative = path.relative_to(project).as_posix()
            if relative not in {".env", ".cruft.json"}:
                files[relative] = (stat.S_IMODE(path.stat().st_mode), path.read_bytes())
    return files


def status(tools, project: Path) -> dict[str, str]:
    """`git status` as {path: two-letter state}, ignored files left out."""
    lines = tools.git(project, "status", "--porcelain", "--untracked-files=all").splitlines()
    return {line[3:]: line[:2] for line in lines}


def cruft_state(project: Path) -> dict:
    return json.loads((project / ".cruft.json").read_text(encoding="utf-8"))


def pytest_counts(output: str) -> dict[str, int]:
    """The counts on pytest's last line: {"passed": 256, "skipped": 2}."""
    summary = output.strip().splitlines()[-1]
    assert re.search(r" in [\d.]+s", summary), f"no pytest summary line in:\n{output[-3000:]}"
    return {word: int(count) for count, word in re.findall(r"(\d+) (\w+)", summary)}


def test_cruft_bake_updates_and_links(tmp_path, tools, environments):
    template = copy_template(tmp_path / TEMPLATE_NAME)
    tools.git(template, "init", "--quiet", "--initial-branch=main")
    v1 = commit_all(tools, template, "v1")
    baked_template = template / "{{cookiecutter.project_slug}}"

    # Bake with cruft: the project records the template and the commit it came from.
    tools.cruft(tmp_path, "create", "--no-input", str(template), "--output-dir", "cruft")
    project = tmp_path / "cruft" / SLUG
    state = cruft_state(project)
    assert (state["template"], state["commit"]) == (str(template), v1)
    assert state["context"]["cookiecutter"]["project_slug"] == SLUG
    # The tree plain cookiecutter bakes from the same commit (each bake has its own .env).
    tools.cookiecutter(tmp_path, "--no-input", "--output-dir", "plain", str(template))
    plain = tmp_path / "plain" / SLUG
    assert snapshot(project) == snapshot(plain)
    assert not (plain / ".cruft.json").exists()
    assert [p for p in leftovers(project) if not p.startswith(".cruft.json:")] == []
    dotenv = project / ".env"
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o600
    secret_env = dotenv.read_bytes()

    tools.git(project, "init", "--quiet", "--initial-branch=main")
    commit_all(tools, project, "Bake from the template")
    assert ".env" not in tools.git(project, "ls-files").splitlines()
    tools.cruft(project, "check")
    # Nothing differs from the template, and the random .env is not shown as a difference.
    tools.cruft(project, "diff", "--exit-code")

    # The project's own edit, which the update must keep.
    readme = project / "README.md"
    title = readme.read_text(encoding="utf-8").splitlines()[0]
    edit(readme, title + "\n", title + " (ours)\n")
    commit_all(tools, project, "Our title")

    # The template's second version: a new setting, a test for it, a README line.
    append(baked_template / "config" / "settings.py", SETTINGS_ADDITION)
    (baked_template / NEW_TEST_PATH).write_text(NEW_TEST, encoding="utf-8")
    append(baked_template / "README.md", f"\n{README_V2}\n")
    v2 = commit_all(tools, template, "v2")

    outdated = tools.cruft(project, "check", check=False)
    assert outdated.returncode == 1, outdated.stdout + outdated.stderr

    # A project baked with plain cookiecutter, linked afterwards to the commit it
    # came from, with the answers cookiecutter saved in its replay file.
    replay = json.loads((tools.replay_dir / f"{TEMPLATE_NAME}.json").read_text())
    answers = {k: v for k, v in replay["cookiecutter"].items() if not k.startswith("_")}
    tools.cruft(
        plain,
        "link",
        str(template),
        "--no-input",
        "--checkout",
        v1,
        "--extra-context",
        json.dumps(answers),
    )
    assert cruft_state(plain)["commit"] == v1
    tools.cruft(plain, "diff", "--exit-code")
    assert tools.cruft(plain, "check", check=False).returncode == 1

    # The update: non-interactive, in a clean git checkout.
    tools.cruft(project, "update", "--skip-apply-ask")
    assert cruft_state(project)["commit"] == v2
    assert cruft_state(project)["context"]["cookiecutter"]["_commit"] == v2
    tools.cruft(project, "check")
    changed = status(tools, project)
    assert set(changed) == {".cruft.json", "README.md", "config/settings.py", NEW_TEST_PATH}
    assert not any("U" in state or "?" in state for state in changed.values()), changed
    assert list(project.rglob("*.rej")) == []
    # Exactly what a fresh bake of v2 has, plus the project's own title.
    tools.cookiecutter(tmp_path, "--no-input", "--output-dir", "fresh", str(template))
    expected = snapshot(tmp_path / "fresh" / SLUG)
    mode, text = expected["README.md"]
    expected["README.md"] = (
        mode,
        text.replace(f"{title}\n".encode(), f"{title} (ours)\n".encode()),
    )
    assert snapshot(project) == expected
    # The checkout's own .env is left alone.
    assert dotenv.read_bytes() == secret_env
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o600
    # cruft diff now shows the project's own edit, and only that.
    diff = tools.cruft(project, "diff").stdout
    assert re.findall(r"^diff --git .*/(\S+)$", diff, re.M) == ["README.md"]
    assert "DJANGO_SECRET_KEY" not in diff
    commit_all(tools, project, "Update from the template")

    # The updated project is still lint-clean and its tests, the new one too, pass.
    python = environments.python_for(project)
    check_lint(python, project)
    result = run(
        baked_pytest(python, tmp_path, "-q", "-rA"),
        cwd=project,
        env=BAKED_TEST_ENV,
    )
    counts = pytest_counts(result.stdout)
    assert counts.get("passed", 0) > 0, result.stdout[-3000:]
    assert not {"failed", "error", "errors"} & set(counts), result.stdout[-3000:]
    assert f"PASSED {NEW_TEST_PATH}::test_the_template_update_arrived" in result.stdout
    # What running the project made is ignored, but for uv's lock file (made when
    # this run installed the environment), which a project commits.
    assert set(status(tools, project)) <= {"uv.lock"}
    commit_all(tools, project, "Lock the dependencies")

    # A line both sides changed: git's three-way merge leaves a conflict to resolve.
    edit(readme, README_V2, README_OURS)
    commit_all(tools, project, "Our README line")
    edit(baked_template / "README.md", README_V2, README_V3)
    v3 = commit_all(tools, template, "v3")
    tools.cruft(project, "update", "--skip-apply-ask")
    # cruft records v3 although the merge is not finished: check git, not cruft.
    assert cruft_state(project)["commit"] == v3
    assert status(tools, project) == {".cruft.json": " M", "README.md": "UU"}
    merged = readme.read_text(encoding="utf-8")
    assert f"<<<<<<< ours\n{README_OURS}\n=======\n{README_V3}\n>>>>>>> theirs\n" in merged
    assert list(project.rglob("*.rej")) == []
