"""Build and run a baked project's image with podman, for the template's tests.

No container registry can be reached from the machines this suite runs on, so
the base image is made locally: `debootstrap` a minimal Debian trixie with its
python3 (3.13) and import it as `localhost/python:3.13-trixie`, once per machine
(it stays in podman's storage; a lock lets one xdist worker make it while the
others wait). The Dockerfile's default base, the official `python:3.13-slim`,
is replaced with `--build-arg PYTHON_IMAGE=...`.

Podman runs with runc and cgroupfs (crun refuses this machine's cgroup layout)
and host networking; rlimits can only be lowered inside, so each container gets
limits no higher than this process's own. The package registries are reached
through a TLS-inspecting proxy whose CA is in the host's bundle: the build
mounts that file and points SSL_CERT_FILE (a build argument) at it.
"""

import contextlib
import json
import re
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from filelock import FileLock
from servers import ServerUnavailable, free_port

BASE_IMAGE = "localhost/python:3.13-trixie"
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs"]
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Where the build sees the host's bundle (SSL_CERT_FILE), apart from the image's own.
BUILD_CA_PATH = "/run/host-ca-certificates.crt"
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def require_podman() -> None:
    """Raise ServerUnavailable naming what to install when podman or runc is missing."""
    missing = [tool for tool in ("podman", "runc") if shutil.which(tool) is None]
    if missing:
        raise ServerUnavailable(f"{' and '.join(missing)} not found: apt-get install podman runc")


def podman(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    """Run `podman ARGS`; on failure (when `check`) raise with its whole output."""
    result = subprocess.run(
        [*PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)} exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-20000:]}\n--- stderr ---\n{result.stderr[-20000:]}"
        )
    return result


def ulimit_args(nofile: int = 4096, nproc: int = 4096) -> list[str]:
    """--ulimit flags for at most `nofile` and `nproc`, and never above this process's own."""
    args = []
    for name, wanted, limit in (
        ("nofile", nofile, resource.RLIMIT_NOFILE),
        ("nproc", nproc, resource.RLIMIT_NPROC),
    ):
        soft, hard = resource.getrlimit(limit)
        value = min(wanted, *(n for n in (soft, hard) if n != resource.RLIM_INFINITY))
        args += ["--ulimit", f"{name}={value}:{value}"]
    return args


def apt_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 or one-line sources)."""
    for path in sorted(Path("/etc/apt").glob("sources.list*")) + sorted(
        Path("/etc/apt/sources.list.d").glob("*.sources")
    ):
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        found = re.search(r"^URIs:\s*(\S+/debian)/?\s*$", text, re.MULTILINE) or re.search(
            r"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)/?\s", text, re.MULTILINE
        )
        if found:
            return found.group(1)
    return DEFAULT_MIRROR


def ensure_base_image(lock_dir: Path) -> str:
    """The local base image, made on first use (about a minute): Debian trixie's python3.

    Raise ServerUnavailable when debootstrap is missing.
    """
    with FileLock(str(lock_dir / "container-base-image.lock"), timeout=600):
        if podman("image", "exists", BASE_IMAGE, check=False).returncode == 0:
            return BASE_IMAGE
        if shutil.which("debootstrap") is None:
            raise ServerUnavailable("debootstrap not found: apt-get install debootstrap")
        with tempfile.TemporaryDirectory(prefix="rootfs-", dir=lock_dir) as root:
            made = subprocess.run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    "--include=python3,python3-venv,ca-certificates",
                    "trixie",
                    root,
                    apt_mirror(),
                ],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if made.returncode != 0:
                raise AssertionError(
                    f"debootstrap failed:\n{made.stdout[-5000:]}{made.stderr[-5000:]}"
                )
            archive = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
            try:
                subprocess.run(
                    [*PODMAN, "import", "-", BASE_IMAGE],
                    stdin=archive.stdout,
                    check=True,
                    capture_output=True,
                    timeout=300,
                )
            finally:
                archive.stdout.close()
                archive.wait(timeout=60)
        return BASE_IMAGE


def build(project: Path, tag: str, base: str = BASE_IMAGE, timeout: float = 300):
    """`podman build` the project's Dockerfile as `tag` on `base`: the CompletedProcess.

    Docker format (OCI images drop HEALTHCHECK), host network, the host's CA
    bundle for pip and uv. Does not raise: the caller reads the result.
    """
    args = ["build", "--format", "docker", "--network", "host", *ulimit_args()]
    args += ["--build-arg", f"PYTHON_IMAGE={base}", "--tag", tag]
    if HOST_CA_BUNDLE.exists():
        args += ["--volume", f"{HOST_CA_BUNDLE}:{BUILD_CA_PATH}:ro"]
        args += ["--build-arg", f"SSL_CERT_FILE={BUILD_CA_PATH}"]
    return podman(*args, str(project), timeout=timeout, check=False)


def image_size(image: str) -> int:
    """The image's size in bytes, as `podman images` shows it."""
    return int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout)


def image_config(image: str) -> dict:
    """The image's configuration: Env, Cmd, User, Healthcheck, StopSignal..."""
    return json.loads(podman("image", "inspect", image).stdout)[0]["Config"]


def run_once(image: str, *command: str, args: tuple[str, ...] = (), timeout: float = 120) -> str:
    """Run `command` in a new container of `image` (host network) and remove it: its stdout."""
    return podman(
        "run", "--rm", "--network", "host", *ulimit_args(), *args, image, *command,
        timeout=timeout,
    ).stdout  # fmt: skip


@dataclass
class Container:
    """A container started by `run_container`, serving on `port` of the host's network."""

    name: str
    port: int
    host: str = "127.0.0.1"
    exit_code: int | None = field(default=None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def exec(self, *command: str) -> str:
        return podman("exec", self.name, *command).stdout

    def wait_until_serving(self, timeout: float = 60) -> None:
        """Wait for /healthz to answer 200; raise with the logs if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = podman("inspect", "--format", "{{.State.Running}}", self.name).stdout
            if state.strip() != "true":
                raise AssertionError(f"{self.name} exited before serving:\n{self.logs()}")
            with contextlib.suppress(httpx.TransportError):
                response = httpx.get(f"{self.url}/healthz", headers={"Host": self.host}, timeout=2)
                if response.status_code == 200:
                    return
            time.sleep(0.25)
        raise AssertionError(f"{self.name}: /healthz not 200 after {timeout}s:\n{self.logs()}")

    def stop(self, grace: int = 15) -> tuple[int, float]:
        """SIGTERM, then SIGKILL after `grace` seconds: (exit code, seconds it took)."""
        started = time.monotonic()
        podman("stop", "--time", str(grace), self.name, timeout=grace + 30)
        seconds = time.monotonic() - started
        code = podman("inspect", "--format", "{{.State.ExitCode}}", self.name).stdout
        self.exit_code = int(code)
        return self.exit_code, seconds


@contextlib.contextmanager
def run_container(image: str, name: str, env: dict[str, str], *args: str, host="127.0.0.1"):
    """Run `image`'s own command on a free port (the PORT its command reads); removed on exit.

    The health check's timer is left off (it needs systemd here): the test runs
    it with `podman healthcheck run`.
    """
    port = free_port()
    environment = [f"--env={key}={value}" for key, value in {**env, "PORT": str(port)}.items()]
    podman(
        "run", "--detach", "--name", name, "--network", "host", *ulimit_args(),
        "--health-interval", "disable", *environment, *args, image,
    )  # fmt: skip
    container = Container(name, port, host)
    try:
        yield container
    finally:
        podman("rm", "--force", "--time", "0", name, check=False, timeout=60)
