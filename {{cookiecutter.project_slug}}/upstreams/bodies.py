"""Response bodies read with a size cap, so an upstream cannot fill the worker's memory.

httpx reads a whole body into memory, whatever its size, and decompresses it
on the way: a 10 MiB gzip body can become 10 GiB. `read_capped()` reads a
streamed response chunk by chunk and stops as soon as the body passes the cap
(HTTPX_MAX_RESPONSE_BYTES unless given), counting the decompressed bytes; a
declared Content-Length over the cap is refused before anything is read.
Only gzip and deflate are accepted (and asked for: ACCEPT_ENCODING), because
zlib can be told how much it may produce per call; other codings are refused.
"""

import zlib

import httpx
from django.conf import settings

# What the project's requests offer: the codings read_capped() can decompress in bounded steps.
ACCEPT_ENCODING = "gzip, deflate"


class ResponseTooLarge(httpx.RequestError):
    """The body (decompressed) is longer than the cap. Not retried: it would be as large again."""


def _too_large(response: httpx.Response, limit: int) -> ResponseTooLarge:
    return ResponseTooLarge(f"response body over {limit} bytes", request=response.request)


def _decompressor(response: httpx.Response):
    """A zlib decompressor for the response's Content-Encoding, or None for an identity body.

    Raises httpx.DecodingError for a coding other than gzip and deflate (br,
    zstd, a chain of codings).
    """
    codings = [
        coding.strip().lower()
        for coding in response.headers.get_list("content-encoding", split_commas=True)
    ]
    codings = [coding for coding in codings if coding not in {"", "identity"}]
    if not codings:
        return None
    if codings in (["gzip"], ["x-gzip"], ["deflate"]):
        # 32 + MAX_WBITS: a gzip or a zlib header, detected from the first bytes.
        return zlib.decompressobj(32 + zlib.MAX_WBITS)
    raise httpx.DecodingError(
        f"unsupported Content-Encoding: {', '.join(codings)}", request=response.request
    )


async def read_capped(response: httpx.Response, max_bytes: int | None = None) -> httpx.Response:
    """Read a response opened with `stream=True`, at most `max_bytes` of body.

    Returns a new, fully read httpx.Response (same status, headers, request and
    history) whose body is the decompressed content: Content-Encoding is
    dropped and Content-Length is that of the content. Does not close
    `response`; `client.stream()` does, or call `response.aclose()`.

    Raises ResponseTooLarge once the declared length, the bytes received or the
    bytes decompressed pass `max_bytes` (HTTPX_MAX_RESPONSE_BYTES by default),
    having read at most one network chunk past the cap and decompressed at
    most one byte past it; httpx.DecodingError for a corrupt or unsupported
    coding; httpx's transport errors while reading.
    """
    limit = settings.HTTPX_MAX_RESPONSE_BYTES if max_bytes is None else max_bytes
    if response.is_stream_consumed:
        # Read by the transport already (httpx.MockTransport does): the body is in memory.
        if len(response.content) > limit:
            raise _too_large(response, limit)
        return response
    declared = response.headers.get("content-length", "")
    # The answer to a HEAD, a 204 or a 304 has no body, whatever length it gives.
    has_body = response.request.method != "HEAD" and response.status_code not in {204, 304}
    if has_body and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise _too_large(response, limit)
    decompressor = _decompressor(response)
    parts: list[bytes] = []
    received = decoded = 0
    try:
        async for chunk in response.aiter_raw():
            # The bytes on the wire count too: zlib keeps whatever follows the end of a
            # gzip stream (unused_data), and a body that compresses that badly is no body.
            received += len(chunk)
            if received > limit:
                raise _too_large(response, limit)
            if decompressor is None:
                parts.append(chunk)
                continue
            data = chunk
            while data:
                # Never more than one byte past the cap per call, however well it compressed.
                parts.append(decompressor.decompress(data, limit + 1 - decoded))
                decoded += len(parts[-1])
                if decoded > limit:
                    raise _too_large(response, limit)
                data = decompressor.unconsumed_tail
        if decompressor is not None:
            parts.append(decompressor.flush())
    except zlib.error as exc:
        parts.clear()
        raise httpx.DecodingError(f"corrupt body: {exc}", request=response.request) from exc
    except BaseException:
        # The traceback keeps this frame, and so what was read, alive for as long as the
        # exception lives, and stamina keeps it in a reference cycle: until the next full gc
        # run. Measured in a loop of reads cut at the 4 MiB cap: 4.4 MiB more held each.
        parts.clear()
        raise
    body = b"".join(parts)
    if len(body) > limit:
        raise _too_large(response, limit)
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in {"content-encoding", "content-length"}
    ]
    read = httpx.Response(
        response.status_code,
        headers=headers,
        content=body,
        request=response.request,
        extensions=response.extensions,
        history=response.history,
    )
    read.elapsed = response.elapsed
    return read
