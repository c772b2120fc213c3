"""`--shard-id=I --num-shards=N`: N disjoint shards whose union is the whole matrix."""

import json
import subprocess
import sys
from collections import defaultdict

import pytest
import sharding
import yaml
from matrix import TEMPLATE_DIR, cases, tree_key


@pytest.fixture(scope="module")
def matrix_ids() -> list[str]:
    """The matrix's test ids (which Pythons they run on depends on this machine)."""
    return [f"{sharding.MATRIX_TEST}{test_id}]" for _, _, test_id in cases()]


@pytest.mark.parametrize("num_shards", [1, 2, 3, 4, 7])
def test_shards_are_disjoint_and_cover_the_matrix(num_shards, matrix_ids):
    durations = sharding.load_durations()
    shards = sharding.split(matrix_ids, num_shards, durations)

    assert len(shards) == num_shards
    together = [test_id for shard in shards for test_id in shard]
    assert sorted(together) == sorted(matrix_ids)  # every combination, none twice


@pytest.mark.parametrize("num_shards", [2, 4, 8])
def test_shards_are_balanced_by_measured_time(num_shards, matrix_ids):
    durations = sharding.load_durations()
    weight = sharding.weights(matrix_ids, durations)
    groups = defaultdict(float)
    for test_id in matrix_ids:
        groups[sharding.group_of(test_id)] += weight[test_id]
    shards = sharding.split(matrix_ids, num_shards, durations)
    loads = [sum(weight[t] for t in shard) for shard in shards]

    # The LPT rule's bound: no shard exceeds the mean by more than the heaviest group
    # (a tree with its twins).
    assert max(loads) <= sum(loads) / num_shards + max(groups.values())


@pytest.mark.parametrize("num_shards", [2, 3, 5])
def test_byte_identical_trees_share_a_shard(num_shards, matrix_ids):
    """Combinations that differ only in an answer that cannot change the tree (the broker,
    with no feature that uses it) are one tree, tested once: in the same shard."""
    shards = sharding.split(matrix_ids, num_shards, sharding.load_durations())
    shard_of = {test_id: n for n, shard in enumerate(shards) for test_id in shard}
    by_tree = defaultdict(set)
    for combination, python, test_id in cases():
        key = (json.dumps(tree_key(combination), sort_keys=True), python)
        by_tree[key].add(shard_of[f"{sharding.MATRIX_TEST}{test_id}]"])

    assert all(len(shard_numbers) == 1 for shard_numbers in by_tree.values())
    assert len(by_tree) < len(matrix_ids)  # there are twins to keep together


def test_a_module_outside_the_matrix_stays_whole(matrix_ids):
    ids = [f"tests/test_live.py::test_{n}" for n in range(5)] + matrix_ids[:9]
    shards = sharding.split(ids, 3, {})

    (holder,) = [s for s in shards if "tests/test_live.py::test_0" in s]
    assert all(f"tests/test_live.py::test_{n}" in holder for n in range(5))


def test_unmeasured_tests_weigh_their_modules_median():
    durations = {"x::a": {"seconds": 1.0}, "x::b": {"seconds": 3.0}, "x::c": {"seconds": 10.0}}
    weights = sharding.weights([*durations, "x::new", "y::new"], durations)
    assert weights == {"x::a": 1.0, "x::b": 3.0, "x::c": 10.0, "x::new": 3.0, "y::new": 1.0}


def test_the_workflow_runs_every_test_module_once():
    workflow = yaml.safe_load((TEMPLATE_DIR / ".github/workflows/ci.yml").read_text())
    shards = workflow["jobs"]["matrix"]["strategy"]["matrix"]["shard"]
    matrix_job = workflow["jobs"]["matrix"]["steps"][-1]["env"]["PYTEST_ADDOPTS"].split()
    suites = workflow["jobs"]["suite"]["strategy"]["matrix"]["include"]
    named = [matrix_job[0]] + [path for suite in suites for path in suite["tests"].split()]

    modules = sorted(
        p.relative_to(TEMPLATE_DIR).as_posix() for p in TEMPLATE_DIR.glob("tests/test_*.py")
    )
    assert sorted(named) == modules
    assert shards == list(range(len(shards)))
    assert f"--num-shards={len(shards)}" in matrix_job


def collect(*args: str) -> list[str]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/test_matrix.py",
            "--collect-only",
            "-q",
            "-n",
            "0",
            *args,
        ],
        cwd=TEMPLATE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return [line for line in result.stdout.splitlines() if line.startswith("tests/")]


def test_the_command_line_shards_make_up_the_whole_run(matrix_ids):
    shards = [collect("--num-shards=3", f"--shard-id={i}") for i in range(3)]

    assert sorted(t for shard in shards for t in shard) == sorted(matrix_ids)
    assert all(shards)


def test_a_shard_id_out_of_range_is_refused():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/test_matrix.py", "--collect-only", "-q", "-n", "0",
         "--num-shards=2", "--shard-id=2"],
        cwd=TEMPLATE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 4  # usage error
    assert "--shard-id must be in [0, 2)" in result.stderr
