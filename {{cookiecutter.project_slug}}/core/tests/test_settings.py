"""Settings are read at import time, so each case runs Django in a fresh process,
with none of this shell's DJANGO_* variables and no .env file."""

import os
import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
PRODUCTION_KEY = "a-production-secret-" + "k3y" * 20


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_DIR,
        env={**clean, "DJANGO_ENV_FILE": "/nonexistent/.env", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_refuses_to_start_without_a_secret_key_when_debug_is_off():
    result = run_manage("check", DJANGO_DEBUG="false")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_production_defaults_pass_the_deploy_checks():
    """DEBUG off and HTTPS enforced unless asked otherwise; `check --deploy` finds nothing."""
    result = run_manage(
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings; from django.core.management import call_command; "
        "call_command('check', deploy=True, fail_level='WARNING'); "
        "print(settings.DEBUG, settings.SECURE_SSL_REDIRECT)",
        DJANGO_SECRET_KEY=PRODUCTION_KEY,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split()[-2:] == ["False", "True"]
