"""The request-body cap, enforced at the ASGI edge before Django reads a byte of the body.

Django's ASGI handler reads and spools every body (into memory, then a
temporary file) before any middleware, authentication or view runs, so a
check in a view comes after the cost is paid. The project's handler
(core/asgi.py) reads bodies through `read_body` below instead: a declared
`Content-Length` over the cap is refused before anything is read, and a body
without one (chunked) is cut off as soon as it passes the cap, so nothing
beyond the cap is ever read or spooled. The answer is 413 JSON.

The cap is `settings.REQUEST_MAX_BODY_BYTES`, unless the view the path
resolves to has its own (`max_body`), or its URL namespace does
(`namespace_max_body`: for URLs a project does not write itself, such as a
django-ninja API's). The path is resolved only when a body is coming: a GET
costs nothing.
"""

import tempfile
from collections.abc import Callable

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import get_script_prefix
from django.http import JsonResponse
from django.urls import Resolver404, resolve

# A cap in bytes, or a function returning one (called per request, so that it
# can follow a setting).
Limit = int | Callable[[], int]


def max_body(limit: Limit):
    """Give a view its own body cap instead of settings.REQUEST_MAX_BODY_BYTES.

        @max_body(lambda: settings.UPLOAD_MAX_BYTES)
        async def upload(request): ...

    The decorator only marks the view: the ASGI handler finds the mark by
    resolving the path. It may sit anywhere in a stack of decorators that use
    functools.wraps, which copies the mark.
    """

    def mark(view):
        view.max_body_bytes = limit
        return view

    return mark


# URL namespace -> its cap, for the views of that namespace without their own.
namespace_limits: dict[str, Limit] = {}


def namespace_max_body(namespace: str, limit: Limit) -> None:
    """Give every view under URL namespace `namespace` (an included URLconf, a
    django-ninja API's `urls_namespace`) a body cap, unless the view has its own."""
    namespace_limits[namespace] = limit


class BodyTooLarge(Exception):
    """The request body is over `limit` bytes; `response` is the 413 to send."""

    def __init__(self, limit: int):
        super().__init__(f"request body over {limit} bytes")
        self.limit = limit

    @property
    def response(self) -> JsonResponse:
        response = JsonResponse({"detail": f"Request body over {self.limit} bytes."}, status=413)
        # The rest of the body is still on the wire: close rather than read it.
        response["Connection"] = "close"
        response["X-Content-Type-Options"] = "nosniff"
        return response


def body_limit(scope) -> int:
    """The body cap in bytes for the request in `scope`: its view's, else its URL
    namespace's, else settings.REQUEST_MAX_BODY_BYTES (also for a path that resolves to
    nothing)."""
    path = scope["path"]
    script_name = get_script_prefix(scope).rstrip("/")
    if script_name and (path == script_name or path.startswith(script_name + "/")):
        path = path[len(script_name) :]
    try:
        match = resolve(path)
    except Resolver404:
        return settings.REQUEST_MAX_BODY_BYTES
    limit = getattr(match.func, "max_body_bytes", None)
    if limit is None:
        # The innermost namespace first: "api" before "outer" in "outer:api".
        registered = (name for name in reversed(match.namespaces) if name in namespace_limits)
        limit = namespace_limits.get(next(registered, None))
    if limit is None:
        return settings.REQUEST_MAX_BODY_BYTES
    return limit() if callable(limit) else limit


def declared_length(scope) -> int | None:
    """The request's Content-Length, or None when it has none (or one the server should
    have refused: the body's size is then counted as it arrives)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return None
            return length if length >= 0 else None
    return None


async def read_body(scope, receive) -> tempfile.SpooledTemporaryFile:
    """Read the request body into a spooled file, as Django does, but never past its cap.

    Raises BodyTooLarge as soon as the declared or received size passes the
    cap, before reading or storing more, and RequestAborted if the client
    disconnects. The file rolls over to disk past FILE_UPLOAD_MAX_MEMORY_SIZE,
    which only a cap above it lets happen.
    """
    limit = None
    declared = declared_length(scope)
    if declared:
        limit = body_limit(scope)
        if declared > limit:
            raise BodyTooLarge(limit)
    # Returned open: the handler closes it when the request ends.
    body_file = tempfile.SpooledTemporaryFile(  # noqa: SIM115
        max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b"
    )
    try:
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RequestAborted
            if chunk := message.get("body", b""):
                size += len(chunk)
                if limit is None:
                    limit = body_limit(scope)
                if size > limit:
                    raise BodyTooLarge(limit)
                if getattr(body_file, "_rolled", False):
                    # On disk: write from a thread, as Django does.
                    await sync_to_async(body_file.write, thread_sensitive=False)(chunk)
                else:
                    body_file.write(chunk)
            if not message.get("more_body", False):
                break
    except BaseException:
        body_file.close()
        raise
    body_file.seek(0)
    return body_file
