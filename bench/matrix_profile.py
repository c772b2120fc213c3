"""Where the matrix's time goes: per phase, per tree, and per baked test.

Reads what a matrix run recorded with

    uv run pytest tests/test_matrix.py --matrix-report R.json --baked-junit DIR

(`R.json`: each combination's seconds and phase times; `DIR/<combination>.xml`:
each baked project's own JUnit report) and prints three tables:

- phases (bake, install, ruff, actionlint, test) summed over the combinations;
- the baked test phase split into the tests' own time (setup, call and
  teardown, from the JUnit reports) and what is left: the interpreter, imports,
  Django set-up, collection and teardown of each baked pytest;
- the baked tests that cost the most summed over every tree, and per module.

    uv run python -m bench.matrix_profile R.json DIR [--top 25]
"""

import argparse
import json
import statistics
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path


def baked_tests(junit: Path) -> dict[str, float]:
    """{module::test: seconds} from one baked project's JUnit report."""
    root = ET.parse(junit).getroot()
    found = {}
    for case in root.iter("testcase"):
        parts = case.get("classname", "").split(".")
        if parts[-1][:1].isupper():  # a test class: count it with its module
            parts.pop()
        module = "/".join(parts) + ".py"
        found[f"{module}::{case.get('name')}"] = float(case.get("time", 0))
    return found


def table(rows: list[tuple], header: tuple) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(
                str(c).rjust(w) if i else str(c).ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("junit", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()

    report = json.loads(args.report.read_text(encoding="utf-8"))
    matrix = {k: v for k, v in report.items() if "test_combination[" in k}
    phases: dict[str, list[float]] = defaultdict(list)
    for entry in matrix.values():
        for key, value in entry.items():
            if key.startswith("phase:"):
                phases[key.removeprefix("phase:")].append(value)
    total = sum(e["seconds"] for e in matrix.values())
    twins = sum("identical_to" in e for e in matrix.values())
    print(f"{len(matrix)} combinations, {len(matrix) - twins} trees tested, {total:.1f}s in all\n")
    table(
        [
            (name, len(t), f"{sum(t):.1f}", f"{statistics.mean(t):.2f}", f"{max(t):.2f}",
             f"{100 * sum(t) / total:.0f}%")
            for name, t in sorted(phases.items(), key=lambda kv: -sum(kv[1]))
        ],
        ("phase", "count", "total s", "mean s", "max s", "share"),
    )  # fmt: skip

    per_test: dict[str, list[float]] = defaultdict(list)
    rows = []
    for node, entry in sorted(matrix.items(), key=lambda kv: -kv[1].get("phase:test", 0)):
        name = node.split("[", 1)[1].rstrip("]")
        junit = args.junit / f"{name}.xml"
        if "phase:test" not in entry or not junit.exists():
            continue
        tests = baked_tests(junit)
        for test, seconds in tests.items():
            per_test[test].append(seconds)
        own = sum(tests.values())
        rows.append((name, len(tests), f"{entry['phase:test']:.1f}", f"{own:.1f}",
                     f"{entry['phase:test'] - own:.1f}"))  # fmt: skip
    table(rows, ("tree", "tests", "test phase s", "in tests s", "start-up etc. s"))

    modules: dict[str, float] = defaultdict(float)
    for test, times in per_test.items():
        modules[test.split("::")[0]] += sum(times)
    table(
        [(m, f"{s:.1f}") for m, s in sorted(modules.items(), key=lambda kv: -kv[1])[: args.top]],
        ("baked module", "total s"),
    )
    table(
        [
            (t, len(s), f"{sum(s):.1f}", f"{statistics.mean(s):.2f}")
            for t, s in sorted(per_test.items(), key=lambda kv: -sum(kv[1]))[: args.top]
        ],
        ("baked test", "trees", "total s", "mean s"),
    )


if __name__ == "__main__":
    main()
