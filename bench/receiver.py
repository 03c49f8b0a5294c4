"""A webhook receiver for the bench, in a process of its own: it answers every POST `200 ok` and counts them.

    python bench/receiver.py [--hang]

It prints `port N` once it listens; on SIGTERM it prints `requests N cpu S`
(the calls it read, its own CPU seconds) and exits. One thread and a
selector over raw sockets: about 0.1 ms of CPU a call, where asyncio's
streams took 0.28 ms and tests/webhook_receiver.py (threaded, recording
every request, in the bench's own process) more, on a machine the bench
shares with MariaDB, RabbitMQ and our processes. `--hang`: read each call
and never answer (the relay waits out its timeout).
"""

from __future__ import annotations

import selectors
import signal
import socket
import sys
import time

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


def complete(data: bytes) -> bool:
    """Whether `data` holds a whole request: its head and the Content-Length bytes after it."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False
    length = 0
    for line in data[:end].split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return len(data) >= end + 4 + length


def serve(hang: bool) -> None:
    listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    pending: dict[socket.socket, bytes] = {}
    held: list[socket.socket] = []
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    requests = 0
    print(f"port {listener.getsockname()[1]}", flush=True)
    while not stopping:
        for key, _ in selector.select(timeout=0.2):
            if key.fileobj is listener:
                try:
                    connection, _ = listener.accept()
                except BlockingIOError:
                    continue
                connection.setblocking(False)
                pending[connection] = b""
                selector.register(connection, selectors.EVENT_READ)
                continue
            connection = key.fileobj
            try:
                chunk = connection.recv(65536)
            except OSError:
                chunk = b""
            data = pending[connection] + chunk
            if chunk and not complete(data):
                pending[connection] = data
                continue
            selector.unregister(connection)
            del pending[connection]
            if chunk:
                requests += 1
                if hang:
                    held.append(connection)
                    continue
                try:
                    connection.sendall(ANSWER)
                except OSError:
                    pass
            connection.close()
    print(f"requests {requests} cpu {time.process_time():.3f}", flush=True)


if __name__ == "__main__":
    serve("--hang" in sys.argv[1:])
