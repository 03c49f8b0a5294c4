"""This process's name among its peers: in the RabbitMQ console, consumer tags, dead letters and logs."""

from __future__ import annotations

import os
import secrets
import socket

_SUFFIX = secrets.token_hex(3)  # once per process: workers in containers on one host share host name and pid 1


def instance_name() -> str:
    """`HOST:PID:SUFFIX`, e.g. `mx1:4711:3f9a2c`; SUFFIX is random per process, so two containerised workers
    with host networking (same host name, both pid 1) are still two names."""
    return f"{socket.gethostname()}:{os.getpid()}:{_SUFFIX}"


def consumer_tag(role: str) -> str:
    """The consumer tag of this process's consumer (`pmtabounce-worker@HOST:PID:SUFFIX`): the console's
    consumer list then says which worker holds which messages, where pika's default is `ctag1.<uuid>`."""
    return f"pmtabounce-{role}@{instance_name()}"
