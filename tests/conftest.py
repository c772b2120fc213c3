import contextlib
import json
import os
import time
from collections import defaultdict
from pathlib import Path

import pytest
import sharding
from bakery import Environments
from matrix import installed_pythons, pythons
from servers import IN_CI, ServerUnavailable, postgres_server, redis_server

# Baked projects get environments of their own, never the template's.
os.environ.pop("VIRTUAL_ENV", None)
# Options for this run (CI jobs name their part here) must not reach the baked
# projects' own pytest, which inherits the environment; pytest has read them.
os.environ.pop("PYTEST_ADDOPTS", None)
# Let every interpreter cache the bytecode it compiles. With PYTHONDONTWRITEBYTECODE set
# (as some sandboxes and images do), every baked pytest, and every subprocess its tests
# start, compiled Django, pytest and the rest from source again: about 1 s of CPU per
# all-features tree in a fresh environment, 2.7 s in one another tree has used.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def pytest_addoption(parser):
    group = parser.getgroup("matrix", "the option matrix (tests/test_matrix.py)")
    group.addoption(
        "--num-shards",
        type=int,
        default=1,
        help="split the suite into N shards balanced by tests/durations.json (tests/sharding.py)",
    )
    group.addoption(
        "--shard-id", type=int, default=0, help="run shard I of --num-shards, 0 <= I < N"
    )
    group.addoption(
        "--durations-file",
        type=Path,
        default=sharding.DURATIONS_FILE,
        help="measured seconds per test for sharding and ordering (default: %(default)s)",
    )
    group.addoption(
        "--matrix-report",
        type=Path,
        metavar="PATH",
        help="write each test's seconds, phase times and twin as JSON: a new --durations-file",
    )
    group.addoption(
        "--baked-junit",
        type=Path,
        metavar="DIR",
        help="each baked project's pytest writes DIR/<test id>.xml (JUnit)",
    )


def pytest_xdist_auto_num_workers(config):
    """`-n auto` (pyproject.toml's addopts): one worker per core, and one more.

    A matrix case waits about a third of its time (on PostgreSQL and Redis, on
    the subprocesses it starts, on its tests' own timers): with one worker per
    core the cores were 66% busy over the PostgreSQL half of the matrix, 83% with
    one more, which ran it in 341 s instead of 374 s on 2 cores.
    """
    return (os.cpu_count() or 1) + 1


def pytest_configure(config):
    num_shards, shard_id = config.getoption("num_shards"), config.getoption("shard_id")
    if not 0 <= shard_id < num_shards:
        raise pytest.UsageError(f"--shard-id must be in [0, {num_shards}), not {shard_id}")


def pytest_collection_modifyitems(config, items):
    """Keep this run's shard only, and start the longest matrix combinations first."""
    num_shards, shard_id = config.getoption("num_shards"), config.getoption("shard_id")
    durations = sharding.load_durations(config.getoption("durations_file"))
    if num_shards > 1:
        keep = set(sharding.split([item.nodeid for item in items], num_shards, durations)[shard_id])
        deselected = [item for item in items if item.nodeid not in keep]
        items[:] = [item for item in items if item.nodeid in keep]
        config.hook.pytest_deselected(items=deselected)
    by_id = {item.nodeid: item for item in items}
    items[:] = [by_id[t] for t in sharding.longest_first(list(by_id), durations)]


def pytest_report_header(config):
    """Say which Pythons the baked projects run on (the declared ones this machine has)
    and which shard of the suite this run is."""
    lines = []
    num_shards = config.getoption("num_shards")
    if num_shards > 1:
        lines.append(f"shard {config.getoption('shard_id')} of {num_shards} (0-based)")
    try:
        found = pythons()
    except RuntimeError as problem:  # the tests that bake fail with it; the others run
        return [*lines, f"baked projects: {problem}"]
    listed = ", ".join(f"{version} ({installed_pythons()[version]})" for version in found)
    return [*lines, f"baked projects run on Python {listed} (tests/matrix.py: cases())"]


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory) -> Path:
    """A directory shared by every xdist worker of this run."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def environments(shared_dir) -> Environments:
    return Environments(shared_dir / "venvs")


def _server_or_skip(start):
    try:
        return start()
    except ServerUnavailable as missing:
        if IN_CI:
            pytest.fail(f"{missing} (required when CI=true)")
        pytest.skip(str(missing))


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL server for this worker, started on first use."""
    with contextlib.ExitStack() as stack:
        yield _server_or_skip(lambda: stack.enter_context(postgres_server()))


@pytest.fixture(scope="session")
def redis():
    """A throwaway Redis server for this worker, started on first use."""
    with contextlib.ExitStack() as stack:
        yield _server_or_skip(lambda: stack.enter_context(redis_server()))


@pytest.fixture
def phase(record_property):
    """Time a phase of a test; the totals are printed at the end of the run."""

    @contextlib.contextmanager
    def timed(name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            record_property(f"phase:{name}", time.perf_counter() - started)

    return timed


_phase_times: dict[str, list[float]] = defaultdict(list)
_identical: list[str] = []
_run_started = time.perf_counter()
# Per test id: seconds (setup, call and teardown) and what the test recorded.
_report: dict[str, dict] = defaultdict(lambda: {"seconds": 0.0})


def pytest_runtest_logreport(report):
    entry = _report[report.nodeid]
    entry["seconds"] = round(entry["seconds"] + report.duration, 2)
    if report.when != "call":
        return
    for key, value in report.user_properties:
        entry[key] = round(value, 2) if isinstance(value, float) else value
        if key.startswith("phase:"):
            _phase_times[key.removeprefix("phase:")].append(value)
        elif key == "identical_to":
            _identical.append(value)


def pytest_sessionfinish(session):
    path = session.config.getoption("matrix_report")
    if path and not hasattr(session.config, "workerinput"):  # the xdist controller, or no xdist
        path.write_text(json.dumps(dict(sorted(_report.items())), indent=1) + "\n")


def pytest_terminal_summary(terminalreporter):
    if not _phase_times:
        return
    write = terminalreporter.write_line
    terminalreporter.section("phase timings (seconds, summed over workers)")
    write(f"{'phase':<12}{'count':>7}{'total':>10}{'mean':>9}{'max':>9}")
    for name, times in sorted(_phase_times.items()):
        write(
            f"{name:<12}{len(times):>7}{sum(times):>10.1f}"
            f"{sum(times) / len(times):>9.2f}{max(times):>9.2f}"
        )
    baked = len(_phase_times.get("bake", []))
    write(
        f"{baked} combinations baked: {baked - len(_identical)} distinct trees tested in full, "
        f"{len(_identical)} byte-identical to one of those"
    )
    write(f"wall time of the run: {time.perf_counter() - _run_started:.1f}s")
