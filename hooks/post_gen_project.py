"""Prune the files of every feature that is off, write a private .env, print the next steps.

FEATURE_PATHS is the one place that says which files a feature owns. A key is a
boolean option ("use_sse") or a choice and its value ("broker=redis"); when
the answer does not match, every path listed for it is removed.
"""

import json
import re
import secrets
import shutil
from pathlib import Path

ANSWERS = json.loads(r"""{{ cookiecutter | tojson }}""")
USES_REDIS = json.loads("{{ cookiecutter | uses_redis | tojson }}")

FEATURE_PATHS: dict[str, tuple[str, ...]] = {
    "use_async_views": ("articles", "files"),
    "use_hybrid_middleware": ("request_context",),
    "use_sse": ("events",),
    "use_channels": ("rooms",),
    "use_httpx": ("upstreams", "tasks/upstreams.py"),
    "use_tasks": ("tasks",),
    "database=postgresql": ("core/postgresql", "core/tests/test_postgresql.py"),
    "broker=memory": ("events/tests/test_memory_broker.py",),
    "broker=redis": (
        "events/redis_broker.py",
        "events/tests/test_redis_broker.py",
        "rooms/layers.py",
        "rooms/readiness.py",
        "rooms/tests/test_redis_layer.py",
    ),
}


def enabled(feature: str) -> bool:
    option, _, value = feature.partition("=")
    return ANSWERS[option] == value if value else ANSWERS[option] is True


def prune(root: Path) -> None:
    for feature, paths in FEATURE_PATHS.items():
        if enabled(feature):
            continue
        for relative in paths:
            path = root / relative
            if not path.exists():  # inside a feature already removed
                continue
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


def write_dotenv(root: Path) -> None:
    """.env is .env.example with a fresh secret key and DEBUG on for development.

    A PostgreSQL DATABASE_URL gets a fresh password for its user, the one the
    README's recipe gives the role it creates, and POSTGRES_PASSWORD (compose.yaml)
    the same.
    """
    example = (root / ".env.example").read_text(encoding="utf-8")
    key = secrets.token_urlsafe(50)
    dotenv = re.sub(r"(?m)^DJANGO_SECRET_KEY=.*$", f"DJANGO_SECRET_KEY={key}", example)
    dotenv = re.sub(r"(?m)^DJANGO_DEBUG=.*$", "DJANGO_DEBUG=true", dotenv)
    # token_hex: only characters that need no escaping in a URL, a shell or SQL.
    password = secrets.token_hex(16)
    dotenv = re.sub(r"(?m)^(DATABASE_URL=postgres://[^:@/]+)@", rf"\1:{password}@", dotenv)
    # The same password for the role compose.yaml's postgres container creates.
    dotenv = re.sub(r"(?m)^POSTGRES_PASSWORD=$", f"POSTGRES_PASSWORD={password}", dotenv)
    path = root / ".env"
    path.write_text(dotenv, encoding="utf-8")
    path.chmod(0o600)


def readme_section(readme: str, heading: str, level: str = "##") -> str:
    """The text of the README's `## heading` (or `### heading`), up to its next heading."""
    return readme.partition(f"\n{level} {heading}\n")[2].partition("\n#")[0]


def last_commands(section: str) -> list[str]:
    """The lines of the section's last ```sh block: a section that sets up first ends with them."""
    blocks = re.findall(r"^```sh\n(.*?)^```", section, re.DOTALL | re.MULTILINE)
    return blocks[-1].splitlines() if blocks else []


def next_steps(project: Path) -> str:
    """Where the project is, and the README's commands to run and test it, in a few lines."""
    readme = (project / "README.md").read_text(encoding="utf-8")
    run = readme_section(readme, "Run it")
    lines = [f"Baked {project.name} in {project}. Run it:", f"    cd {project}"]
    lines += [f"    {command}" for command in last_commands(run)]
    if address := re.search(r"Then open <(\S+)>", run):
        lines.append(f"Then open {address[1]}")
    if worker := last_commands(readme_section(readme, "The task worker", level="###")):
        lines.append("And in another terminal, the task worker:")
        lines += [f"    {command}" for command in worker]
    lines.append("Test it:")
    lines += [f"    {command}" for command in last_commands(readme_section(readme, "Test it"))]
    servers = [
        *(["a PostgreSQL server at DATABASE_URL"] if ANSWERS["database"] == "postgresql" else []),
        *(["a Redis server at REDIS_URL"] if USES_REDIS else []),
    ]
    if servers:
        lines.append(f"It needs {' and '.join(servers)}, set in .env: see README.md.")
    return "\n".join(lines)


if __name__ == "__main__":
    project = Path.cwd()
    prune(project)
    write_dotenv(project)
    print(next_steps(project))
