"""GET /files/<path>: stream a file from MEDIA_ROOT without blocking the event loop.

Only regular files under MEDIA_ROOT are served: a path that resolves anywhere
else (`..`, an absolute path, a symlink pointing out) or to a directory is a
404, like a file that does not exist. The response is sandboxed by its CSP so
an uploaded HTML or SVG file cannot run script in this site's origin.
"""

import asyncio
import mimetypes
import os
from pathlib import Path

import aiofiles
from django.conf import settings
from django.http import Http404, HttpResponseNotModified, StreamingHttpResponse
from django.utils.http import http_date, parse_etags, quote_etag
from django.views.decorators.http import require_safe

CHUNK_SIZE = 64 * 1024


def _locate(relative: str) -> tuple[Path, os.stat_result]:
    """Resolve and stat the file in one go (this runs in a worker thread)."""
    root = Path(settings.MEDIA_ROOT).resolve()
    try:
        path = (root / relative).resolve()
        info = path.stat()
    except (OSError, ValueError):  # missing, unreadable, or a NUL byte in the name
        raise Http404 from None
    if not path.is_relative_to(root) or not path.is_file():
        raise Http404
    return path, info


async def _chunks(path: Path):
    async with aiofiles.open(path, "rb") as file:
        while chunk := await file.read(CHUNK_SIZE):
            yield chunk


@require_safe
async def serve(request, path: str):
    # Resolving touches the disk: do it off the event loop, in one hop.
    file_path, info = await asyncio.to_thread(_locate, path)
    etag = quote_etag(f"{info.st_size:x}-{info.st_mtime_ns:x}")
    # If-None-Match compares weakly: W/"x" matches "x".
    if_none_match = request.headers.get("If-None-Match", "")
    known = {tag.removeprefix("W/") for tag in parse_etags(if_none_match)}
    if etag in known or "*" in known:
        response = HttpResponseNotModified()
        response["ETag"] = etag
        return response
    content_type, encoding = mimetypes.guess_type(file_path.name)
    response = StreamingHttpResponse(
        _chunks(file_path), content_type=content_type or "application/octet-stream"
    )
    if encoding:
        response["Content-Encoding"] = encoding
    response["Content-Length"] = str(info.st_size)
    response["ETag"] = etag
    response["Last-Modified"] = http_date(info.st_mtime)
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response
