"""Request id and timing for every request: a hybrid middleware, no thread hop.

- `X-Request-ID`: a client's id is kept when it is short and safe (letters,
  digits, `-`, `_`, at most 64 characters), otherwise a new UUID4 is used. The
  response echoes it, and log records made while the request runs carry it
  (request_context.log.RequestIdFilter reads the context variable).
- `Server-Timing: app;dur=<ms>` on every response, errors included (Django
  turns an exception into a 500 response below this middleware). For a
  streaming response it is the time until the first byte: the headers.
"""

import re
import time
import uuid
from contextvars import ContextVar
from inspect import iscoroutinefunction, markcoroutinefunction

request_id: ContextVar[str] = ContextVar("request_id", default="-")

SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class RequestContextMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            # Django awaits us directly instead of wrapping us in a thread hop.
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.async_mode:
            return self.__acall__(request)
        started = time.perf_counter()
        token = request_id.set(self.identify(request))
        try:
            return self.finish(request, self.get_response(request), started)
        finally:
            request_id.reset(token)  # a WSGI thread serves one request after another

    async def __acall__(self, request):
        started = time.perf_counter()
        # Not reset: under a server each ASGI request has its own task and
        # context, so the id stays set while Django logs the response and
        # streams the body, and goes away with the task. (A caller that runs
        # requests in its own context, like the test client, keeps the last id.)
        request_id.set(self.identify(request))
        return self.finish(request, await self.get_response(request), started)

    @staticmethod
    def identify(request) -> str:
        incoming = request.headers.get("X-Request-ID", "")
        request.id = incoming if SAFE_REQUEST_ID.fullmatch(incoming) else str(uuid.uuid4())
        return request.id

    @staticmethod
    def finish(request, response, started: float):
        response["X-Request-ID"] = request.id
        response["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response
