import contextlib
import os
import time
from collections import defaultdict
from pathlib import Path

import pytest
from bakery import Environments
from servers import IN_CI, ServerUnavailable, postgres_server, redis_server

# Baked projects get environments of their own, never the template's.
os.environ.pop("VIRTUAL_ENV", None)


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


def pytest_runtest_logreport(report):
    if report.when != "call":
        return
    for key, value in report.user_properties:
        if key.startswith("phase:"):
            _phase_times[key.removeprefix("phase:")].append(value)
        elif key == "identical_to":
            _identical.append(value)


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
