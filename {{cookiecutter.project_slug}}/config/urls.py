from django.conf import settings
from django.contrib import admin
from django.urls import include, path
{%- if cookiecutter.use_async_views %}

from articles.api import api
{%- endif %}

urlpatterns = [
    # ADMIN_URL_PATH, "admin/" unless set; checked by core.checks.
    path(settings.ADMIN_URL_PATH, admin.site.urls),
    path("", include("core.urls")),
{%- if cookiecutter.use_httpx %}
    path("api/", include("upstreams.urls")),
{%- endif %}
{%- if cookiecutter.use_async_views %}
    path("api/", api.urls),
    path("files/", include("files.urls")),
{%- endif %}
{%- if cookiecutter.use_sse %}
    path("events/", include("events.urls")),
{%- endif %}
{%- if cookiecutter.use_tasks %}
    path("tasks/", include("tasks.urls")),
{%- endif %}
]

# Errors raised outside a view's own handling: JSON under /api/ and for clients
# that do not accept HTML, Django's pages otherwise (core/errors.py).
handler400 = "core.errors.bad_request"
handler403 = "core.errors.permission_denied"
handler404 = "core.errors.page_not_found"
handler500 = "core.errors.server_error"
