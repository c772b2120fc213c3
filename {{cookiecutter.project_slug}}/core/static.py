"""Static files under ASGI: ServeStatic, without a thread per file.

WhiteNoise is WSGI-first: under ASGI Django warns that it must consume its
synchronous file iterator, and reads the whole file in a thread. ServeStatic,
its ASGI successor, streams asynchronously, but reads each file through an
AsyncFile that starts a thread of its own, unless the server sends files
itself (the ASGI pathsend and zerocopysend extensions, which uvicorn lacks).
Here ServeStatic is asked for the file's path instead, as for pathsend, and
the file is read on the event loop's shared executor: the thread count stays
flat however many files are in flight. Range requests keep ServeStatic's own
reader.
"""

import asyncio
from collections.abc import AsyncIterator

from servestatic import middleware
from servestatic.utils import EmptyAsyncIterator

BLOCK_SIZE = 64 * 1024


async def read_file(path: str) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    file = await loop.run_in_executor(None, open, path, "rb")
    try:
        while chunk := await loop.run_in_executor(None, file.read, BLOCK_SIZE):
            yield chunk
    finally:
        file.close()


class ServeStaticMiddleware(middleware.ServeStaticMiddleware):
    @staticmethod
    async def aserve(static_file, request) -> middleware.AsyncServeStaticFileResponse:
        response = await static_file.aget_response(
            request.method or "GET", request.META, pathsend=True
        )
        if response.file is None and response.path is not None:
            body = read_file(response.path)
        else:
            body = response.file or EmptyAsyncIterator()
        served = middleware.AsyncServeStaticFileResponse(body, status=int(response.status))
        del served["Content-Type"]  # ServeStatic's headers below carry the right one
        for name, value in response.headers:
            if value is not None:
                served[name] = value
        return served
