"""uvicorn's HTTP protocol (httptools), minus two faults with pipelined requests.

HTTP/1.1 lets a client send requests one after another without waiting for
the answers. uvicorn parses every request it reads and queues one request
cycle for each, answering them in order. Two things go wrong:

- The queue has no bound. Each answer lets uvicorn read again, and one read
  can hold thousands of small requests: a client that wrote pipelined
  requests for 8 s and read nothing took a worker from 82 to 750 MiB, still
  held after it left. Here a connection with more than MAX_PIPELINED requests
  waiting is dropped at once, with what it had not yet read: no browser
  pipelines and nginx does not pipeline to upstreams, so only such a client
  ever meets the limit.
- When the client leaves, uvicorn tells only the latest request parsed on
  the connection, not the one being answered: that one keeps writing to the
  closed transport, and the error becomes an ERROR traceback ("Exception in
  ASGI application", or "returned without completing response"). Here the
  request being answered is told too, so its sends are dropped and its
  receive() answers http.disconnect, as for any request whose client left.

The baked README serves with `--http core.protocol:HttpToolsProtocol`.
core/tests/test_protocol.py fails if uvicorn changes what this relies on
(`pipeline`, `cycle`, `_start_asgi_task`, a cycle's `disconnected`,
`response_complete` and `message_event`).
"""

from uvicorn.protocols.http import httptools_impl

# Requests a connection may have waiting behind the one being answered.
MAX_PIPELINED = 64


class HttpToolsProtocol(httptools_impl.HttpToolsProtocol):
    # The request cycle whose application runs (uvicorn answers one at a time).
    running: httptools_impl.RequestResponseCycle | None = None

    def _start_asgi_task(self, cycle, app) -> None:
        self.running = cycle
        super()._start_asgi_task(cycle, app)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if len(self.pipeline) > MAX_PIPELINED and not self.transport.is_closing():
            self.logger.warning(
                "Dropped a connection: more than %d pipelined requests waiting", MAX_PIPELINED
            )
            # Not close(): that would wait to write answers the client does not read.
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        running = self.running
        if running is not None and not running.response_complete:
            running.disconnected = True
            running.message_event.set()
        # Queued requests never run now: let them go with the connection.
        self.pipeline.clear()
