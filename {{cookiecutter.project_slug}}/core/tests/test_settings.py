"""Settings are read at import time, so each case reads config/settings.py afresh,
as a new process would, with none of this shell's DJANGO_* variables and no .env file."""

import os
import runpy
from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import override_settings

from core.testing import stock_middleware

SETTINGS_FILE = Path(__file__).resolve().parents[2] / "config" / "settings.py"
PRODUCTION_KEY = "a-production-secret-" + "k3y" * 20
# Settings a test process cannot swap: its test database, and the installed apps it was built with.
FIXED = {"DATABASES", "INSTALLED_APPS"}


def read_settings(**env: str) -> dict:
    """What config/settings.py defines under `env` and the shell's non-DJANGO_* variables."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    environment = {**clean, "DJANGO_ENV_FILE": "/nonexistent/.env", **env}
    with mock.patch.dict(os.environ, environment, clear=True):
        defined = runpy.run_path(str(SETTINGS_FILE))
    return {name: value for name, value in defined.items() if name.isupper()}


def test_the_stock_switch_puts_django_s_own_class_under_each_project_class():
    """DJANGO_STOCK_CLASSES swaps each core.middleware class for the Django class it subclasses."""
    project = read_settings(DJANGO_DEBUG="true")["MIDDLEWARE"]
    stock = read_settings(DJANGO_DEBUG="true", DJANGO_STOCK_CLASSES="true")["MIDDLEWARE"]
    assert any(path.startswith("core.middleware.") for path in project)
    with override_settings(MIDDLEWARE=project):
        assert stock == stock_middleware()


def test_refuses_to_start_without_a_secret_key_when_debug_is_off():
    with pytest.raises(ImproperlyConfigured, match="DJANGO_SECRET_KEY is not set"):
        read_settings(DJANGO_DEBUG="false")


def test_production_defaults_pass_the_deploy_checks():
    """DEBUG off and HTTPS enforced unless asked otherwise; `check --deploy` finds nothing."""
    production = read_settings(DJANGO_SECRET_KEY=PRODUCTION_KEY)
    assert (production["DEBUG"], production["SECURE_SSL_REDIRECT"]) == (False, True)
    assert production["INSTALLED_APPS"] == settings.INSTALLED_APPS
    with override_settings(**{k: v for k, v in production.items() if k not in FIXED}):
        call_command("check", deploy=True, fail_level="WARNING")
