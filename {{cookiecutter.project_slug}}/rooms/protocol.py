"""uvicorn's websocket protocol, minus three ways a client's mistake goes wrong.

uvicorn 0.54 serves websockets with `websockets-sansio` by default: it hands
the upgrade request to the websockets library and frames to the application.

- A handshake websockets refuses (a request or header line over 8 KiB, more
  than 128 headers) gets a 414 or 431 queued by websockets, which uvicorn
  never sends: the connection stays open and silent until the client gives
  up, holding a connection slot. Here the answer is sent and the connection
  closed.
- A text frame that is not UTF-8 is closed with 1007, as RFC 6455 says, but
  uvicorn logs it at ERROR with a traceback. Here it is one INFO line.
- uvicorn writes a pong for every ping at once, whether or not the client
  reads: a client that sends pings and never reads grew a worker by 17 MB/s
  without bound. Here, while the transport's write buffer is over its
  high-water mark (the client is not reading), pongs are not written; when
  it drains, one pong answers the latest ping, as RFC 6455 5.5.3 allows.

The baked README serves with `--ws rooms.protocol:WebSocketProtocol`.
rooms/tests/test_protocol.py fails if uvicorn changes what this relies on.
"""

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

INVALID_DATA = CloseCode.INVALID_DATA  # 1007


class ServerConnection(ServerProtocol):
    """websockets' server side, holding back pongs while the client is not reading."""

    backlogged = False
    # The payload of the latest ping left unanswered while backlogged.
    unanswered_ping: bytes | None = None

    def send_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.PONG and self.backlogged:
            self.unanswered_ping = bytes(frame.data)
            return
        super().send_frame(frame)


class WebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # uvicorn builds the connection with its settings (size limit, extensions);
        # the subclass adds behaviour, no state of its own beyond two attributes.
        self.conn.__class__ = ServerConnection

    def pause_writing(self) -> None:
        super().pause_writing()
        self.conn.backlogged = True

    def resume_writing(self) -> None:
        super().resume_writing()
        self.conn.backlogged = False
        ping, self.conn.unanswered_ping = self.conn.unanswered_ping, None
        if ping is not None and self.conn.state is State.OPEN and not self.disconnected:
            self.conn.send_frame(Frame(Opcode.PONG, ping))
            self.transport.write(b"".join(self.conn.data_to_send()))

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
