{% if cookiecutter | uses_redis -%}
import os

{% endif -%}
import pytest
{%- if cookiecutter | uses_redis %}
import redis
{%- endif %}
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from pytest_asyncio import is_async_test

from core.static import ServeStaticMiddleware


@pytest.fixture(autouse=True)
def plain_http(settings):
    """Test clients speak plain HTTP; core/tests/test_settings.py checks the HTTPS settings."""
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Hash test passwords with MD5: PBKDF2's million rounds cost 0.3 s a password."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """SQLite tests use a database file, as the project does, not an in-memory database.

    Django ignores close() on a connection to an in-memory database (closing
    the last one would drop it), so every thread's connection would be left
    to the garbage collector, and no test could tell whether the project
    closes its connections.
    """
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        name = tmp_path_factory.mktemp("db") / "test.sqlite3"
        database.setdefault("TEST", {})["NAME"] = str(name)


@pytest.fixture(autouse=True)
def static_files_from_apps(settings, monkeypatch):
    """Tests run without `collectstatic`: serve static files from the apps, unhashed.

    Each test client builds its own handler, and ServeStatic walks and stats
    every app's static files each time one is built (50 ms, more than most
    tests take): here the walk is done once for each configuration.
    """
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.SERVESTATIC_USE_FINDERS = True
    monkeypatch.setattr(ServeStaticMiddleware, "add_files_from_finders", add_files_once)


# The files and directories ServeStatic found in the apps, by the settings it read.
_static_files: dict[str, tuple[dict, list]] = {}
STATIC_SETTINGS = {"DEBUG", "FORCE_SCRIPT_NAME", "INSTALLED_APPS", "STORAGES"}


def add_files_once(middleware: ServeStaticMiddleware) -> None:
    """ServeStaticMiddleware.add_files_from_finders, walking the apps once per configuration."""
    key = repr(
        [
            (name, getattr(settings, name))
            for name in sorted(dir(settings))
            if name in STATIC_SETTINGS or name.startswith(("SERVESTATIC_", "STATIC"))
        ]
    )
    if key not in _static_files:
        super(ServeStaticMiddleware, middleware).add_files_from_finders()
        _static_files[key] = (dict(middleware.files), list(middleware.directories))
    files, directories = _static_files[key]
    middleware.files.update(files)
    middleware.directories[:0] = directories


@pytest.fixture
async def close_db_connections():
    """Close the connections that async ORM calls opened on asgiref's worker thread.

    pytest-django only manages the main thread's connection; without this an
    async test leaves its connection open, and PostgreSQL refuses to drop the
    test database at the end of the run.
    """
    yield
    await sync_to_async(connections.close_all)()


def pytest_collection_modifyitems(items):
    for item in items:
        if is_async_test(item) and "close_db_connections" not in item.fixturenames:
            item.fixturenames.append("close_db_connections")
{%- if cookiecutter | uses_redis %}


@pytest.fixture(scope="session")
def redis_server():
    """The Redis at REDIS_URL; tests use keys of their own there and delete them."""
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        message = f"Redis at REDIS_URL={settings.REDIS_URL} does not answer ({exc})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(f"{message}: start redis-server or set REDIS_URL")
    finally:
        client.close()
{%- endif %}
