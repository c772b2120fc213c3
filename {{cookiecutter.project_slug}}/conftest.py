{% if cookiecutter | uses_redis -%}
import os

{% endif -%}
import pytest
{%- if cookiecutter | uses_redis %}
import redis
{%- endif %}
from asgiref.sync import sync_to_async
{%- if cookiecutter | uses_redis %}
from django.conf import settings
{%- endif %}
from django.db import connections
from pytest_asyncio import is_async_test


@pytest.fixture(autouse=True)
def plain_http(settings):
    """Test clients speak plain HTTP; core/tests/test_settings.py checks the HTTPS settings."""
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture(autouse=True)
def static_files_from_apps(settings):
    """Tests run without `collectstatic`: serve static files from the apps, unhashed."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.SERVESTATIC_USE_FINDERS = True


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
