"""ASGI entry point: `uvicorn config.asgi:application`."""

import os
{%- if cookiecutter.use_sse %}

import django

from events.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)

# Django's own handler, except that open event streams share one thread.
application = ASGIHandler()
{%- else %}

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_asgi_application()
{%- endif %}
