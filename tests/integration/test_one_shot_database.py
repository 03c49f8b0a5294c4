"""An operator's command on a database it cannot use fails at once (issue 16 item 5): exit 1 within
seconds, naming the URL without its password, whether the port refuses or a partition leaves it silent.
Before store/database.py's ONE_SHOT, `undo` waited up to 10 minutes in silence, and `guard status`,
`explain` and `prune` 60 s (PyMySQL's read timeout) on a silent server."""

from __future__ import annotations

import socket
import subprocess
import time
from types import SimpleNamespace

import pytest
from pmtabounce.store.db import Tables
from storm_world import command
from tcp_proxy import TcpProxy

SECRET = "s3cret-word"
COMMANDS = [
    ("undo", "--email", "ann@example.com", "--dry-run"),
    ("undo", "--email", "ann@example.com", "--yes"),
    ("guard", "status"),
    ("explain", "ann@example.com"),
    ("prune", "--older-than", "30d"),
    ("webhooks", "list"),
    ("relay", "--once", "3"),  # cron's relay: it said "0 events handled" and exited 0, or waited 60 s on a silent one
]


def free_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return listener.getsockname()[1]


@pytest.fixture(params=["refused", "silent"])
def dead_url(request):
    if request.param == "refused":
        yield f"mysql://root:{SECRET}@127.0.0.1:{free_port()}/test"
        return
    proxy = TcpProxy("127.0.0.1", 3306)
    proxy.black_hole()
    try:
        yield f"mysql://root:{SECRET}@127.0.0.1:{proxy.port}/test"
    finally:
        proxy.close()


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(a[:2]) for a in COMMANDS])
def test_a_one_shot_command_fails_within_seconds_naming_the_url_without_its_password(args, dead_url, tmp_path):
    db = SimpleNamespace(url=dead_url, tables=Tables())
    argv, env = command(db, *args, dlq_audit_file=str(tmp_path / "audit.log"))
    started = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    took = time.monotonic() - started

    assert done.returncode == 1, done.stdout + done.stderr
    assert took < 20, f"{' '.join(args)} took {took:.0f} s"
    port = dead_url.rsplit(":", 1)[1].split("/")[0]
    assert f"mysql://root@127.0.0.1:{port}/test" in done.stderr, done.stderr
    assert SECRET not in done.stdout + done.stderr
