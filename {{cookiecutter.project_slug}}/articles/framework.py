"""What every django-ninja operation of this project shares, so no endpoint repeats it.

- ProjectAPI, a NinjaAPI that
  - decodes bodies with core.client_json (ClientJSONParser): unusable JSON is a
    400 naming the problem, never a 500;
  - lets an exception no handler claims reach Django's middleware, with DEBUG
    on or off (django-ninja's own catch-all answers a plain-text traceback 500
    under DEBUG, so core.middleware's 503 for a database outage never ran);
  - documents in /api/openapi.json every error each operation can answer.
- ApiRouter, a Router whose GET operations also answer HEAD, and whose 405 is
  JSON with an Allow header; the OpenAPI document and the docs page answer
  only GET and HEAD too (django-ninja serves them to any method, TRACE and
  OPTIONS included).
- The OpenAPI document and the docs page are served when settings.API_DOCS is
  on (by default, with DEBUG) and otherwise only to signed-in staff: a 404 for
  everyone else, so production does not publish its API's map.
- Id, the type of a database id in a path or query: a positive signed 64-bit
  integer, so 99999999999999999999 is a 422 rather than a database error.
"""

from functools import wraps
from typing import Annotated, Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from ninja import Field, NinjaAPI, Router
from ninja.errors import HttpError
from ninja.operation import PathView
from ninja.parser import Parser

from core.client_json import MAX_INTEGER, ClientJSONError, loads

Id = Annotated[int, Field(ge=1, le=MAX_INTEGER)]

PARSE_ERROR = "Cannot parse request body"


class ClientJSONParser(Parser):
    """Request bodies through core.client_json; query and form values without NUL.

    PostgreSQL refuses NUL in text, and a later filter on a string parameter
    would turn it into a database error: it is refused here, for every field.
    """

    def parse_body(self, request: HttpRequest) -> Any:
        # ClientJSONError is a ValueError; django-ninja answers it with 400
        # "Cannot parse request body", and ProjectAPI adds its message.
        return loads(request.body)

    def parse_querydict(self, data, list_fields, request):
        for key, values in data.lists():
            if any(isinstance(text, str) and "\x00" in text for text in (key, *values)):
                raise HttpError(400, f"The parameter {key!r} contains a NUL character.")
        return super().parse_querydict(data, list_fields, request)


class ApiPathView(PathView):
    """django-ninja's dispatcher for one path, with HEAD served by GET and a JSON 405."""

    @classmethod
    def adopt(cls, view: PathView) -> "ApiPathView":
        adopted = cls()
        adopted.is_async = view.is_async
        adopted.url_name = view.url_name
        adopted.operations = view.operations
        return adopted

    def clone(self) -> "ApiPathView":
        # django-ninja clones every path view when it binds a router to an API.
        return self.adopt(super().clone())

    def _find_operation(self, request: HttpRequest):
        operation = super()._find_operation(request)
        if operation is None and request.method == "HEAD":
            # RFC 9110 9.3.2: HEAD is GET without the body; the server drops the body.
            operation = next((op for op in self.operations if "GET" in op.methods), None)
        return operation

    def _not_allowed(self) -> HttpResponse:
        allowed = {method for operation in self.operations for method in operation.methods}
        if "GET" in allowed:
            allowed.add("HEAD")
        return json_405(allowed)


def json_405(allowed: set[str]) -> JsonResponse:
    response = JsonResponse({"detail": "Method not allowed."}, status=405)
    response["Allow"] = ", ".join(sorted(allowed))
    return response


def safe_methods_only(view):
    """Answer GET and HEAD with `view`, any other method with the API's JSON 405.

    Exempt from CSRF: nothing else reaches the view, so there is nothing to
    forge, and a POST gets the 405 rather than a CSRF 403.
    """

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method not in ("GET", "HEAD"):
            return json_405({"GET", "HEAD"})
        return view(request, *args, **kwargs)

    wrapper.csrf_exempt = True
    return wrapper


def docs_for_allowed_readers(view):
    """Serve `view` when settings.API_DOCS is on, or to an active staff user; else 404.

    The 404 comes first, for every method, so nothing tells the public that
    the docs exist. The user is looked up (the session: one query) only when
    the docs are off and the request carries a session cookie.
    """

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not settings.API_DOCS:
            user = request.user
            if not (user.is_active and user.is_staff):
                raise Http404("No API docs here.")
        return view(request, *args, **kwargs)

    wrapper.csrf_exempt = getattr(view, "csrf_exempt", False)
    return wrapper


class ApiRouter(Router):
    """A Router whose paths are ApiPathViews: HEAD wherever GET, 405 as JSON."""

    def add_api_operation(self, path: str, methods: list[str], view_func, **kwargs) -> None:
        super().add_api_operation(path, methods, view_func, **kwargs)
        for key, view in self.path_operations.items():
            if not isinstance(view, ApiPathView):
                self.path_operations[key] = ApiPathView.adopt(view)


ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
VALIDATION_ERROR_SCHEMA = {
    "title": "ValidationError",
    "type": "object",
    "properties": {
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                },
                "required": ["type", "loc", "msg"],
            },
        }
    },
    "required": ["detail"],
}


def _error(description: str, schema: str = "Error") -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def error_responses(operation: dict) -> dict[int, dict]:
    """The error answers an OpenAPI operation can get, from what it declares.

    A body can be unparsable (400), too large (413) or invalid (422); query
    and path parameters can be invalid (422, or 400 for a NUL character); a
    path naming no resource is a 404; a token can be missing or wrong (401);
    any operation can find the database down (503, with Retry-After).
    """
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    found = {}
    if has_body or parameters:
        found[400] = _error("The body is not usable JSON, or a parameter holds a NUL character.")
    if "security" in operation:
        found[401] = _error("No bearer token, or an unknown one (see WWW-Authenticate).")
    if any(parameter["in"] == "path" for parameter in parameters):
        found[404] = _error("No such resource, or a path parameter of the wrong type.")
    if has_body:
        found[413] = _error("The body is larger than API_MAX_BODY_BYTES.")
    if has_body or parameters:
        found[422] = _error("A parameter or a body field is invalid.", "ValidationError")
    found[503] = {
        **_error("The database is unavailable; retry after Retry-After seconds."),
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    }
    return found


class ProjectAPI(NinjaAPI):
    """A NinjaAPI with the project's parser, routers, error handling and error contract."""

    def __init__(self, **kwargs):
        kwargs.setdefault("parser", ClientJSONParser())
        kwargs.setdefault("default_router", ApiRouter())
        decorate = kwargs.get("docs_decorator")
        kwargs["docs_decorator"] = lambda view: docs_for_allowed_readers(
            safe_methods_only(decorate(view) if decorate else view)
        )
        super().__init__(**kwargs)

    def set_default_exception_handlers(self) -> None:
        super().set_default_exception_handlers()
        # No catch-all: an unexpected exception propagates to Django, whose
        # middleware (the 503 for a database outage) and handler500 answer it.
        del self._exception_handlers[Exception]
        self.add_exception_handler(HttpError, self.http_error)

    def http_error(self, request: HttpRequest, exc: HttpError) -> HttpResponse:
        detail = str(exc)
        if isinstance(exc.__cause__, ClientJSONError):
            detail = f"{PARSE_ERROR}: {exc.__cause__}"
        return self.create_response(request, {"detail": detail}, status=exc.status_code)

    def get_openapi_schema(self, **kwargs):
        schema = super().get_openapi_schema(**kwargs)
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault("Error", ERROR_SCHEMA)
        schemas.setdefault("ValidationError", VALIDATION_ERROR_SCHEMA)
        for path in schema["paths"].values():
            for operation in path.values():
                for status, answer in error_responses(operation).items():
                    operation["responses"].setdefault(status, answer)
        return schema
