"""The project's ASGI handler, with one thread for every open event stream.

The project's handler (core/asgi.py) serves a request in its own asgiref
ThreadSensitiveContext, whose thread starts with the request's first sync
call and lives until the response ends. For an event stream that is as long
as the client stays: before this, bench/sse.py saw 10,000 idle streams hold
10,000 threads, and the worker stall for seconds while they were torn down.
Streams do almost no sync work, so here they all share one thread.

Streams also end as soon as the server is told to stop (events/shutdown.py).
"""

from concurrent.futures import Executor, ThreadPoolExecutor

from django.urls import reverse

from core import asgi
from events.shutdown import end_streams_when_stopping


class ASGIHandler(asgi.ASGIHandler):
    def __init__(self):
        super().__init__()
        self.stream_path = reverse("events:stream")
        self.stream_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sse")

    def request_executor(self, scope) -> Executor:
        if scope["path"] != self.stream_path:
            return super().request_executor(scope)
        # Here rather than at import: the server installs its signal handlers first.
        end_streams_when_stopping()
        return self.stream_executor
