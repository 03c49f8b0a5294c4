"""Before the demo or the tests (the Makefile runs it): are MariaDB and RabbitMQ there? If not, say how to start
them. It checks the servers the tests use (PMTABOUNCE_TEST_MYSQL_URL, PMTABOUNCE_TEST_AMQP_URL; by default
127.0.0.1), which are also the demo's defaults. Exit status 1 if either is not reachable."""

from __future__ import annotations

import socket
import sys
from urllib.parse import urlsplit

from throwaway import AMQP_URL, MYSQL_URL

SERVICES = [
    ("MariaDB", MYSQL_URL, 3306, "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"),
    ("RabbitMQ", AMQP_URL, 5672, "rabbitmq-server -detached"),
]


def main() -> int:
    missing = 0
    for name, url, default_port, start in SERVICES:
        where = urlsplit(url)
        host, port = where.hostname or "127.0.0.1", where.port or default_port
        try:
            socket.create_connection((host, port), timeout=3).close()
        except OSError as exc:
            print(f"{name} is not reachable at {host}:{port} ({exc.strerror or exc}).", file=sys.stderr)
            print(f"  start it with: {start}", file=sys.stderr)
            missing += 1
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
