"""End open event streams as soon as the server is told to stop.

uvicorn stops on SIGTERM or SIGINT by letting open responses finish, for up
to --timeout-graceful-shutdown seconds, and then cancelling them. An event
stream never finishes by itself, so every restart would wait out that
timeout and then cut each stream off mid-response. Chained after the
server's own handler, this ends every stream at once with a complete
response; EventSource reconnects (to a worker that is still serving) and
resumes from its Last-Event-ID, so nothing is lost.
"""

import contextlib
import signal
import threading

from events.broker import running_broker

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_installed = False


def end_streams_when_stopping() -> None:
    """Chain the stream-ending handler after the server's own, once per process.

    Signal handlers belong to the main thread, where uvicorn runs its event
    loop. A signal nobody handles in Python (SIG_DFL, SIG_IGN) is left alone:
    chaining after it would change what it does.
    """
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    _installed = True
    for signum in STOP_SIGNALS:
        previous = signal.getsignal(signum)
        if callable(previous):
            signal.signal(signum, _chain(previous))


def _chain(previous):
    def end_streams_then_stop(signum, frame):
        broker = running_broker()
        if broker is not None:
            # Runs between two bytecodes of the main thread: hand the work to the loop.
            with contextlib.suppress(RuntimeError):  # that loop is already closed
                broker.loop.call_soon_threadsafe(broker.end_streams)
        previous(signum, frame)

    return end_streams_then_stop
