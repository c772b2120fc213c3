import httpx
import pytest

from upstreams.client import aclose_client, make_client, use_client
from upstreams.dashboard import dashboard_round


@pytest.fixture
def upstream(settings):
    """Install a shared client whose requests go to `upstream.routes[url]` handlers.

    A handler takes the httpx.Request and returns an httpx.Response (it may be
    async, and sleep, to play a slow upstream); an unknown URL raises ConnectError.
    """
    settings.HTTPX_RETRY_WAIT_INITIAL = 0.01

    class Upstream:
        def __init__(self):
            self.routes = {}
            self.calls = []

        async def handle(self, request: httpx.Request) -> httpx.Response:
            self.calls.append(str(request.url))
            handler = self.routes.get(str(request.url))
            if handler is None:
                raise httpx.ConnectError("connection refused", request=request)
            response = handler(request)
            return await response if hasattr(response, "__await__") else response

        def install(self) -> httpx.AsyncClient:
            client = make_client(transport=httpx.MockTransport(self.handle))
            use_client(client)
            return client

    return Upstream()


@pytest.fixture(autouse=True)
async def close_shared_client():
    yield
    await aclose_client()
    dashboard_round.forget()  # its result was made with this test's client and settings
