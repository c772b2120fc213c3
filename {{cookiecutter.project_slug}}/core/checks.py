"""Let Django's security checks recognise core.middleware's subclasses.

Django's deploy checks find its middleware by exact dotted path
("django.middleware.security.SecurityMiddleware" in settings.MIDDLEWARE), so
with the async-native subclasses listed they would report the middleware
missing and skip every check that depends on it (HSTS, SSL redirect, CSRF
cookie, X-Frame-Options...). These replacements accept a subclass, as
Django's admin checks already do.
"""

from functools import partial

from django.conf import settings
from django.core.checks.security import base, csrf
from django.utils.module_loading import import_string


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
