"""A loopback HTTP receiver for webhook tests: records every request's raw bytes, answers 200, 500 (with a
body) or hangs, and can be down (port closed) and come back on the same port.
Stand-in written against EVENTS-INTERFACE.md until the php helper's fixture lands."""

from __future__ import annotations

import socket
import threading
import time


class WebhookReceiver:
    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.status = 200
        self.answer = b"ok"
        self.hang = False
        self.port = 0
        self._server: socket.socket | None = None
        self._lock = threading.Lock()
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def up(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(50)
        self.port = server.getsockname()[1]
        self._server = server
        threading.Thread(target=self._serve, args=(server,), daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            try:
                self._server.shutdown(socket.SHUT_RDWR)  # wakes the thread in accept(); close alone does not
            except OSError:
                pass
            self._server.close()
            self._server = None

    def bodies(self) -> list[bytes]:
        with self._lock:
            return [raw.split(b"\r\n\r\n", 1)[1] for raw in self.requests]

    def _serve(self, server: socket.socket) -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            while len(body) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                body += chunk
            with self._lock:
                self.requests.append(head + b"\r\n\r\n" + body)
            if self.hang:
                time.sleep(30)
                return
            reason = b"OK" if self.status == 200 else b"Error"
            conn.sendall(b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                         % (self.status, reason, len(self.answer), self.answer))
