"""Error answers as JSON for API clients, Django's HTML pages for browsers.

Django answers a URL that matches nothing (`/api/articles/abc/`), a
SuspiciousOperation, a PermissionDenied and an unhandled exception with its
own HTML pages, whoever asked. config/urls.py points handler400, handler403,
handler404 and handler500 here: a request under /api/, or from a client whose
Accept header does not take HTML, gets `{"detail": "..."}` with the same
status; anything else gets Django's page. Operations of the django-ninja API
answer their own errors as JSON; these cover what happens outside them.
"""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

API_PREFIX = "/api/"


def wants_json(request: HttpRequest) -> bool:
    """True for API paths and for clients that do not accept text/html."""
    return request.path_info.startswith(API_PREFIX) or not request.accepts("text/html")


def _error(detail: str, status: int) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=status)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if wants_json(request):
        return _error("Bad request.", 400)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if wants_json(request):
        return _error("Permission denied.", 403)
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if wants_json(request):
        return _error("Not Found", 404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if wants_json(request):
        return _error("Internal server error.", 500)
    return defaults.server_error(request)
