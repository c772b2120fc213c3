{% if cookiecutter.broker == "redis" -%}
import uuid

{% endif -%}
import pytest
from django.contrib.auth import get_user_model

from core.models import ApiToken
from events.asgi import ASGIHandler
from events.broker import aclose_broker, get_broker


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
