"""uvicorn's websocket protocol, minus two ways a client's mistake goes wrong.

uvicorn 0.54 serves websockets with `websockets-sansio` by default: it hands
the upgrade request to the websockets library and frames to the application.

- A handshake websockets refuses (a request or header line over 8 KiB, more
  than 128 headers) gets a 414 or 431 queued by websockets, which uvicorn
  never sends: the connection stays open and silent until the client gives
  up, holding a connection slot. Here the answer is sent and the connection
  closed.
- A text frame that is not UTF-8 is closed with 1007, as RFC 6455 says, but
  uvicorn logs it at ERROR with a traceback. Here it is one INFO line.

The baked README serves with `--ws rooms.protocol:WebSocketProtocol`.
rooms/tests/test_protocol.py fails if uvicorn changes what this relies on.
"""

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import CloseCode

INVALID_DATA = CloseCode.INVALID_DATA  # 1007


class WebSocketProtocol(WebSocketsSansIOProtocol):
    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.handshake_initiated and self.conn.handshake_exc is not None:
            # websockets refused the request and queued its answer (or nothing,
            # for bytes that are not HTTP at all): send it and hang up.
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()

    def send_receive_event_to_app(self) -> None:
        if self.curr_msg_data_type == "text" and not self.close_sent:
            try:
                b"".join(self.frames).decode()
            except UnicodeDecodeError:
                self.frames = []
                self.logger.info("Closed a websocket: the client sent text that is not UTF-8")
                self.conn.send_close(INVALID_DATA)
                self.handle_parser_exception()
                return
        super().send_receive_event_to_app()
