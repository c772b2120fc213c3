{% if cookiecutter.broker == "redis" -%}
import os
import uuid

{% endif -%}
import pytest
{%- if cookiecutter.broker == "redis" %}
import redis
from django.conf import settings
{%- endif %}
from django.contrib.auth import get_user_model

from core.models import ApiToken
from events.asgi import ASGIHandler
from events.broker import aclose_broker, get_broker
{%- if cookiecutter.broker == "redis" %}


@pytest.fixture(scope="session")
def redis_server():
    """The Redis at REDIS_URL; each test uses a stream key of its own there."""
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


@pytest.fixture(autouse=True)
def sse_settings(settings):
    settings.SSE_RETENTION = 50
    settings.SSE_CLIENT_QUEUE_SIZE = 16
    settings.SSE_HEARTBEAT_SECONDS = 60  # tests of the heartbeat lower it
{%- if cookiecutter.broker == "redis" %}
    settings.SSE_STREAM_KEY = f"test:{uuid.uuid4().hex}"
{%- endif %}
    return settings


@pytest.fixture
async def broker(sse_settings{% if cookiecutter.broker == "redis" %}, redis_server{% endif %}):
    """The broker the views use in this test's event loop; closed after the test."""
    broker = get_broker()
    yield broker
{%- if cookiecutter.broker == "redis" %}
    await broker.redis.delete(sse_settings.SSE_STREAM_KEY)
{%- endif %}
    await aclose_broker()


@pytest.fixture
def app(sse_settings):
    """The ASGI application the server runs; one per test, as building it is slow."""
    return ASGIHandler()


@pytest.fixture
async def token_headers():
    user = await get_user_model().objects.acreate(username="publisher")
    _, raw = await ApiToken.aissue(user)
    return {"Authorization": f"Bearer {raw}"}
