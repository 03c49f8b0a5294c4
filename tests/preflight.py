"""Before the demo or the tests: are MariaDB and RabbitMQ there? If not, say how to start them."""

from __future__ import annotations

import os
import socket
import sys

SERVICES = [
    ("MariaDB", "PMTABOUNCE_TEST_MYSQL_HOST", 3306,
     "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"),
    ("RabbitMQ", "PMTABOUNCE_TEST_AMQP_HOST", 5672, "rabbitmq-server -detached"),
]


def main() -> int:
    missing = 0
    for name, variable, port, start in SERVICES:
        host = os.environ.get(variable, "127.0.0.1")
        try:
            socket.create_connection((host, port), timeout=3).close()
        except OSError as exc:
            print(f"{name} is not reachable at {host}:{port} ({exc.strerror or exc}).", file=sys.stderr)
            print(f"  start it with: {start}", file=sys.stderr)
            missing += 1
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
