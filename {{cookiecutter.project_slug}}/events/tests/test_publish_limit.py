"""POST /events/publish/ has its own body cap, enforced at the ASGI edge (core/limits.py)."""

import json

import pytest

from core.testing import asgi_request
from events.views import ENVELOPE_BYTES

pytestmark = pytest.mark.django_db(transaction=True)


async def publish(app, token_headers, data: str):
    body = json.dumps({"event": "sized", "data": data}).encode()
    headers = [
        ("authorization", token_headers["Authorization"]),
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
    ]
    return await asgi_request(app, "POST", "/events/publish/", headers=headers, body=body)


async def test_a_body_over_the_data_limit_and_envelope_is_413_json(
    app, broker, token_headers, sse_settings
):
    sse_settings.SSE_MAX_DATA_BYTES = 1000
    response = await publish(app, token_headers, "x" * 100_000)
    assert response.status == 413
    limit = 1000 + ENVELOPE_BYTES
    assert json.loads(response.body) == {"detail": f"Request body over {limit} bytes."}


async def test_a_body_within_the_data_limit_is_published(app, broker, token_headers, sse_settings):
    sse_settings.SSE_MAX_DATA_BYTES = 1000
    response = await publish(app, token_headers, "x" * 900)
    assert response.status == 202
