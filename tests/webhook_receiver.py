"""A webhook receiver on loopback for tests: records every request's raw bytes and answers as told.

    receiver = WebhookReceiver().up()            # a free port on 127.0.0.1 (or `port=`; `tls=` for https)
    receiver.url("/hook")                        # http://127.0.0.1:<port>/hook
    receiver.answer(500, b"busy")                # every later request gets this (default 200 "ok")
    receiver.hang()                              # read the request, never answer (until down())
    receiver.reset()                             # read the request, then drop the connection (TCP RST)
    receiver.down(); receiver.up()               # port closed, then open again on the same port
    receiver.wait_for(2)                         # the first two requests' raw bytes, waiting for them

Not product, so not in the wheel.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
from http import HTTPStatus


class WebhookReceiver:
    """An HTTP/1.1 server on 127.0.0.1 that keeps each request as raw bytes (request line, headers, body)."""

    def __init__(self, port: int = 0, *, tls: ssl.SSLContext | None = None) -> None:
        self.port = port
        self.tls = tls
        self.requests: list[bytes] = []
        self._status, self._body, self._mode = 200, b"ok", "answer"
        self._raw_reply: bytes | None = None
        self._listener: socket.socket | None = None
        self._stopped = threading.Event()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)

    def up(self) -> WebhookReceiver:
        """Listen (again) on the port: a free one the first time, the same one after down()."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener, self._stopped = listener, threading.Event()
        threading.Thread(target=self._accept, args=(listener, self._stopped), daemon=True).start()
        return self

    def down(self) -> None:
        """Close the port (a connection is refused) and every open connection (a hanging one included)."""
        self._stopped.set()
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not, on Linux)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            for connection in list(self._open):
                _close(connection)
            self._open.clear()

    def url(self, path: str = "/hook", scheme: str | None = None) -> str:
        return f"{scheme or ('https' if self.tls else 'http')}://127.0.0.1:{self.port}{path}"

    def answer(self, status: int = 200, body: bytes = b"ok") -> None:
        self._status, self._body, self._mode, self._raw_reply = status, body, "answer", None

    def answer_raw(self, reply: bytes) -> None:
        """Send these bytes as they are (a chunked answer, something that is not HTTP), then close."""
        self._mode, self._raw_reply = "answer", reply

    def hang(self) -> None:
        self._mode = "hang"

    def reset(self) -> None:
        self._mode = "reset"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[bytes]:
        """The first `count` requests received, waiting up to `timeout` seconds; AssertionError if fewer came."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"{len(self.requests)} requests arrived, not {count}")
            return self.requests[:count]

    def _accept(self, listener: socket.socket, stopped: threading.Event) -> None:
        while not stopped.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self._open.add(connection)
            threading.Thread(target=self._serve, args=(connection, stopped), daemon=True).start()

    def _serve(self, connection: socket.socket, stopped: threading.Event) -> None:
        try:
            if self.tls is not None:
                connection = self.tls.wrap_socket(connection, server_side=True)
                with self._lock:
                    self._open.add(connection)
            raw = _read_request(connection)
            with self._arrived:
                self.requests.append(raw)
                self._arrived.notify_all()
            if self._mode == "hang":
                stopped.wait()
            elif self._mode == "reset":
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif self._raw_reply is not None:
                connection.sendall(self._raw_reply)
            else:
                reason = HTTPStatus(self._status).phrase if self._status in HTTPStatus._value2member_map_ else "X"
                connection.sendall(f"HTTP/1.1 {self._status} {reason}\r\nContent-Length: {len(self._body)}\r\n"
                                   "Connection: close\r\n\r\n".encode() + self._body)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(connection)
            _close(connection)


def _read_request(connection: socket.socket) -> bytes:
    """The request's bytes: up to the blank line, then Content-Length bytes of body."""
    data = b""
    deadline = time.monotonic() + 10
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk or time.monotonic() > deadline:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _close(connection: socket.socket) -> None:
    try:
        connection.close()
    except OSError:
        pass
