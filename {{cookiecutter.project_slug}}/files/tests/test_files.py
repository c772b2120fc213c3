import os
from unittest import mock

import pytest
from django.core.handlers.asgi import ASGIHandler
from django.utils.http import http_date

from core.testing import asgi_request
from files import views
from files.views import CHUNK_SIZE

# What a HEAD answer must carry exactly as the GET answer does.
GET_HEADERS = (
    "content-type",
    "content-length",
    "etag",
    "last-modified",
    "content-security-policy",
    "x-content-type-options",
)


@pytest.fixture
def media(tmp_path, settings):
    root = tmp_path / "media"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "report.txt").write_text("quarterly numbers\n")
    (root / "big.bin").write_bytes(os.urandom(CHUNK_SIZE * 3 + 17))
    (root / "page.html").write_text("<script>alert(1)</script>")
    (tmp_path / "secret.txt").write_text("outside MEDIA_ROOT")
    (root / "escape").symlink_to(tmp_path / "secret.txt")
    (root / "inside").symlink_to(root / "docs" / "report.txt")
    settings.MEDIA_ROOT = root
    return root


async def body(response) -> bytes:
    return b"".join([chunk async for chunk in response.streaming_content])


async def test_streams_a_file_in_chunks(async_client, media):
    response = await async_client.get("/files/big.bin")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Length"] == str(CHUNK_SIZE * 3 + 17)
    assert await body(response) == (media / "big.bin").read_bytes()


async def test_content_type_and_validators(async_client, media):
    response = await async_client.get("/files/docs/report.txt")
    assert response["Content-Type"].startswith("text/plain")
    assert response["ETag"].startswith('"')
    assert response["Last-Modified"]
    assert await body(response) == b"quarterly numbers\n"


@pytest.mark.parametrize("tag_form", ["{}", "W/{}", '"other", {}', "*"])
async def test_if_none_match_is_304(async_client, media, tag_form):
    etag = (await async_client.get("/files/docs/report.txt"))["ETag"]
    response = await async_client.get(
        "/files/docs/report.txt", headers={"If-None-Match": tag_form.format(etag)}
    )
    assert response.status_code == 304
    assert response["ETag"] == etag
    assert response.content == b""


async def test_a_changed_file_gets_a_new_etag(async_client, media):
    etag = (await async_client.get("/files/docs/report.txt"))["ETag"]
    (media / "docs" / "report.txt").write_text("revised numbers, longer\n")
    response = await async_client.get("/files/docs/report.txt", headers={"If-None-Match": etag})
    assert response.status_code == 200
    assert response["ETag"] != etag


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("notes.txt.gz", "application/gzip"),
        ("backup.tar.gz", "application/gzip"),
        ("backup.tar.xz", "application/x-xz"),
        ("backup.tar.bz2", "application/x-bzip"),
        ("page.html.br", "application/x-brotli"),
        ("old.Z", "application/x-compress"),
    ],
)
async def test_a_compressed_file_is_served_as_itself(async_client, media, name, content_type):
    """Not as its content with a Content-Encoding: clients would decompress it on the way."""
    (media / name).write_bytes(b"\x1f\x8b compressed bytes")
    for method in ("GET", "HEAD"):
        response = await async_client.generic(method, f"/files/{name}")
        assert response.status_code == 200
        assert response["Content-Type"] == content_type
        assert "Content-Encoding" not in response


async def test_uploaded_html_cannot_run_script(async_client, media):
    response = await async_client.get("/files/page.html")
    assert response["Content-Security-Policy"] == "sandbox; default-src 'none'"
    assert response["X-Content-Type-Options"] == "nosniff"


async def test_symlink_inside_media_root_is_served(async_client, media):
    response = await async_client.get("/files/inside")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/files/../secret.txt",
        "/files/%2e%2e/secret.txt",
        "/files/docs/%2E%2E/%2e%2e/secret.txt",
        "/files/docs/..%2f..%2fsecret.txt",
        "/files//etc/passwd",
        "/files/%2fetc%2fpasswd",
        "/files/escape",
        "/files/docs",
        "/files/docs/",
        "/files/missing.txt",
        "/files/docs/report.txt%00.png",
    ],
)
async def test_nothing_outside_media_root_and_no_listings(async_client, media, path):
    response = await async_client.get(path)
    assert response.status_code == 404
    assert b"outside MEDIA_ROOT" not in response.content
    assert b"report.txt" not in response.content


async def test_head_sends_the_get_headers_without_opening_the_file(media):
    """Served through the real ASGI handler: a streamed body would be read and thrown away."""
    handler = ASGIHandler()  # built here, with the test's settings
    get = await asgi_request(handler, "GET", "/files/big.bin")
    with mock.patch.object(views.aiofiles, "open", side_effect=AssertionError("file opened")):
        head = await asgi_request(handler, "HEAD", "/files/big.bin")
    assert head.status == get.status == 200
    assert head.body == b""
    assert {name: head.headers[name] for name in GET_HEADERS} == {
        name: get.headers[name] for name in GET_HEADERS
    }
    assert head.headers["content-length"] == str(CHUNK_SIZE * 3 + 17)


async def validators(async_client) -> tuple[str, str]:
    response = await async_client.get("/files/docs/report.txt")
    return response["ETag"], response["Last-Modified"]


@pytest.mark.parametrize("method", ["get", "head"])
async def test_if_modified_since_is_304(async_client, media, method):
    etag, last_modified = await validators(async_client)
    response = await getattr(async_client, method)(
        "/files/docs/report.txt", headers={"If-Modified-Since": last_modified}
    )
    assert response.status_code == 304
    assert response["ETag"] == etag
    assert response["Last-Modified"] == last_modified


async def test_if_modified_since_before_the_change_is_200(async_client, media):
    response = await async_client.get(
        "/files/docs/report.txt", headers={"If-Modified-Since": http_date(0)}
    )
    assert response.status_code == 200
    assert await body(response) == b"quarterly numbers\n"


@pytest.mark.parametrize(
    ("header", "value", "status"),
    [
        ("If-Match", '"other"', 412),
        ("If-Match", "{etag}", 200),
        ("If-Match", "*", 200),
        ("If-Unmodified-Since", http_date(86_400), 412),
        ("If-Unmodified-Since", "{last_modified}", 200),
    ],
)
async def test_if_match_and_if_unmodified_since(async_client, media, header, value, status):
    etag, last_modified = await validators(async_client)
    response = await async_client.get(
        "/files/docs/report.txt",
        headers={header: value.format(etag=etag, last_modified=last_modified)},
    )
    assert response.status_code == status


async def test_writes_are_refused(async_client, media):
    response = await async_client.post("/files/docs/report.txt")
    assert response.status_code == 405
