"""The response size cap: every way a body can be larger than it says, for every caller."""

import zlib

import httpx
import pytest

from upstreams.bodies import ResponseTooLarge
from upstreams.client import get_client
from upstreams.retries import request
from upstreams.status_api import StatusApi, StatusApiError

CAP = 64 * 1024
CHUNK = 16 * 1024
HUGE = 64 * 1024 * 1024  # what each streamed body would be if read to the end


class Endless:
    """A streamed body of `total` bytes, made as it is pulled; `pulled` counts what was."""

    def __init__(self, chunk: bytes = b"x" * CHUNK, total: int = HUGE):
        self.chunk, self.total, self.pulled = chunk, total, 0

    async def __aiter__(self):
        while self.pulled < self.total:
            self.pulled += len(self.chunk)
            yield self.chunk


def gzipped_zeros(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(bytes(size)) + compressor.flush()


@pytest.fixture(autouse=True)
def small_cap(settings):
    settings.HTTPX_MAX_RESPONSE_BYTES = CAP
    settings.HTTPX_RETRY_WAIT_INITIAL = 0.01


def mock_client(handler) -> httpx.AsyncClient:
    """A plain httpx client, not the project's: request() caps whatever client it is given."""
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_a_body_without_a_length_stops_just_past_the_cap():
    body = Endless()
    async with mock_client(lambda request: httpx.Response(200, content=body)) as client:
        with pytest.raises(ResponseTooLarge):
            await request(client, "GET", "http://big.test/", deadline=5)
    assert body.pulled <= CAP + CHUNK  # not the 64 MiB on offer


async def test_a_body_longer_than_its_content_length_is_cut_at_the_cap():
    body = Endless()
    lying = {"Content-Length": "10"}
    async with mock_client(lambda request: httpx.Response(200, headers=lying, content=body)) as c:
        with pytest.raises(ResponseTooLarge):
            await request(c, "GET", "http://liar.test/", deadline=5)
    assert body.pulled <= CAP + CHUNK


async def test_a_declared_length_over_the_cap_is_refused_before_reading():
    body = Endless()
    declared = {"Content-Length": str(HUGE)}
    async with mock_client(
        lambda request: httpx.Response(200, headers=declared, content=body)
    ) as c:
        with pytest.raises(ResponseTooLarge):
            await request(c, "GET", "http://big.test/", deadline=5)
    assert body.pulled == 0


async def test_the_length_of_a_head_answer_is_not_a_body():
    declared, nothing = {"Content-Length": str(HUGE)}, Endless(total=0)
    async with mock_client(
        lambda request: httpx.Response(200, headers=declared, content=nothing)
    ) as c:
        response = await request(c, "HEAD", "http://big.test/", deadline=5)
    assert (response.status_code, response.content) == (200, b"")


async def test_a_compressed_body_counts_by_its_decompressed_size():
    bomb = gzipped_zeros(HUGE)  # 64 MiB of zeros in about 64 KiB
    chunks = Endless(chunk=bomb[: CAP // 4], total=len(bomb))  # under the cap on the wire
    gzip = {"Content-Encoding": "gzip"}
    async with mock_client(lambda request: httpx.Response(200, headers=gzip, content=chunks)) as c:
        with pytest.raises(ResponseTooLarge):
            await request(c, "GET", "http://bomb.test/", deadline=5)
    assert chunks.pulled == CAP // 4  # one chunk already decompresses past the cap


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
async def test_a_compressed_body_under_the_cap_is_decompressed(coding):
    data = b'{"up": true}' * 100
    wbits = 16 + zlib.MAX_WBITS if coding == "gzip" else zlib.MAX_WBITS
    compressor = zlib.compressobj(6, zlib.DEFLATED, wbits)
    raw = compressor.compress(data) + compressor.flush()
    seen = {}

    def handler(request):
        seen["accept"] = request.headers["Accept-Encoding"]
        chunks = Endless(chunk=raw, total=len(raw))
        return httpx.Response(200, headers={"Content-Encoding": coding}, content=chunks)

    async with mock_client(handler) as client:
        response = await request(client, "GET", "http://gz.test/", deadline=5)
    assert (response.content, seen["accept"]) == (data, "gzip, deflate")
    assert "Content-Encoding" not in response.headers


async def test_a_coding_that_cannot_be_bounded_is_refused():
    body = Endless(total=CHUNK)
    brotli = {"Content-Encoding": "br"}
    async with mock_client(lambda request: httpx.Response(200, headers=brotli, content=body)) as c:
        with pytest.raises(httpx.DecodingError, match="unsupported Content-Encoding: br"):
            await request(c, "GET", "http://br.test/", deadline=5)


async def test_the_shared_client_caps_direct_calls_too(upstream):
    body = Endless()
    upstream.routes = {"http://big.test/": lambda request: httpx.Response(200, content=body)}
    upstream.install()
    with pytest.raises(ResponseTooLarge):
        await get_client().get("http://big.test/")
    assert body.pulled <= CAP + CHUNK


async def test_a_body_too_large_is_the_sources_error_on_the_dashboard(
    async_client, settings, upstream
):
    body = Endless()
    upstream.routes = {
        "http://big.test/": lambda request: httpx.Response(200, content=body),
        "http://small.test/": lambda request: httpx.Response(200, json={"up": True}),
    }
    settings.DASHBOARD_SOURCES = "big=http://big.test/,small=http://small.test/"
    upstream.install()
    response = await async_client.get("/api/dashboard/")
    results = response.json()["sources"]
    assert (results["big"]["ok"], results["big"]["error"]) == (False, "response too large")
    assert results["small"]["data"] == {"up": True}
    assert upstream.calls.count("http://big.test/") == 1  # not retried: it would be as large
    assert body.pulled <= CAP + CHUNK


async def test_a_body_too_large_is_a_status_api_error():
    calls = []

    def handler(request):
        calls.append(request.url)
        return httpx.Response(200, content=Endless())

    api = StatusApi("https://status.test/api", token="t0ken", client=mock_client(handler))
    with pytest.raises(StatusApiError, match="ResponseTooLarge") as raised:
        await api.service("billing")
    assert type(raised.value) is StatusApiError  # not StatusApiUnavailable: no use trying again
    assert len(calls) == 1
