"""Django's ASGI handler, minus one thread per open event stream.

Django runs each request in its own asgiref ThreadSensitiveContext. The first
sync call of a request (the request_started receiver that closes stale
database connections, at least) starts a thread for that context, and the
thread lives until the response ends. For an event stream that is as long as
the client stays: bench/sse.py saw 10,000 idle streams hold 10,000 threads,
and the worker stall for seconds while they were torn down. Streams do almost
no sync work, so here they all share one thread.

Streams also end as soon as the server is told to stop (events/shutdown.py).
"""

from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext
from django.core.handlers import asgi
from django.urls import reverse

from events.shutdown import end_streams_when_stopping


class ASGIHandler(asgi.ASGIHandler):
    def __init__(self):
        super().__init__()
        self.stream_path = reverse("events:stream")
        self.stream_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sse")

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] == self.stream_path:
            # Here rather than at import: the server installs its handlers first.
            end_streams_when_stopping()
            async with ThreadSensitiveContext(executor=self.stream_executor):
                await self.handle(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)
