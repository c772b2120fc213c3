"""System checks.

recognise_middleware_subclasses() lets Django's security checks recognise
core.middleware's subclasses. Django's deploy checks find its middleware by
exact dotted path ("django.middleware.security.SecurityMiddleware" in
settings.MIDDLEWARE), so with the async-native subclasses listed they would
report the middleware missing and skip every check that depends on it (HSTS,
SSL redirect, CSRF cookie, X-Frame-Options...). These replacements accept a
subclass, as Django's admin checks already do.

check_django_internals() warns (core.W001) when the installed Django's source
of something this project copies or relies on differs from the source it was
checked against (core/internals.py).

check_admin_and_login_throttle() refuses an ADMIN_URL_PATH that is not a
relative path like "admin/" (an empty one would put the admin at "/"), and a
login throttle (core/login_throttle.py) that could never lock anyone out.

check_request_threads() refuses a negative REQUEST_THREADS (core/asgi.py).
"""

import re
from functools import partial

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.checks.security import base, csrf
from django.utils.module_loading import import_string

from core.internals import changed

# One or more path segments, each ending in "/": "admin/", "ops/admin-7f3a/".
ADMIN_URL_PATH = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9._~-]*/)+")


def _installed(class_path: str) -> bool:
    wanted = import_string(class_path)
    for path in settings.MIDDLEWARE:
        try:
            if issubclass(import_string(path), wanted):
                return True
        except ImportError:
            continue
    return False


def recognise_middleware_subclasses() -> None:
    for module, helper, class_path in [
        (base, "_security_middleware", "django.middleware.security.SecurityMiddleware"),
        (base, "_xframe_middleware", "django.middleware.clickjacking.XFrameOptionsMiddleware"),
        (base, "_csp_middleware", "django.middleware.csp.ContentSecurityPolicyMiddleware"),
        (csrf, "_csrf_middleware", "django.middleware.csrf.CsrfViewMiddleware"),
    ]:
        if not hasattr(module, helper):
            raise RuntimeError(f"{module.__name__}.{helper} is gone: revisit core/checks.py")
        setattr(module, helper, partial(_installed, class_path))


@register(Tags.security, Tags.urls)
def check_admin_and_login_throttle(app_configs=None, **kwargs) -> list[Error]:
    """ADMIN_URL_PATH is a relative path ending in "/"; the throttle's numbers are positive."""
    errors = []
    if not ADMIN_URL_PATH.fullmatch(settings.ADMIN_URL_PATH):
        errors.append(
            Error(
                f"ADMIN_URL_PATH={settings.ADMIN_URL_PATH!r} is not a path like 'admin/'.",
                hint="Path segments of letters, digits, '.', '_', '~' or '-', each ending "
                "in '/', without a leading '/'; not empty, or the admin would take '/'.",
                id="core.E001",
            )
        )
    if settings.LOGIN_FAILURE_LIMIT < 1:
        errors.append(Error("LOGIN_FAILURE_LIMIT must be at least 1.", id="core.E002"))
    if settings.LOGIN_LOCKOUT_SECONDS < 1:
        errors.append(Error("LOGIN_LOCKOUT_SECONDS must be at least 1 second.", id="core.E003"))
    return errors


@register()
def check_django_internals(app_configs=None, **kwargs) -> list[Warning]:
    """core.W001 for each Django internal whose source is not one this project was read against."""
    return [
        Warning(
            f"{path} is not the source this project was checked against (digest {now}).",
            hint=f"Re-read {dependency.reread}; if it still holds, add {now!r} to the "
            f"digests of {path} in core/internals.py.",
            id="core.W001",
        )
        for path, now, dependency in changed()
    ]


@register()
def check_request_threads(app_configs=None, **kwargs) -> list[Error]:
    """core.E004 when REQUEST_THREADS is negative (0 means a thread per request)."""
    if settings.REQUEST_THREADS < 0:
        return [
            Error(
                f"REQUEST_THREADS must be 0 or more, not {settings.REQUEST_THREADS}.",
                hint="0 gives each request a thread of its own; N shares N threads.",
                id="core.E004",
            )
        ]
    return []
