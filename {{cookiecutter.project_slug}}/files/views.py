"""GET /files/<path>: stream a file from MEDIA_ROOT without blocking the event loop.

Only regular files under MEDIA_ROOT are served: a path that resolves anywhere
else (`..`, an absolute path, a symlink pointing out) or to a directory is a
404, like a file that does not exist. The response is sandboxed by its CSP so
an uploaded HTML or SVG file cannot run script in this site's origin.

A compressed file is served as what it is (`x.txt.gz` as application/gzip),
as Django's FileResponse does, never with a Content-Encoding: that would
tell clients to decompress it on the way (and `xz` or `bzip2` are not HTTP
content codings at all).
"""

import asyncio
import mimetypes
import os
from pathlib import Path

import aiofiles
from django.conf import settings
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.utils.cache import get_conditional_response
from django.utils.http import http_date, quote_etag
from django.views.decorators.http import require_safe

CHUNK_SIZE = 64 * 1024
# The media type of a file mimetypes reads as compressed, by its encoding (Django's FileResponse).
COMPRESSED_TYPES = {
    "br": "application/x-brotli",
    "bzip2": "application/x-bzip",
    "compress": "application/x-compress",
    "gzip": "application/gzip",
    "xz": "application/x-xz",
}


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
    """The file at MEDIA_ROOT/`path`: 200 streamed, 304 or 412 by the request's preconditions.

    If-None-Match, If-Modified-Since, If-Match and If-Unmodified-Since are
    evaluated by Django (RFC 9110 13.2.2) against the file's ETag (size and
    mtime) and Last-Modified. HEAD gets the GET headers and never opens the
    file: a streamed body would be read from disk only to be thrown away.
    """
    # Resolving touches the disk: do it off the event loop, in one hop.
    file_path, info = await asyncio.to_thread(_locate, path)
    content_type, encoding = mimetypes.guess_type(file_path.name)
    if encoding:
        content_type = COMPRESSED_TYPES.get(encoding)
    headers = {
        "Content-Type": content_type or "application/octet-stream",
        "Content-Length": str(info.st_size),
        "ETag": quote_etag(f"{info.st_size:x}-{info.st_mtime_ns:x}"),
        "Last-Modified": http_date(info.st_mtime),
        "Content-Security-Policy": "sandbox; default-src 'none'",
    }
    head = HttpResponse(headers=headers)
    answer = get_conditional_response(
        request, etag=headers["ETag"], last_modified=int(info.st_mtime), response=head
    )
    if answer is not head or request.method == "HEAD":
        return answer  # 304 (with the validators), 412, or the headers of a HEAD
    return StreamingHttpResponse(_chunks(file_path), headers=headers)
