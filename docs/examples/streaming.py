"""Streaming: an async generator that cleans up when the client goes away."""

import asyncio

from django.http import HttpRequest, StreamingHttpResponse

# --8<-- [start:stream]
# Each open stream's queue; announce() puts a message on every one.
listeners: set[asyncio.Queue[str]] = set()


def announce(message: str) -> None:
    for queue in listeners:
        queue.put_nowait(message)


async def live(request: HttpRequest) -> StreamingHttpResponse:
    async def messages():
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=100)
        listeners.add(queue)
        try:
            yield ": connected\n\n"  # a comment: sends the headers now
            while True:
                yield f"data: {await queue.get()}\n\n"
        finally:
            # Runs when Django cancels the stream on disconnect (the await above
            # raises CancelledError, which must be left to propagate).
            listeners.discard(queue)

    response = StreamingHttpResponse(messages(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each chunk on at once
    return response


# --8<-- [end:stream]


# --8<-- [start:countdown]
# A finite stream: it records how far it got, so a test can see when it ran.
progress: list[str] = []


async def countdown(request: HttpRequest) -> StreamingHttpResponse:
    async def numbers():
        for n in (3, 2, 1):
            progress.append(f"yield {n}")
            yield f"{n}\n"
            await asyncio.sleep(0.01)
        progress.append("done")

    return StreamingHttpResponse(numbers(), content_type="text/plain")


# --8<-- [end:countdown]
