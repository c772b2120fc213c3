"""Failed password logins lock out their username and client address (core/login_throttle.py)."""

import importlib.util
import logging
import sys
import uuid

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import aauthenticate, authenticate, get_user_model
from django.core.checks import run_checks
from django.test import override_settings

from core import login_throttle
from core.models import ApiToken

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct horse battery staple"
LIMIT = 3
WINDOW = 60
LOGIN = "/admin/login/"


@pytest.fixture(autouse=True)
def throttle(settings):
    settings.LOGIN_FAILURE_LIMIT = LIMIT
    settings.LOGIN_LOCKOUT_SECONDS = WINDOW


class Clock:
    """Stands in for core.login_throttle.clock: time moves only when a test says so."""

    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(login_throttle, "clock", fake)
    return fake


@pytest.fixture
def staff():
    """A staff user with a name no other test (or earlier run, with a shared Redis) used."""
    return get_user_model().objects.create_user(
        username=f"admin-{uuid.uuid4().hex[:12]}", password=PASSWORD, is_staff=True
    )


def log_in(client, username: str, password: str, address: str = "127.0.0.1"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def logged_in(response) -> bool:
    return response.status_code == 302


def lockouts(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "core.login_throttle"]


def test_the_right_password_is_refused_until_the_lockout_ends(client, staff, clock, caplog):
    with caplog.at_level(logging.WARNING, logger="core.login_throttle"):
        for _ in range(LIMIT):
            assert not logged_in(log_in(client, staff.username, "wrong"))
        refused = log_in(client, staff.username, PASSWORD)
        assert not logged_in(refused)
        assert "Too many failed logins: try again in 1 minutes." in refused.content.decode()
        # More attempts while locked out neither extend the lockout nor log again.
        for _ in range(LIMIT):
            assert not logged_in(log_in(client, staff.username, "wrong"))
        clock.now += WINDOW - 1
        assert not logged_in(log_in(client, staff.username, PASSWORD))
        clock.now += 1
        assert logged_in(log_in(client, staff.username, PASSWORD))
    (record,) = lockouts(caplog)
    assert record.levelno == logging.WARNING
    assert staff.username in record.getMessage()
    assert "127.0.0.1" in record.getMessage()
    assert PASSWORD not in record.getMessage()


def test_fewer_failures_than_the_limit_lock_nobody_out(client, staff, clock):
    for _ in range(LIMIT - 1):
        log_in(client, staff.username, "wrong")
    assert logged_in(log_in(client, staff.username, PASSWORD))


def test_a_lockout_is_per_client_address(client, staff, clock):
    for _ in range(LIMIT):
        log_in(client, staff.username, "wrong", address="203.0.113.7")
    assert not logged_in(log_in(client, staff.username, PASSWORD, address="203.0.113.7"))
    assert logged_in(log_in(client, staff.username, PASSWORD, address="198.51.100.2"))


def test_a_lockout_holds_for_the_username_in_any_case(client, staff, clock):
    for _ in range(LIMIT):
        log_in(client, staff.username.upper(), "wrong")
    assert not logged_in(log_in(client, staff.username, PASSWORD))


async def test_the_async_path_is_refused_too(staff, clock):
    for _ in range(LIMIT):
        assert await aauthenticate(None, username=staff.username, password="wrong") is None
    assert await aauthenticate(None, username=staff.username, password=PASSWORD) is None
    clock.now += WINDOW
    assert await aauthenticate(None, username=staff.username, password=PASSWORD) == staff


def test_wrong_bearer_tokens_are_not_counted_and_never_locked_out(staff, clock, caplog):
    _, raw = ApiToken.issue(staff)
    with caplog.at_level(logging.WARNING, logger="core.login_throttle"):
        for _ in range(LIMIT * 2):
            assert authenticate(None, bearer_token="x" * 43) is None
    assert authenticate(None, bearer_token=raw) == staff
    assert not lockouts(caplog)


@pytest.mark.parametrize("path", ["", "/admin/", "admin", "admin//", "../admin/", "adm in/"])
def test_a_malformed_admin_path_fails_the_checks(settings, path):
    settings.ADMIN_URL_PATH = path
    assert "core.E001" in {error.id for error in run_checks()}


@pytest.mark.parametrize(
    ("name", "error"),
    [("LOGIN_FAILURE_LIMIT", "core.E002"), ("LOGIN_LOCKOUT_SECONDS", "core.E003")],
)
def test_a_throttle_that_never_locks_fails_the_checks(settings, name, error):
    setattr(settings, name, 0)
    assert error in {found.id for found in run_checks()}


def test_the_admin_is_served_at_admin_url_path(client, settings):
    settings.ADMIN_URL_PATH = "ops/panel-7f3a/"
    assert not {error.id for error in run_checks()} & {"core.E001"}
    # config/urls.py reads the setting when imported: load a fresh copy of it.
    spec = importlib.util.spec_from_file_location(
        "admin_path_urls", django_settings.BASE_DIR / "config" / "urls.py"
    )
    urls = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = urls
    try:
        spec.loader.exec_module(urls)
        with override_settings(ROOT_URLCONF=spec.name):
            assert client.get("/ops/panel-7f3a/login/").status_code == 200
            assert client.get("/admin/login/").status_code == 404
    finally:
        del sys.modules[spec.name]
