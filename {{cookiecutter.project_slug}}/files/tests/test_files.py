import os

import pytest

from files.views import CHUNK_SIZE


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


async def test_head_sends_headers_only(async_client, media):
    response = await async_client.head("/files/docs/report.txt")
    assert response.status_code == 200
    assert response["Content-Length"] == "18"


async def test_writes_are_refused(async_client, media):
    response = await async_client.post("/files/docs/report.txt")
    assert response.status_code == 405
