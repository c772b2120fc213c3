"""Split the suite into N disjoint shards of about equal measured duration.

`pytest --shard-id=I --num-shards=N` (0 <= I < N) runs shard I; the union of
the N shards is the whole suite. Tests are grouped before they are split, so
what must run together stays together:

- matrix combinations whose trees are byte-identical (an option that only
  matters with a feature that is off: `matrix.tree_key`) and that run on the
  same Python go together, so the tree is still tested once;
- every other test goes with the rest of its module, whose module-scoped
  fixtures (the live suite's deployments) would otherwise start once per shard.

Groups are weighed by `tests/durations.json`, the `--matrix-report` of a full
run (seconds per test id), and dealt out longest first, each to the shard with
the least time so far (the LPT rule: the longest shard is at most the mean
plus one group). A test the file does not know weighs the median of those it
knows, so a new option shards evenly before the file is regenerated.
"""

import functools
import json
import statistics
from collections.abc import Iterable
from pathlib import Path

from matrix import cases, tree_key

DURATIONS_FILE = Path(__file__).with_name("durations.json")
MATRIX_TEST = "tests/test_matrix.py::test_combination["


def load_durations(path: Path = DURATIONS_FILE) -> dict[str, dict]:
    """{test id: {"seconds": float, ...}} (a --matrix-report); {} if the file is absent."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


@functools.cache
def matrix_groups() -> dict[str, str]:
    """{matrix test id: its group}: the same for byte-identical trees on the same Python."""
    return {
        f"{MATRIX_TEST}{test_id}]": json.dumps([tree_key(combination), python], sort_keys=True)
        for combination, python, test_id in cases()
    }


def group_of(test_id: str) -> str:
    """What a test runs with: its tree's twins (matrix) or the rest of its module."""
    if test_id.startswith(MATRIX_TEST):
        return matrix_groups().get(test_id, test_id)
    return module_of(test_id)


def weights(test_ids: Iterable[str], durations: dict[str, dict]) -> dict[str, float]:
    """Seconds per test id: measured where known, else the median of its module's
    measured tests (a new matrix combination weighs a typical one), else 1."""
    test_ids = list(test_ids)
    known: dict[str, list[float]] = {}
    for test_id in test_ids:
        if test_id in durations:
            known.setdefault(module_of(test_id), []).append(durations[test_id]["seconds"])
    return {
        t: durations[t]["seconds"]
        if t in durations
        else statistics.median(known.get(module_of(t), [1.0]))
        for t in test_ids
    }


def module_of(test_id: str) -> str:
    return test_id.split("::", 1)[0]


def split(test_ids: Iterable[str], num_shards: int, durations: dict[str, dict]) -> list[list[str]]:
    """`num_shards` disjoint lists whose union is `test_ids`, balanced by weight (LPT).

    Deterministic for the same arguments: every xdist worker and every CI job
    computes the same shards. Raises ValueError for fewer than one shard.
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be at least 1, not {num_shards}")
    weight = weights(test_ids, durations)
    groups: dict[str, list[str]] = {}
    for test_id in weight:
        groups.setdefault(group_of(test_id), []).append(test_id)
    ordered = sorted(groups.values(), key=lambda ids: (-sum(weight[t] for t in ids), ids[0]))
    shards: list[list[str]] = [[] for _ in range(num_shards)]
    loads = [0.0] * num_shards
    for ids in ordered:
        lightest = loads.index(min(loads))
        shards[lightest].extend(ids)
        loads[lightest] += sum(weight[t] for t in ids)
    return shards


def longest_first(test_ids: list[str], durations: dict[str, dict]) -> list[str]:
    """The matrix's tests reordered longest first (others keep their place).

    With pytest-xdist the longest trees then start first and the short ones
    fill the gaps at the end, instead of one long tree running alone last.
    """
    weight = weights(test_ids, durations)
    matrix = [t for t in test_ids if t.startswith(MATRIX_TEST)]
    slots = iter(sorted(matrix, key=lambda t: -weight[t]))
    return [next(slots) if t.startswith(MATRIX_TEST) else t for t in test_ids]
