import logging

import pytest


def console_handler() -> logging.Handler:
    """The handler settings.LOGGING installs on the root logger."""
    (handler,) = [h for h in logging.getLogger().handlers if h.get_name() == "console"]
    return handler


def record(name: str, level: int) -> logging.LogRecord:
    return logging.getLogger(name).makeRecord(name, level, __file__, 1, "message", (), None)


@pytest.mark.parametrize(
    "name", ["django.security.DisallowedHost", "django.security.TooManyFieldsSent"]
)
def test_a_clients_mistake_reported_by_django_is_a_warning(name):
    logged = record(name, logging.ERROR)
    assert console_handler().filter(logged)
    assert (logged.levelno, logged.levelname) == (logging.WARNING, "WARNING")


@pytest.mark.parametrize("name", ["django.request", "django.db.backends", "core.views"])
def test_other_errors_stay_errors(name):
    logged = record(name, logging.ERROR)
    assert console_handler().filter(logged)
    assert logged.levelno == logging.ERROR


def test_a_disallowed_host_is_logged_at_warning(client, caplog):
    """End to end: Django logs the 400 at ERROR; the console handler, first on the root
    logger, lowers the record before any other handler (caplog's included) sees it."""
    with caplog.at_level(logging.WARNING, logger="django.security"):
        response = client.get("/healthz", headers={"host": "evil.example"})
    assert response.status_code == 400
    (logged,) = [r for r in caplog.records if r.name == "django.security.DisallowedHost"]
    assert (logged.levelno, logged.levelname) == (logging.WARNING, "WARNING")
