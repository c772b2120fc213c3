"""Error answers as JSON for API clients, Django's HTML pages for browsers.

Django answers a URL that matches nothing (`/api/articles/abc/`), a
SuspiciousOperation, a PermissionDenied, a failed CSRF check and an unhandled
exception with its own HTML pages, whoever asked. config/urls.py points
handler400, handler403, handler404 and handler500 here, and
settings.CSRF_FAILURE_VIEW points to `csrf_failure`: a request under /api/,
or from a client whose Accept header does not take HTML, gets
`{"detail": "..."}` with the same status; anything else gets Django's page.
Operations of the django-ninja API answer their own errors as JSON; these
cover what happens outside them.

A handler never raises. Django's pages run the CSRF check again (they are
decorated with requires_csrf_token), which reads request.POST: when the body
itself was the error, that raises again, and an error escaping handler500
becomes the server's own plain 500 and an ERROR traceback. When Django's page
fails, the answer is the JSON one.
"""

import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import csrf, defaults

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"


def wants_json(request: HttpRequest) -> bool:
    """True for API paths and for clients that do not accept text/html."""
    return request.path_info.startswith(API_PREFIX) or not request.accepts("text/html")


def _error(detail: str, status: int) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=status)


def _answer(request: HttpRequest, detail: str, status: int, page, *args, **kwargs) -> HttpResponse:
    """`{"detail": detail}` with `status` for API clients; else Django's `page`, or the
    JSON answer when the page itself fails."""
    try:
        if not wants_json(request):
            return page(request, *args, **kwargs)
    except Exception as exc:
        logger.warning("Django's %s page failed, answered JSON instead: %r", status, exc)
    return _error(detail, status)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    return _answer(request, "Bad request.", 400, defaults.bad_request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    return _answer(request, "Permission denied.", 403, defaults.permission_denied, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    return _answer(request, "Not Found", 404, defaults.page_not_found, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    return _answer(request, "Internal server error.", 500, defaults.server_error)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """settings.CSRF_FAILURE_VIEW: 403, `reason` says which check failed."""
    detail = f"CSRF verification failed: {reason}" if reason else "CSRF verification failed."
    return _answer(request, detail, 403, csrf.csrf_failure, reason=reason)
