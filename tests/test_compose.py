"""The baked compose.yaml: valid Compose in every bake, and a stack that runs with podman.

Every combination of the options compose.yaml reads is baked and its file checked
against the Compose specification's JSON schema (check-jsonschema's vendored
copy) and read by podman-compose with the bake's own `.env`, which must give
the containers consistent values.

Then the stack of the default bake (SQLite) and of a postgresql+redis bake is
built and run with podman-compose, as `docker compose up` would run it, and
checked: `migrate` ran once and exited 0 before `web` started; `/healthz`,
`/readyz` and the image's health check pass through the stack; the `worker`
service runs a task enqueued through `web`, and is healthy; `down` removes
the containers; an API token made before `down` still works after the next
`up` (the named volumes keep the data). No registry can be reached here, so
`postgres:17` and `redis:7` are replaced by a local image of Debian's own
packages (STAND_IN_CONTAINERFILE says why not servers on the host), and
podman-compose's `up` by one service at a time (`Stack` says why).
"""

import contextlib
import graphlib
import hashlib
import itertools
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from bakery import CommandFailed, bake, run
from containers import (
    BUILD_CA_PATH,
    HOST_CA_BUNDLE,
    PODMAN,
    ensure_base_image,
    podman,
    require_podman,
    ulimit_args,
)
from filelock import FileLock
from matrix import DECLARED, combination_id
from servers import IN_CI, ServerUnavailable, free_port

BIN = Path(sys.executable).parent
# The options compose.yaml's Jinja reads; the others leave it as it is.
COMPOSE_OPTIONS = ("database", "broker", "use_sse", "use_channels", "use_tasks", "use_httpx")
# uvicorn's --timeout-graceful-shutdown default in the image's command, in seconds.
GRACEFUL_TIMEOUT = 10
# TASKS_SHUTDOWN_GRACE_SECONDS' default: what the worker gives running tasks on SIGTERM.
TASKS_GRACE = 20

# PostgreSQL and Redis for the stack, as images built from Debian trixie's own
# packages: no registry can be reached here, so `postgres:17` and `redis:7` cannot be
# pulled. Only the `image` (and the command, which these images do not set) of those
# two services is overridden; their environment, volumes and health checks
# (pg_isready, redis-cli ping) are compose.yaml's. Throwaway servers on the host
# would not do: the containers would reach them through the host's network, not
# at the service names, with none of the environment, volume or health check
# compose.yaml gives them.
STAND_IN_CONTAINERFILE = """\
ARG BASE
FROM ${BASE}
RUN apt-get update -qq \\
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
        postgresql redis-server >/dev/null \\
    && rm -rf /var/lib/apt/lists/*
COPY postgres-entrypoint /usr/local/bin/postgres-entrypoint
"""
# What the official postgres image does: on an empty data directory, create the role
# POSTGRES_USER with POSTGRES_PASSWORD and the database POSTGRES_DB with a server
# that listens on no address, then serve every address with password authentication.
POSTGRES_ENTRYPOINT = """\
#!/bin/sh
set -eu
bin=$(echo /usr/lib/postgresql/*/bin)
data=/var/lib/postgresql/data
install -d -o postgres -g postgres -m 700 "$data"
install -d -o postgres -g postgres /var/run/postgresql
as_postgres() { runuser -u postgres -- "$@"; }
if [ ! -s "$data/PG_VERSION" ]; then
    printf '%s\\n' "$POSTGRES_PASSWORD" > /tmp/password
    chown postgres /tmp/password
    as_postgres "$bin/initdb" -D "$data" -U "$POSTGRES_USER" --pwfile=/tmp/password \\
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-sync >/dev/null
    rm /tmp/password
    echo "host all all all scram-sha-256" >> "$data/pg_hba.conf"
    as_postgres "$bin/pg_ctl" -D "$data" -o "-c listen_addresses=''" -w start >/dev/null
    as_postgres "$bin/createdb" -U "$POSTGRES_USER" "$POSTGRES_DB"
    as_postgres "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
fi
exec runuser -u postgres -- "$bin/postgres" -D "$data" -c listen_addresses='*'
"""
STAND_IN_COMMANDS = {
    "postgres": ["postgres-entrypoint"],
    "redis": ["redis-server", "--protected-mode", "no", "--save", "", "--appendonly", "no"],
}


def compose_variants() -> list[dict]:
    """Every combination of COMPOSE_OPTIONS' values, the other options left at their defaults."""
    values = [
        [True, False] if isinstance(DECLARED[name], bool) else DECLARED[name]
        for name in COMPOSE_OPTIONS
    ]
    return [
        dict(zip(COMPOSE_OPTIONS, chosen, strict=True)) for chosen in itertools.product(*values)
    ]


def uses_redis(answers: dict) -> bool:
    return answers["broker"] == "redis" and (answers["use_sse"] or answers["use_channels"])


def dotenv(project: Path) -> dict[str, str]:
    """The bake's .env as {name: value} (its lines are NAME=VALUE or comments)."""
    lines = (project / ".env").read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def podman_compose_or_skip() -> None:
    try:
        require_podman()
    except ServerUnavailable as missing:
        if IN_CI:
            pytest.fail(f"{missing} (required when CI=true)")
        pytest.skip(str(missing))


@pytest.fixture(scope="module")
def bakes(tmp_path_factory) -> dict[str, tuple[dict, Path]]:
    """{combination id: (answers, project)} for every variant of compose.yaml."""
    root = tmp_path_factory.mktemp("compose")
    return {
        combination_id(answers): (answers, bake(root / combination_id(answers), **answers))
        for answers in compose_variants()
    }


@pytest.fixture(scope="module")
def containers_conf(tmp_path_factory) -> Path:
    """A containers.conf with what every podman command needs on this machine.

    podman-compose passes its `--podman-args` after the subcommand, where
    `--cgroup-manager` is refused; podman reads this file (CONTAINERS_CONF) for
    every command instead.
    """
    limits = ulimit_args()
    ulimits = ", ".join(f'"{value}"' for flag, value in itertools.batched(limits, 2))
    runtime = PODMAN[PODMAN.index("--runtime") + 1]
    manager = next(arg for arg in PODMAN if arg.startswith("--cgroup-manager=")).partition("=")[2]
    path = tmp_path_factory.mktemp("podman") / "containers.conf"
    path.write_text(
        f"[containers]\ndefault_ulimits = [{ulimits}]\n\n"
        f'[engine]\nruntime = "{runtime}"\ncgroup_manager = "{manager}"\n',
        encoding="utf-8",
    )
    return path


def test_every_compose_file_follows_the_compose_specification(bakes, tmp_path):
    files = [project / "compose.yaml" for _, project in bakes.values()]
    # sqlite or postgresql, times: memory broker with live features, Redis, neither; times:
    # no worker, a worker, a worker that calls `web` (use_httpx, which alone changes nothing).
    assert len({path.read_text(encoding="utf-8") for path in files}) == 2 * 3 * 3
    check = [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec"]
    result = subprocess.run([*check, *map(str, files)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr

    # The schema is enforced: a condition Compose does not know is refused.
    broken = tmp_path / "compose.yaml"
    broken.write_text(
        files[0].read_text(encoding="utf-8").replace("service_completed_successfully", "done"),
        encoding="utf-8",
    )
    result = subprocess.run([*check, str(broken)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr


def test_podman_compose_reads_every_compose_file_with_the_bake_s_env(bakes, containers_conf):
    """The values each container gets, as podman-compose resolves them from `.env`."""
    podman_compose_or_skip()
    for name, (answers, project) in bakes.items():
        result = run(
            [str(BIN / "podman-compose"), "config"],
            cwd=project,
            env={"CONTAINERS_CONF": str(containers_conf)},
            timeout=60,
        )
        config = yaml.safe_load(result.stdout)
        services = config["services"]
        backing = {"postgres"} if answers["database"] == "postgresql" else set()
        backing |= {"redis"} if uses_redis(answers) else set()
        workers = {"worker"} if answers["use_tasks"] else set()
        assert set(services) == {"migrate", "web", *workers, *backing}, name
        web, migrate = services["web"], services["migrate"]
        image_services = [web, migrate, *(services[name] for name in workers)]

        for dependent in (web, *(services[name] for name in workers)):
            assert dependent["depends_on"] == {
                "migrate": {"condition": "service_completed_successfully"},
                **{service: {"condition": "service_healthy"} for service in backing},
            }, name
        if "postgres" in backing:
            assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}, name
        for service in backing:
            assert services[service]["healthcheck"]["test"], (name, service)
        assert migrate["command"] == ["python", "manage.py", "migrate", "--noinput"], name
        assert web.get("command") is None, name  # the image's own: the production command
        assert web["ports"] == ["127.0.0.1:8000:8000"], name
        assert float(web["stop_grace_period"].removesuffix("s")) > GRACEFUL_TIMEOUT, name

        env = dotenv(project)
        self_calls = answers["use_tasks"] and answers["use_httpx"]
        if workers:
            worker = services["worker"]
            assert worker["command"] == ["python", "manage.py", "worker"], name
            # Not the image's /healthz check: a worker serves no HTTP.
            assert worker["healthcheck"]["test"] == ["CMD", "python", "manage.py", "worker_alive"]
            assert float(worker["stop_grace_period"].removesuffix("s")) > TASKS_GRACE, name
            assert "ports" not in worker, name
            # The example task calls /healthz on `web`, which must accept that host.
            self_url = worker["environment"].get("DASHBOARD_SELF_URL")
            assert self_url == ("http://web:8000" if self_calls else None), name
        hosts = web["environment"].get("DJANGO_ALLOWED_HOSTS")
        assert hosts == (env["DJANGO_ALLOWED_HOSTS"] + ",web" if self_calls else None), name
        for service in image_services:
            assert service["env_file"] == [".env"], name
            environment = service["environment"]
            if answers["database"] == "postgresql":
                # The role, password and database the postgres container creates.
                local = re.fullmatch(
                    r"postgres://(\w+):(\w+)@127\.0\.0\.1:5432/(\w+)", env["DATABASE_URL"]
                )
                assert local, env["DATABASE_URL"]
                assert (
                    env["POSTGRES_USER"],
                    env["POSTGRES_PASSWORD"],
                    env["POSTGRES_DB"],
                ) == local.groups()
                user, password, database = local.groups()
                assert (
                    environment["DATABASE_URL"]
                    == f"postgres://{user}:{password}@postgres:5432/{database}"
                ), name
                postgres = services["postgres"]["environment"]
                assert postgres == {
                    "POSTGRES_USER": env["POSTGRES_USER"],
                    "POSTGRES_PASSWORD": env["POSTGRES_PASSWORD"],
                    "POSTGRES_DB": env["POSTGRES_DB"],
                }, name
            else:
                assert environment["DATABASE_URL"] == "sqlite:////data/db.sqlite3", name
            assert "data:/data" in service["volumes"], name
            redis_url = environment.get("REDIS_URL")
            assert redis_url == ("redis://redis:6379/0" if uses_redis(answers) else None), name
        one_worker = answers["broker"] == "memory" and (
            answers["use_sse"] or answers["use_channels"]
        )
        assert web["environment"].get("WEB_CONCURRENCY") == ("1" if one_worker else None), name
        for service in image_services[1:]:
            assert "WEB_CONCURRENCY" not in service["environment"], name


def test_env_example_documents_every_variable_compose_reads(bakes):
    for name, (_, project) in bakes.items():
        compose = (project / "compose.yaml").read_text(encoding="utf-8")
        example = (project / ".env.example").read_text(encoding="utf-8")
        # ${NAME}, ${NAME:-default}, ${NAME:?error}; $${NAME} is the container's shell's.
        read = set(re.findall(r"(?<!\$)\$\{(\w+)", compose))
        documented = set(re.findall(r"(?m)^#? ?(\w+)=", example))
        assert read - documented == set(), name


@dataclass
class Stack:
    """A baked project's compose stack, run with podman-compose as a test project.

    podman-compose 1.6 on Debian 12's podman 4.3 does not start services as
    Compose does: it creates each container with `--requires` on those it depends
    on, so starting `web` starts the finished `migrate` again, beside it; and it
    ignores `service_healthy` before podman 4.6. So `up` starts one service at a
    time with `up --no-deps`, in the order of their `depends_on`, after waiting for
    each condition as Compose does: a health check that passes (`podman
    healthcheck run`: the periodic checks need systemd here), a container that
    exited 0.
    """

    project: Path
    name: str
    environment: dict[str, str]

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        command = [str(BIN / "podman-compose"), "--in-pod", "false", "-p", self.name]
        command += ["-f", "compose.yaml", "-f", "compose.test.yaml", *args]
        return run(command, cwd=self.project, env=self.environment, timeout=timeout)

    def container(self, service: str) -> str:
        return f"{self.name}_{service}_1"

    def inspect(self, service: str, template: str) -> str:
        return podman("inspect", "--format", template, self.container(service)).stdout.strip()

    def logs(self, service: str) -> str:
        result = podman("logs", self.container(service), check=False)
        return result.stdout + result.stderr

    def build(self) -> None:
        """Build the services that have a `build` section, one after the other.

        The second build is all cached layers; built at once, both would run every step.
        """
        build_args = f"--format docker --network host --volume {HOST_CA_BUNDLE}:{BUILD_CA_PATH}:ro"
        services = yaml.safe_load(self.compose("config").stdout)["services"]
        for service, definition in services.items():
            if "build" in definition:
                self.compose(f"--podman-build-args={build_args}", "build", service, timeout=600)

    def up(self) -> None:
        services = yaml.safe_load(self.compose("config").stdout)["services"]
        order = graphlib.TopologicalSorter(
            {name: set(service.get("depends_on", {})) for name, service in services.items()}
        )
        for service in order.static_order():
            for dependency, rule in services[service].get("depends_on", {}).items():
                self.wait_for(dependency, rule["condition"])
            self.compose("up", "--detach", "--no-deps", service)

    def wait_for(self, service: str, condition: str, timeout: float = 120) -> None:
        container = self.container(service)
        if condition == "service_completed_successfully":
            code = podman("wait", container, timeout=timeout).stdout.strip()
            assert code == "0", f"{service} exited {code}:\n{self.logs(service)}"
        elif condition == "service_healthy":
            deadline = time.monotonic() + timeout
            while podman("healthcheck", "run", container, check=False).returncode != 0:
                assert time.monotonic() < deadline, f"{service} not healthy:\n{self.logs(service)}"
                time.sleep(0.5)

    def down(self, *args: str) -> None:
        self.compose("down", *args)

    def containers(self) -> list[str]:
        label = f"label=io.podman.compose.project={self.name}"
        names = podman("ps", "--all", "--filter", label, "--format", "{{.Names}}").stdout
        return names.split()


def stand_in_image(lock_dir: Path, base: str) -> str:
    """The PostgreSQL and Redis image (see STAND_IN_CONTAINERFILE), built once per machine."""
    content = (STAND_IN_CONTAINERFILE + POSTGRES_ENTRYPOINT).encode()
    tag = f"localhost/compose-stand-in:{hashlib.sha256(content).hexdigest()[:12]}"
    with FileLock(str(lock_dir / "compose-stand-in.lock"), timeout=600):
        if podman("image", "exists", tag, check=False).returncode == 0:
            return tag
        context = lock_dir / "compose-stand-in"
        context.mkdir(exist_ok=True)
        (context / "Containerfile").write_text(STAND_IN_CONTAINERFILE, encoding="utf-8")
        entrypoint = context / "postgres-entrypoint"
        entrypoint.write_text(POSTGRES_ENTRYPOINT, encoding="utf-8")
        entrypoint.chmod(0o755)
        podman(
            "build", "--network", "host", *ulimit_args(), "--build-arg", f"BASE={base}",
            "--tag", tag, str(context), timeout=600,
        )  # fmt: skip
        return tag


def override(services: dict, base: str, stand_in: str) -> dict:
    """compose.test.yaml: the local base for the image, the stand-ins for the backing services."""
    build_args = {"PYTHON_IMAGE": base}
    if HOST_CA_BUNDLE.exists():
        build_args["SSL_CERT_FILE"] = BUILD_CA_PATH
    changed = {
        name: {"build": {"args": build_args}}
        for name, service in services.items()
        if "build" in service
    }
    for name, command in STAND_IN_COMMANDS.items():
        if name in services:
            changed[name] = {"image": stand_in, "command": command}
    return {"services": changed}


def get(url: str, **kwargs) -> httpx.Response:
    """GET `url` once it answers at all (within 60 s): the container may still be starting."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return httpx.get(url, timeout=5, **kwargs)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)


def worker_runs_a_task(stack: Stack, url: str, bearer: dict[str, str]) -> None:
    """The `worker` service runs the example task enqueued through `web`, and is healthy.

    The survey's every check passes, the upstreams one included: the worker
    reached `web` at DASHBOARD_SELF_URL, which accepted that host.
    """
    enqueued = httpx.post(f"{url}/tasks/survey/", headers=bearer, timeout=10)
    assert enqueued.status_code == 202, enqueued.text
    location = url + enqueued.headers["Location"]
    deadline = time.monotonic() + 60
    while (state := httpx.get(location, headers=bearer, timeout=10).json())["status"] in (
        "READY",
        "RUNNING",
    ):
        assert time.monotonic() < deadline, f"{state}\n{stack.logs('worker')}"
        time.sleep(0.25)
    assert state["status"] == "SUCCESSFUL", f"{state}\n{stack.logs('worker')}"
    assert state["result"]["ok"] is True, state["result"]
    assert "upstreams" in state["result"]["checks"]
    assert state["attempts"] == 1
    health = podman("healthcheck", "run", stack.container("worker"), check=False)
    assert health.returncode == 0, health.stdout + health.stderr
    ready = httpx.get(f"{url}/readyz", timeout=10).json()
    assert ready["checks"]["tasks_worker"]["ok"] is True, ready


@pytest.mark.parametrize(
    "answers",
    [{}, {"database": "postgresql", "broker": "redis"}],
    ids=["default", "postgresql-redis"],
)
def test_the_stack_runs_with_podman(tmp_path, shared_dir, containers_conf, answers, phase):
    podman_compose_or_skip()
    try:
        base = ensure_base_image(shared_dir)
    except ServerUnavailable as missing:
        if IN_CI:
            pytest.fail(f"{missing} (required when CI=true)")
        pytest.skip(str(missing))
    project = bake(tmp_path, **answers)
    readme = (project / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- compose-command -->\n```sh\n(.+?)\n```", readme, re.S)
    assert block, "the baked README has no compose-command block"
    # The README's steps: `uv lock` as written, then `up`, with podman below.
    lock, up = block.group(1).splitlines()
    assert up == "docker compose up"
    run(lock.split(), cwd=project, timeout=300)
    port = free_port()
    stack = Stack(
        project,
        f"compose{port}",
        {"CONTAINERS_CONF": str(containers_conf), "WEB_PORT": str(port)},
    )
    services = yaml.safe_load((project / "compose.yaml").read_text(encoding="utf-8"))["services"]
    stand_in = stand_in_image(shared_dir, base) if set(services) & set(STAND_IN_COMMANDS) else ""
    (project / "compose.test.yaml").write_text(
        yaml.safe_dump(override(services, base, stand_in)), encoding="utf-8"
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with phase("compose build"):
            stack.build()
        with phase("compose up"):
            stack.up()

        assert stack.inspect("migrate", "{{.State.ExitCode}}") == "0"
        assert stack.logs("migrate").count("Operations to perform:") == 1, stack.logs("migrate")
        assert "Applying core.0001_initial... OK" in stack.logs("migrate")
        migrated = stack.inspect("migrate", "{{.State.FinishedAt.UnixNano}}")
        started = stack.inspect("web", "{{.State.StartedAt.UnixNano}}")
        assert int(migrated) < int(started)

        assert get(f"{url}/healthz").json() == {"status": "ok"}
        ready = get(f"{url}/readyz")
        assert ready.status_code == 200, ready.text
        expected = {"database", "tasks_worker"}
        expected |= {"redis", "channel_layer"} if "redis" in services else set()
        assert set(ready.json()["checks"]) == expected
        health = podman("healthcheck", "run", stack.container("web"), check=False)
        assert health.returncode == 0, health.stdout + health.stderr

        # A token made now must still work after `down` and `up`.
        created = podman(
            "exec", stack.container("web"), "python", "manage.py", "create_api_token", "alice"
        )
        token = created.stdout.split()[-1]
        bearer = {"Authorization": f"Bearer {token}"}
        assert get(f"{url}/auth/whoami/", headers=bearer).status_code == 200

        with phase("compose worker runs a task"):
            worker_runs_a_task(stack, url, bearer)

        with phase("compose down"):
            stack.down()
        assert stack.containers() == []
        with phase("compose up again"):
            stack.up()
        assert "No migrations to apply." in stack.logs("migrate")
        whoami = get(f"{url}/auth/whoami/", headers=bearer)
        assert whoami.status_code == 200, whoami.text
    finally:
        with contextlib.suppress(CommandFailed, subprocess.TimeoutExpired):
            stack.down("--volumes")
        for service in ("migrate", "web", "worker"):
            podman("rmi", "--force", f"{stack.name}_{service}", check=False)
