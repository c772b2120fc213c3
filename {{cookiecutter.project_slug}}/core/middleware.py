"""Django's stock middleware, minus the thread hops under ASGI.

Django runs every MiddlewareMixin hook (process_request, process_view,
process_response) through `sync_to_async` when the stack is async: one
thread hop each, queued on the request's single sync thread. Django's stock
stack costs an async view 15 hops per request. Most of these hooks are pure
computation (headers, redirects, cookies, lazy objects), so the classes below
run them inline on the event loop. They subclass Django's own: the same code
decides every header, cookie, redirect and CSRF outcome. Where a hook may do
I/O (saving a session, storing messages in it), it still runs in one hop, and
only when that I/O is needed. Under WSGI they behave exactly like Django's.
"""

import logging
from inspect import iscoroutinefunction

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.db import DataError, IntegrityError, InterfaceError, OperationalError
from django.http import JsonResponse
from django.middleware import clickjacking, common, csp, csrf, security
from django.utils.deprecation import MiddlewareMixin
from django.utils.http import escape_leading_slashes

from core.errors import wants_json

logger = logging.getLogger(__name__)


class AsyncNativeMixin:
    """Run a MiddlewareMixin's hooks on the event loop instead of a worker thread.

    Only for hooks that do no I/O. A subclass whose process_response sometimes
    does I/O says when in `response_needs_io`; it then runs in one hop. One
    whose hooks all do I/O under some settings says so in `hooks_do_io()`: it
    then runs exactly as Django's class, one hop per hook.
    """

    def __init__(self, get_response):
        super().__init__(get_response)
        self.inline = not self.hooks_do_io()
        if self.inline and iscoroutinefunction(self) and hasattr(self, "process_view"):
            # Django wraps a sync process_view in sync_to_async for an async
            # stack; an async one it awaits as it is.
            process_view = self.process_view

            async def aprocess_view(request, view_func, view_args, view_kwargs):
                return process_view(request, view_func, view_args, view_kwargs)

            self.process_view = aprocess_view

    def hooks_do_io(self) -> bool:
        """Whether, with these settings, the hooks may do I/O (read at start-up)."""
        return False

    async def __acall__(self, request):
        if not self.inline:
            return await super().__acall__(request)
        response = None
        if hasattr(self, "process_request"):
            response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            response = await self.aprocess_response(request, response)
        return response

    async def aprocess_response(self, request, response):
        if self.response_needs_io(request):
            return await sync_to_async(self.process_response)(request, response)
        return self.process_response(request, response)

    def response_needs_io(self, request) -> bool:
        return False


class SecurityMiddleware(AsyncNativeMixin, security.SecurityMiddleware):
    pass


class CommonMiddleware(AsyncNativeMixin, common.CommonMiddleware):
    """Django's, but a URL missing its trailing slash redirects without changing the method.

    Django answers `POST /api/articles` with a 301 to `/api/articles/`, which
    clients follow with a GET and no body (and with DEBUG on it raises). A
    method other than GET and HEAD gets 308 here instead, which clients follow
    with the same method and body (RFC 9110 15.4.9). API clients get the
    redirect as JSON, like every other answer under /api/.
    """

    def process_response(self, request, response):
        if response.status_code == 404 and self.should_redirect_with_slash(request):
            location = escape_leading_slashes(request.get_full_path(force_append_slash=True))
            keep_method = request.method not in ("GET", "HEAD")
            # response_redirect_class, as in Django: a subclass may choose a temporary one.
            response = self.response_redirect_class(location, preserve_request=keep_method)
            if wants_json(request):
                moved = "permanently" if response.status_code in (301, 308) else "temporarily"
                response = JsonResponse(
                    {"detail": f"Moved {moved} to {location}."}, status=response.status_code
                )
                response["Location"] = location
        return super().process_response(request, response)


class XFrameOptionsMiddleware(AsyncNativeMixin, clickjacking.XFrameOptionsMiddleware):
    pass


class ContentSecurityPolicyMiddleware(AsyncNativeMixin, csp.ContentSecurityPolicyMiddleware):
    pass


class AuthenticationMiddleware(AsyncNativeMixin, auth.AuthenticationMiddleware):
    """Installs the lazy `request.user` and `request.auser`; loading happens on use."""


class CsrfViewMiddleware(AsyncNativeMixin, csrf.CsrfViewMiddleware):
    """The CSRF secret lives in a cookie: reading and setting it is pure.

    With CSRF_USE_SESSIONS it lives in the session, which every hook may load
    or save: then each hook takes its hop, as in Django.
    """

    def hooks_do_io(self) -> bool:
        return settings.CSRF_USE_SESSIONS


class SessionMiddleware(AsyncNativeMixin, sessions.SessionMiddleware):
    """Creating the (lazy) session store is pure; saving it is I/O, done in one hop."""

    def response_needs_io(self, request) -> bool:
        session = getattr(request, "session", None)
        return session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


class MessageMiddleware(AsyncNativeMixin, messages.MessageMiddleware):
    """Messages that were read or added are stored (maybe in the session): one hop, only then."""

    def response_needs_io(self, request) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is not None and (storage.used or storage.added_new)


class DatabaseErrorMiddleware(MiddlewareMixin):
    """JSON instead of a 500 page for the database errors that are not the code's fault.

    - 503 with Retry-After when the database cannot answer: a server that is
      down or restarting, a lost connection, an exhausted pool, SQLite's
      "database is locked". All OperationalError or InterfaceError, all
      temporary, so the client is told to retry.
    - 400 when the database refused a value the client sent: DataError
      (PostgreSQL: a NUL character in text, an integer out of range, a string
      longer than its column), and SQLite's two forms of an integer beyond 64
      bits (an OverflowError binding it, "datatype mismatch" for LIMIT and
      OFFSET). Validating input catches these first; this is the net for every
      endpoint, present and future, that does not.

    Both are logged as warnings, never as errors. Only the exception hook is
    defined: a request that raises nothing pays nothing, not even a thread hop.
    """

    def process_exception(self, request, exception):
        if isinstance(exception, (OperationalError, InterfaceError)):
            logger.warning(
                "The database is unavailable (%s %s): %s", request.method, request.path, exception
            )
            response = JsonResponse(
                {"detail": "The database is unavailable; retry shortly."}, status=503
            )
            response["Retry-After"] = "5"
            return response
        if refused_value(exception):
            logger.warning(
                "The database refused a value (%s %s): %s", request.method, request.path, exception
            )
            return JsonResponse(
                {"detail": "The request holds a value the database cannot store."}, status=400
            )
        return None


def refused_value(exception: BaseException) -> bool:
    """Whether the database refused a value (the client's, unless the code made it up)."""
    if isinstance(exception, DataError):
        return True
    if isinstance(exception, OverflowError):
        # sqlite3 binding an int beyond 64 bits; Django does not wrap it.
        return "SQLite INTEGER" in str(exception)
    # SQLite's SQLITE_MISMATCH (an IntegrityError): such an int as LIMIT or OFFSET.
    cause = exception.__cause__
    return isinstance(exception, IntegrityError) and (
        getattr(cause, "sqlite_errorname", None) == "SQLITE_MISMATCH"
    )
