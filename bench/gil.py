"""Where a server's Python time goes, by layer: py-spy's samples of the thread holding the GIL.

`py-spy record --gil` samples only the thread that holds the GIL, so its
samples count the Python work of every thread of a process alike (the event
loop's, each request thread's) and none of the time a thread waits: for the
GIL, on a socket, on the database. A sample goes to the layer of its
innermost frame that `LAYERS` recognises, so a layer's share is the time
spent in its own code and in the unrecognised code it called (the standard
library, Django's utilities). A sample with no Python frame at all is C code
holding the GIL outside any Python call (rare: uvloop's own C time shows under
the Python frame that started the loop). py-spy pauses the process for each
sample (its non-blocking mode fails on about half of them here), so a
profiled server is slower: use the shares, not the sample counts.

Needs py-spy (the bench dependency group installs it) and the right to trace
the server (root, or ptrace allowed).
"""

import collections
import contextlib
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

RATE = 250  # samples per second

# (layer, a pattern on "function (file:line)"), tried in this order on each frame.
LAYERS = [
    # The pool includes the project's checkout check (core/postgresql/).
    ("database driver and pool (psycopg)", r"\(psycopg(_pool)?/|\(core/postgresql/"),
    ("ORM and Django's database layer", r"\(django/db/"),
    # asgiref, the request threads, and the futures that carry a call's result back.
    (
        "sync/async plumbing (asgiref, request threads)",
        r"\((asgiref|concurrent/futures)/|\(asyncio/futures\.py"
        r"|^(SyncThreads|IdleThreads|SharedPool|RequestThread)\.|^(time|watch)_queries ",
    ),
    (
        "the view: ninja schema, pydantic, JSON",
        r"\((ninja|pydantic\w*|json)/|\(bench_urls|JsonResp",
    ),
    ("middleware", r"\((django/middleware|django/contrib|servestatic)/|\(core/middleware|deprecat"),
    (
        "Django's handler: request, URL, response",
        r"\((django/core/handlers|django/urls|django/http)/|\(core/",
    ),
    ("server: HTTP and event loop", r"\((uvicorn|gunicorn|asyncio|httptools|uvloop)/"),
]
NO_FRAME = "C code, no Python frame (the event loop, sockets)"
OTHER = "other"
MAIN = "MainThread"  # uvicorn: the event loop's thread; gunicorn: the worker's only one
OTHERS = "other threads"


@dataclass
class Profile:
    by_layer: collections.Counter = field(default_factory=collections.Counter)
    by_thread: collections.Counter = field(default_factory=collections.Counter)  # MAIN, OTHERS

    def share(self, samples: int) -> float:
        """`samples` as a fraction of all of this profile's samples."""
        return samples / max(1, sum(self.by_layer.values()))

    def add(self, raw: str) -> None:
        """py-spy's raw (collapsed) output, a "thread (id): name;frame;...;frame count" a line."""
        for line in raw.splitlines():
            if not line.startswith("thread ("):
                continue
            stack, count = line.rsplit(" ", 1)
            thread, *frames = stack.split(";")
            self.by_layer[layer(frames)] += int(count)
            self.by_thread[MAIN if thread.endswith(MAIN) else OTHERS] += int(count)


def layer(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, pattern in LAYERS:
            if re.search(pattern, frame):
                return name
    return OTHER if frames else NO_FRAME


@contextlib.contextmanager
def sampling(py_spy: str, pid: int, seconds: float) -> Iterator[Profile]:
    """Sample process `pid` from entry until `seconds` have passed (run the load for
    less inside); the Profile is filled on exit. RuntimeError when py-spy fails."""
    process = subprocess.Popen(
        [py_spy, "record", "--gil", "--threads", f"--rate={RATE}", f"--duration={seconds:g}",
         "--format=raw", "--output=/dev/stdout", f"--pid={pid}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(0.5)  # attached
    profile = Profile()
    try:
        yield profile
    finally:
        output, errors = process.communicate(timeout=seconds + 60)
    if process.returncode:
        raise RuntimeError(f"py-spy failed ({process.returncode}): {errors.strip()}")
    profile.add(output)
