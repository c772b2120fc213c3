"""A TCP proxy on loopback that delays every chunk by a fixed time each way.

The benchmarks put it between a server and its database to stand for a
database one network hop away: this machine's kernel has no netem. One
thread, `select.select` (microsecond timeouts, where epoll rounds up to a
millisecond): each chunk read is sent on once `delay` seconds have passed
since it arrived, in order. A chunk that arrives while the proxy is sending
waits a little longer than `delay`; at the benchmarks' load the proxy idles.

    python -m bench.latency LISTEN_PORT TARGET_PORT [--delay 0.0005]

It runs until killed (SIGTERM).
"""

import argparse
import collections
import select
import socket
import time


class Pipe:
    """One direction of one proxied connection: chunks waiting to be sent, due times."""

    def __init__(self, source: socket.socket, target: socket.socket):
        self.source, self.target = source, target
        self.waiting: collections.deque[tuple[float, bytes]] = collections.deque()
        self.closed = False  # the source said end-of-file


def proxy(listen_port: int, target_port: int, delay: float) -> None:
    listener = socket.create_server(("127.0.0.1", listen_port), backlog=128)
    pipes: dict[socket.socket, Pipe] = {}  # by source socket
    while True:
        now = time.monotonic()
        due = [pipe.waiting[0][0] for pipe in pipes.values() if pipe.waiting]
        timeout = max(0.0, min(due) - now) if due else None
        readable, _, _ = select.select([listener, *pipes], [], [], timeout)
        now = time.monotonic()
        for sock in readable:
            if sock is listener:
                client, _ = listener.accept()
                upstream = socket.create_connection(("127.0.0.1", target_port))
                for s in (client, upstream):
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                pipes[client] = Pipe(client, upstream)
                pipes[upstream] = Pipe(upstream, client)
                continue
            pipe = pipes[sock]
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            pipe.waiting.append((now + delay, data))
        for sock, pipe in list(pipes.items()):
            if sock not in pipes:  # closed with its other direction
                continue
            while pipe.waiting and pipe.waiting[0][0] <= now:
                _, data = pipe.waiting.popleft()
                if not data:  # end of file: close both ways
                    for s in (pipe.source, pipe.target):
                        pipes.pop(s, None)
                        s.close()
                    break
                try:
                    pipe.target.sendall(data)
                except OSError:
                    pipe.waiting.append((now, b""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("listen_port", type=int)
    parser.add_argument("target_port", type=int)
    parser.add_argument("--delay", type=float, default=0.0005, help="seconds, each way")
    args = parser.parse_args()
    proxy(args.listen_port, args.target_port, args.delay)


if __name__ == "__main__":
    main()
