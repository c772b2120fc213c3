"""The ASGI lifespan protocol, which Django does not speak, for the shared httpx client.

uvicorn sends `lifespan.startup` before it serves and `lifespan.shutdown`
after the last connection has closed; Django's handler only takes HTTP. This
wrapper answers lifespan itself and passes every other scope on. At startup it
runs Django's system checks, as `runserver` does, so a bad setting (such as
DASHBOARD_SOURCES) stops the server with the check's message instead of
failing requests later. At shutdown it closes the shared client: its pooled
connections end cleanly instead of dying with the process.
"""

from asgiref.sync import sync_to_async
from django.core import checks

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
                errors = [e for e in await sync_to_async(checks.run_checks)() if e.is_serious()]
                if errors:
                    report = "\n".join(str(error) for error in errors)
                    await send({"type": "lifespan.startup.failed", "message": report})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await aclose_client()
                await send({"type": "lifespan.shutdown.complete"})
                return
