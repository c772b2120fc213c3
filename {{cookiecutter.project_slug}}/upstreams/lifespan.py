"""The ASGI lifespan protocol, which Django does not speak, for the shared httpx client.

uvicorn sends `lifespan.startup` before it serves and `lifespan.shutdown`
after the last connection has closed; Django's handler only takes HTTP. This
wrapper answers lifespan itself, closes the shared client on shutdown (its
pooled connections end cleanly instead of dying with the process), and passes
every other scope to the application.
"""

from upstreams.client import aclose_client


class Lifespan:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await aclose_client()
                await send({"type": "lifespan.shutdown.complete"})
                return
