"""`manage.py runserver` (core) serves the rooms as the README's serve command does."""

from uvicorn.importer import import_from_string

from core.management.commands.runserver import uvicorn_options
from rooms.protocol import WebSocketProtocol


def test_runserver_serves_websockets_with_the_rooms_protocol_and_frame_limit():
    options = uvicorn_options()
    assert import_from_string(options["ws"]) is WebSocketProtocol
    # `--ws-max-size 65536`: room for a ROOMS_MAX_MESSAGE_LENGTH message.
    assert options["ws_max_size"] == 64 * 1024
