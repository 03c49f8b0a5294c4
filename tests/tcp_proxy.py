"""A TCP proxy a test owns, between a process and MariaDB or RabbitMQ, so the test can cut
the connection (an outage) while the shared server keeps running for everyone else.

Given more than one target it is a small load balancer (as haproxy in TCP mode in front of a
RabbitMQ cluster): each new connection goes to the next target in turn that accepts it."""

from __future__ import annotations

import socket
import threading


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *more: tuple[str, int]) -> None:
        self.target = (target_host, target_port)
        self.targets = [self.target, *more]
        self._turn = 0
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._silent = threading.Event()
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._closed = False
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def url_for(self, url: str) -> str:
        """`url` with its host:port replaced by the proxy's."""
        scheme, rest = url.split("://", 1)
        creds, _, tail = rest.rpartition("@")
        _, _, path = tail.partition("/")
        head = f"{creds}@" if creds else ""
        return f"{scheme}://{head}127.0.0.1:{self.port}/{path}"

    def cut(self) -> None:
        """Drop every open connection and refuse new ones until restore()."""
        self._open.clear()
        with self._lock:
            for sock in list(self._sockets):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._sockets.clear()

    def black_hole(self) -> None:
        """A network partition: connections stay open, new ones are accepted, and nothing answers
        (what is sent either way is dropped) until restore()."""
        self._silent.set()

    def restore(self) -> None:
        self._silent.clear()
        self._open.set()

    def close(self) -> None:
        self._closed = True
        self.cut()
        with self._lock:
            for sock in self._held:
                sock.close()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._open.is_set():
                client.close()
                continue
            if self._silent.is_set():
                with self._lock:
                    self._held.append(client)
                continue
            upstream = self._upstream()
            if upstream is None:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
                self.connections += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _upstream(self) -> socket.socket | None:
        """A connection to the next target that accepts one, or None."""
        for _ in range(len(self.targets)):
            target = self.targets[self._turn % len(self.targets)]
            self._turn += 1
            try:
                upstream = socket.create_connection(target, timeout=5)
            except OSError:
                continue
            upstream.settimeout(None)
            return upstream
        return None

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if not self._silent.is_set():
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
                with self._lock:
                    self._sockets.discard(sock)
