"""How the matrix's wall time grows with the number of combinations.

Runs `uv run pytest tests/test_matrix.py` (every core, as `.ci/run` does) on
part of the matrix and then all of it: TEMPLATE_MATRIX_PIN (tests/test_matrix.py)
pins options to get each size. `--every-python` adds a run of every combination
on every Python (TEMPLATE_EVERY_PYTHON=1): 256 cases, the work of the matrix
once one more yes/no option doubles it. Each run's wall time, its number of
combinations and of distinct trees tested, and the machine's load average
are appended to bench/results/matrix_scaling.json; every point recorded there
is then drawn on docs/img/matrix-scaling.png. Each run's --matrix-report
(bench/results/matrix-<size>.json) is a durations file for tests/durations.json.

    uv run --group bench python -m bench.matrix_scaling [--pins "broker=memory,database=sqlite" ...]
        [--every-python]
    uv run --group bench python -m bench.matrix_scaling --plot-only
"""

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
POINTS = RESULTS / "matrix_scaling.json"
CHART = ROOT / "docs" / "img" / "matrix-scaling.png"
# From a sixteenth of the matrix to all of it, each size twice the one before.
DEFAULT_PINS = [
    "broker=memory,database=sqlite,use_httpx=true",
    "broker=memory,database=sqlite",
    "",
]


def measure(pin: str, every_python: bool = False) -> dict:
    """Run the matrix with `pin`; return its size, wall time and outcome."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = pin.replace(",", "+").replace("=", "-") or "all"
    report = RESULTS / f"matrix-{name}{'-every-python' if every_python else ''}.json"
    started = time.monotonic()
    result = subprocess.run(
        ["uv", "run", "pytest", "tests/test_matrix.py", "-q", "--matrix-report", str(report)],
        cwd=ROOT,
        env={
            **os.environ,
            "TEMPLATE_MATRIX_PIN": pin,
            "TEMPLATE_EVERY_PYTHON": "1" if every_python else "",
        },
        capture_output=True,
        text=True,
        timeout=4 * 3600,
    )
    wall = time.monotonic() - started
    tests = json.loads(report.read_text(encoding="utf-8"))
    twins = sum("identical_to" in entry for entry in tests.values())
    return {
        "pin": pin + (" (every Python)" if every_python else ""),
        "combinations": len(tests),
        "trees": len(tests) - twins,
        "wall_seconds": round(wall, 1),
        "passed": result.returncode == 0,
        "summary": result.stdout.strip().splitlines()[-1],
        "load_average_after": os.getloadavg(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def plot(points: list[dict]) -> Path:
    """Draw the latest point of each size and series on CHART, and the line through the largest.

    A point's "series" (default "measured") names its line: a run of older code
    recorded with "series": "before" is drawn beside the current one.
    """
    latest = {(p.get("series", "measured"), p["pin"]): p for p in points}
    series: dict[str, list[dict]] = {}
    for (name, _), point in sorted(latest.items(), key=lambda kv: kv[1]["combinations"]):
        series.setdefault(name, []).append(point)
    measured = series.get("measured") or next(iter(series.values()))
    figure, axes = plt.subplots(figsize=(7, 4.2))
    for name, marker in zip(series, "osx^", strict=False):
        sizes = [p["combinations"] for p in series[name]]
        minutes = [p["wall_seconds"] / 60 for p in series[name]]
        axes.plot(sizes, minutes, f"{marker}-", label=f"{name} ({series[name][-1]['cores']} cores)")
        for point, y in zip(series[name], minutes, strict=True):
            axes.annotate(f"{point['trees']} trees", (point["combinations"], y),
                          xytext=(4, -12 if name == "measured" else 6),
                          textcoords="offset points", fontsize=8)  # fmt: skip
    # A straight line through the largest measured run: what each combination costs.
    largest = measured[-1]
    per = largest["wall_seconds"] / 60 / largest["combinations"]
    axes.plot([0, 256], [0, 256 * per], ":", color="gray",
              label=f"{60 * per:.1f} s per combination, extended")  # fmt: skip
    axes.plot([128], [10], "*", color="tab:red", markersize=10, label="goal: 128 in 10 min")
    axes.set_xlabel("matrix cases (combinations, and their runs on another Python)")
    axes.set_ylabel("wall time (minutes)")
    axes.set_xlim(0, 264)
    axes.set_ylim(0)
    load = ", ".join(f"{x:.1f}" for x in largest["load_average_after"])
    axes.set_title(
        f"tests/test_matrix.py wall time, {largest['cores']} cores, nothing else running\n"
        f"(load average after the largest run, the matrix's own: {load})",
        fontsize=10,
    )
    axes.legend(fontsize=8)
    figure.tight_layout()
    CHART.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(CHART, dpi=120)
    plt.close(figure)
    return CHART


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pins", nargs="*", default=DEFAULT_PINS, help="one run per pin")
    parser.add_argument("--plot-only", action="store_true", help="draw the recorded points")
    parser.add_argument(
        "--every-python", action="store_true", help="then every combination on every Python"
    )
    args = parser.parse_args()
    points = json.loads(POINTS.read_text(encoding="utf-8")) if POINTS.exists() else []
    if not args.plot_only:
        runs = [(pin, False) for pin in args.pins] + [("", True)] * args.every_python
        for pin, every_python in runs:
            point = measure(pin, every_python)
            print(json.dumps(point), flush=True)
            points.append(point)
            POINTS.write_text(json.dumps(points, indent=1) + "\n", encoding="utf-8")
    print(plot(points))


if __name__ == "__main__":
    main()
