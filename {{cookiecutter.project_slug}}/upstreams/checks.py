from django.conf import settings
from django.core.checks import Error, register

from upstreams.dashboard import parse_sources


@register()
def dashboard_settings(app_configs, **kwargs):
    """A bad DASHBOARD_* or size-cap setting stops `check` and the server, not a request."""
    errors = []
    try:
        parse_sources(settings.DASHBOARD_SOURCES)
    except ValueError as exc:
        errors.append(
            Error(
                str(exc),
                hint="Example: self=/healthz,status=https://status.example.com/api/summary.json",
                id="upstreams.E001",
            )
        )
    if settings.DASHBOARD_CONCURRENCY < 1:
        errors.append(Error("DASHBOARD_CONCURRENCY must be at least 1.", id="upstreams.E002"))
    if settings.DASHBOARD_TIMEOUT <= 0:
        errors.append(
            Error("DASHBOARD_TIMEOUT must be a positive number of seconds.", id="upstreams.E003")
        )
    if settings.DASHBOARD_CACHE_SECONDS < 0:
        errors.append(
            Error("DASHBOARD_CACHE_SECONDS must be 0 or more seconds.", id="upstreams.E004")
        )
    if settings.HTTPX_MAX_RESPONSE_BYTES < 1:
        errors.append(
            Error("HTTPX_MAX_RESPONSE_BYTES must be at least 1 byte.", id="upstreams.E005")
        )
    return errors
