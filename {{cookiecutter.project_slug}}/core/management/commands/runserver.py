"""`manage.py runserver`: the project's ASGI application, served by uvicorn with auto-reload.

Django's own runserver is a WSGI server. Under it an event stream is
buffered whole, so `GET /events/` never sends a byte, and there are no
websockets, so the rooms answer 404. This command replaces it (`core` comes
before `servestatic` and `django.contrib.staticfiles` in INSTALLED_APPS, whose
runserver commands it shadows) and keeps what people type: an address
(`runserver 8001`, `runserver 0.0.0.0:9000`, `runserver [::1]:8000`,
`--ipv6`), `--noreload` and `--skip-checks`, the system checks and the
warning about unapplied migrations. `--nothreading` is accepted and has no
effect: uvicorn serves every connection from one event loop.

It then serves `config.asgi:application` as the README's serve command does:
uvicorn's HTTP protocol from core/protocol.py, and whatever an app's
AppConfig asks for in `uvicorn_options` (the rooms' websocket protocol).
Static files come from ServeStatic's middleware, as under uvicorn.

Auto-reload is uvicorn's: a supervisor process watches the project's `*.py`
and `*.html` files (templates are cached, and only Django's own reloader
knows how to reset that cache) and, on a change, stops the server process as
SIGTERM would (event streams end, websockets close with 1012: browsers
reconnect) and starts a new one. The checks run once, when the command
starts; a reloaded server that fails to import prints its traceback and
waits for the next change.
"""

import logging
import os
import sys
from datetime import datetime
from typing import Any

import uvicorn
from django.apps import apps
from django.conf import settings
from django.core.management.commands import runserver
from django.db import connections

# What the README's serve command serves; an import string, which uvicorn's
# reloader needs to import the application afresh in each server process.
APPLICATION = "config.asgi:application"
# Seconds requests in flight may take to finish when the server stops or
# reloads, as in the README's serve command; then they are cancelled.
GRACEFUL_SHUTDOWN_SECONDS = 10


def uvicorn_options() -> dict[str, Any]:
    """Keyword arguments for uvicorn.run: core's HTTP protocol, then each app's own.

    An app that serves something Django's handler does not (websockets) says
    how in its AppConfig's `uvicorn_options`; without one, uvicorn serves no
    websockets, as `--ws none` in the README.
    """
    options = {"http": "core.protocol:HttpToolsProtocol", "ws": "none"}
    for app in apps.get_app_configs():
        options.update(getattr(app, "uvicorn_options", {}))
    return options


class Command(runserver.Command):
    help = "Serves the ASGI application (config/asgi.py) with uvicorn, for development."

    def run(self, **options):
        """Check, then serve until interrupted; called by handle() once the address is parsed."""
        if not options["skip_checks"]:
            self.stdout.write("Performing system checks...\n\n")
            self.check(display_num_errors=True)
        self.check_migrations()
        # The server opens its own connections (with reload, in another process):
        # a PostgreSQL pool left open here would hold its connections all along.
        for connection in connections.all(initialized_only=True):
            connection.close()
            if hasattr(connection, "close_pool"):
                connection.close_pool()

        host = "0.0.0.0" if self.addr == "0" else self.addr  # noqa: S104 (asked for)
        reload = options["use_reloader"]
        # Given only with reload: uvicorn warns about them otherwise.
        watched = {"reload_dirs": [str(settings.BASE_DIR)], "reload_includes": ["*.html"]}
        # The watcher logs every change in the project, SQLite's journal included;
        # uvicorn names the ones that reload.
        logging.getLogger("watchfiles").setLevel(logging.WARNING)
        self.print_banner(host, reload)
        uvicorn.run(
            APPLICATION,
            host=host,
            port=int(self.port),
            reload=reload,
            **(watched if reload else {}),
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
            **uvicorn_options(),
        )

    def print_banner(self, host: str, reload: bool) -> None:
        shown = f"[{host}]" if ":" in host else host
        quit_command = "CTRL-BREAK" if sys.platform == "win32" else "CONTROL-C"
        self.stdout.write(
            f"{datetime.now():%B %d, %Y - %X}\n"
            f"Django version {self.get_version()}, using settings {settings.SETTINGS_MODULE!r}\n"
            f"Starting ASGI development server (uvicorn{', auto-reload' if reload else ''}) "
            f"at {self.protocol}://{shown}:{self.port}/\n"
            f"Quit the server with {quit_command}."
        )
        if os.environ.get("DJANGO_RUNSERVER_HIDE_WARNING") != "true":
            self.stdout.write(
                self.style.WARNING(
                    "WARNING: This is a development server. In production, serve with "
                    "uvicorn as the README's serve command does."
                )
            )
