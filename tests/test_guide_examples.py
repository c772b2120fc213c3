"""The async guide's examples (docs/examples/) run in a baked project, as users would run them.

The default project (every feature on, SQLite, the memory broker) is baked,
docs/examples/ is copied into it as the package `guide_examples`, and the
project's own ruff and pytest check it, with the environment the matrix uses.
A guide example that stops working in the project, or stops behaving as the
guide says, fails here.
"""

import re
import shutil

from bakery import BAKED_TEST_ENV, bake, baked_pytest, check_lint, run
from matrix import TEMPLATE_DIR, defaults

EXAMPLES = TEMPLATE_DIR / "docs" / "examples"
# The tests in docs/examples/tests/; update when adding or removing one.
EXPECTED_TESTS = 27


def test_guide_examples_pass_in_the_default_project(tmp_path, environments):
    project = bake(tmp_path, **defaults())
    # The examples' own ruff settings are for this repository; in the project
    # its pyproject.toml applies.
    shutil.copytree(
        EXAMPLES,
        project / "guide_examples",
        ignore=shutil.ignore_patterns(".ruff.toml", ".ruff_cache", "__pycache__"),
    )
    python = environments.python_for(project)
    check_lint(python, project, "guide_examples")
    result = run(
        baked_pytest(python, tmp_path, "-q", "guide_examples"),
        cwd=project,
        env=BAKED_TEST_ENV,
    )
    summary = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(rf"{EXPECTED_TESTS} passed in [\d.]+s( \(.*\))?", summary), result.stdout
