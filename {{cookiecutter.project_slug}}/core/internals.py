"""The Django internals this project's handler, middleware and checks are written against.

core/asgi.py re-implements Django's ASGIHandler (its __call__, handle and
send_response), reads Signal._live_receivers and sets a connection's
close_at; core/middleware.py runs the hooks of Django's stock middleware on
the event loop because, in the source it was read against, they do no I/O,
and replaces MiddlewareMixin's __acall__; core/auth.py sets the attribute
Django's `request.auser` caches its user in; core/checks.py replaces private
helpers of Django's security checks. Each is right for the Django source it
was checked against, and nothing else would say when an upgrade changes that
source.

READ_AGAINST maps each object to what to re-read in this project when it
changes, and to the SHA-256 digests of the `inspect.getsource()` of the
versions it was checked against. The system check core.W001
(core/checks.py) compares them at start-up, and the test suite fails on it
(core/tests/test_internals.py). After re-reading the project's code against
the new source, and fixing it if needed, add the digest the warning gives.
"""

import ast
import functools
import hashlib
import importlib
import inspect
from dataclasses import dataclass


@dataclass(frozen=True)
class Dependency:
    reread: str  # what in this project to re-read against the new source
    digests: tuple[str, ...]  # of each version it was checked against (`digest()`)


ASGI_HANDLER = "core/asgi.py, which re-implements ASGIHandler's __call__, handle and send_response"
HOUSEKEEPING = "core/asgi.py: only_housekeeping() and on_the_loop(), which stand in for this call"
STOCK_MIDDLEWARE = "core/middleware.py: this class's hooks must still do no I/O on the event loop"
SECURITY_CHECK = "core/checks.py: recognise_middleware_subclasses() replaces this helper"

# Digests of Django 6.1.3's source.
READ_AGAINST: dict[str, Dependency] = {
    "django.core.handlers.asgi.ASGIHandler": Dependency(ASGI_HANDLER, ("bc24b686083f4faa",)),
    "django.core.handlers.asgi.get_script_prefix": Dependency(
        "core/limits.py and core/asgi.py, which call it", ("3a9668e2d5b5453b",)
    ),
    "django.dispatch.dispatcher.Signal._live_receivers": Dependency(
        "core/asgi.py: only_housekeeping() reads it: (sync receivers, async receivers)",
        ("e9561ad0d2e48e26",),
    ),
    "django.dispatch.dispatcher.Signal.send": Dependency(HOUSEKEEPING, ("39c93301da82b43f",)),
    "django.dispatch.dispatcher.Signal.asend": Dependency(HOUSEKEEPING, ("bba87b3cf583d32a",)),
    "django.utils.deprecation.MiddlewareMixin": Dependency(
        "core/middleware.py: AsyncNativeMixin replaces its __acall__ and wraps process_view",
        ("80a8cd447a3c5322",),
    ),
    "django.middleware.security.SecurityMiddleware": Dependency(
        STOCK_MIDDLEWARE, ("b1d59d5f92abdf2e",)
    ),
    "django.middleware.common.CommonMiddleware": Dependency(
        STOCK_MIDDLEWARE + "; CommonMiddleware.process_response overrides its own",
        ("393e33e720caa5af",),
    ),
    "django.middleware.clickjacking.XFrameOptionsMiddleware": Dependency(
        STOCK_MIDDLEWARE, ("d54b71583edea1ca",)
    ),
    "django.middleware.csp.ContentSecurityPolicyMiddleware": Dependency(
        STOCK_MIDDLEWARE, ("51a5cf20dca730a7",)
    ),
    "django.contrib.auth.middleware.AuthenticationMiddleware": Dependency(
        STOCK_MIDDLEWARE, ("1a89e934c4c59dd1",)
    ),
    "django.contrib.auth.middleware.auser": Dependency(
        "core/auth.py: use_user() sets request._acached_user, where this caches the user",
        ("ac9a91f13b89bb86",),
    ),
    "django.middleware.csrf.CsrfViewMiddleware": Dependency(
        STOCK_MIDDLEWARE, ("895793c8e7b6a1b0",)
    ),
    "django.contrib.sessions.middleware.SessionMiddleware": Dependency(
        STOCK_MIDDLEWARE + " but saving the session (response_needs_io)", ("b212eae3bcec545d",)
    ),
    "django.contrib.messages.middleware.MessageMiddleware": Dependency(
        STOCK_MIDDLEWARE + " but storing messages (response_needs_io)", ("56fd12d7be07e57f",)
    ),
    "django.db.backends.base.base.BaseDatabaseWrapper.connect": Dependency(
        "core/asgi.py: watch_queries() sets close_at, which this sets from CONN_MAX_AGE "
        "before it sends connection_created",
        ("d2b7be18061c36b7",),
    ),
    "django.db.backends.base.base.BaseDatabaseWrapper.close_if_unusable_or_obsolete": Dependency(
        "core/asgi.py: watch_queries() keeps a connection open with close_at None, read here",
        ("b9472cdc66703666",),
    ),
    "django.core.checks.security.base._security_middleware": Dependency(
        SECURITY_CHECK, ("aff6e5b28e724b40",)
    ),
    "django.core.checks.security.base._xframe_middleware": Dependency(
        SECURITY_CHECK, ("fcedbdc11d9c7d25",)
    ),
    "django.core.checks.security.base._csp_middleware": Dependency(
        SECURITY_CHECK, ("0769e147b9a42bb7",)
    ),
    "django.core.checks.security.csrf._csrf_middleware": Dependency(
        SECURITY_CHECK, ("096d01f2e4561f85",)
    ),
}


def source(dotted_path: str) -> str:
    """The source of a module-level class or function, or of a class's method, by dotted path.

    Read from the module's file, not from the object: core/checks.py replaces
    some of these functions at start-up, and the original is what was read.
    Raises LookupError when the path names nothing.
    """
    parts = dotted_path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        module_path, rest = ".".join(parts[:split]), parts[split:]
        try:
            module = importlib.import_module(module_path)
        except ImportError:
            continue
        break
    else:
        raise LookupError(f"{dotted_path}: no module")
    text = inspect.getsource(module)
    scope = ast.parse(text).body
    for name in rest:
        found = [
            node
            for node in scope
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name == name
        ]
        if not found:
            raise LookupError(f"{dotted_path}: {module_path} defines no {'.'.join(rest)}")
        node = found[-1]
        scope = node.body
    return ast.get_source_segment(text, node)


@functools.cache
def digest(dotted_path: str) -> str:
    """The first 16 hex digits of the SHA-256 of the object's source (`source()`).

    Cached: the installed source does not change while the process runs, and
    parsing it costs 40 ms each time the system checks run (a test of a check,
    a management command).
    """
    return hashlib.sha256(source(dotted_path).encode()).hexdigest()[:16]


def changed() -> list[tuple[str, str, Dependency]]:
    """[(dotted path, its digest now, what it was checked against)] for each that differs.

    The digest is "gone" for an object the installed Django no longer defines.
    """
    found = []
    for path, dependency in READ_AGAINST.items():
        try:
            now = digest(path)
        except LookupError:
            now = "gone"
        if now not in dependency.digests:
            found.append((path, now, dependency))
    return found
