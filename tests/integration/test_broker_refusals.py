"""A wrong PMTABOUNCE_AMQP_URL through a real connection: every command that talks to RabbitMQ stops at once
(exit 1) with a line naming the variable, its password masked, and what is wrong. A command that retried
forever instead runs into the subprocess timeout and fails the test."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from worker_fleet import worker_env

PASSWORD = "wrong" + uuid.uuid4().hex[:8]
ATTEMPT_SECONDS = 30  # far more than a refusal takes; a retry loop's 10 attempts with backoff take longer


def commands(tmp_path) -> dict[str, list[str]]:
    (tmp_path / "bounces").mkdir()
    (tmp_path / "empty.jsonl").write_text("")
    return {
        "producer --once": ["producer", "--once", str(tmp_path / "bounces")],
        "worker": ["worker"],
        "setup": ["setup"],
        "status": ["status", str(tmp_path / "bounces"), "--json"],
        "dlq list": ["dlq", "list"],
        "dlq show": ["dlq", "show", "0123456789abcdef"],
        "dlq export": ["dlq", "export", str(tmp_path / "out.jsonl")],
        "dlq import": ["dlq", "import", str(tmp_path / "empty.jsonl")],
        "dlq replay": ["dlq", "replay", "--yes"],
        "dlq purge": ["dlq", "purge", "--yes"],
    }


COMMANDS = ["producer --once", "worker", "setup", "status", "dlq list", "dlq show", "dlq export", "dlq import",
            "dlq replay", "dlq purge"]


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pmtabounce", *args], env=env, capture_output=True, text=True,
                          timeout=ATTEMPT_SECONDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_wrong_password_stops_every_command_at_once(command, iem_db, vhost, tmp_path):
    url = f"amqp://guest:{PASSWORD}@127.0.0.1:5672/{vhost.name}"
    done = run(commands(tmp_path)[command], worker_env(iem_db.url, url))
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert f"PMTABOUNCE_AMQP_URL=amqp://guest:****@127.0.0.1:5672/{vhost.name}" in said
    assert "password" in said and "Traceback" not in said
    assert PASSWORD not in said


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unknown_virtual_host_stops_every_command_at_once(command, iem_db, tmp_path):
    missing = f"pmtt-missing-{uuid.uuid4().hex[:8]}"
    done = run(commands(tmp_path)[command], worker_env(iem_db.url, f"amqp://guest:guest@127.0.0.1:5672/{missing}"))
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert f"PMTABOUNCE_AMQP_URL=amqp://guest:****@127.0.0.1:5672/{missing}" in said
    assert "virtual host" in said and "Traceback" not in said


def test_setup_names_the_queue_and_the_argument_that_differs(iem_db, vhost, tmp_path):
    url = vhost.url
    assert run(["setup"], worker_env(iem_db.url, url)).returncode == 0
    # A changed delivery limit is the queue's policy now: setup again simply applies it.
    assert run(["setup"], worker_env(iem_db.url, url, delivery_limit=7)).returncode == 0
    connection, channel = vhost.channel()  # what no setting can change: the queue's type
    channel.queue_delete(vhost.topology.queue)
    channel.queue_declare(vhost.topology.queue, durable=True, arguments={"x-queue-type": "classic"})
    connection.close()
    done = run(["setup"], worker_env(iem_db.url, url))
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert "'pmtabounce.bounces'" in said and "x-queue-type" in said
    assert "delete_queue" in said and "Traceback" not in said
