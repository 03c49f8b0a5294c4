"""Operator commands refuse a bad path before acting: an unwritable PMTABOUNCE_DLQ_AUDIT_FILE;
`dlq export` creates FILE only once connected."""

from __future__ import annotations

import subprocess
import sys

import pika
from dlq_world import make_world
from worker_fleet import worker_env

BAD_AUDIT_FILE = "/nonexistent/dir/audit.log"


def run(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pmtabounce", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_dlq_purge_with_an_unwritable_audit_file_refuses_and_removes_nothing(iem_db, vhost, tmp_path):
    world = make_world(iem_db, vhost, tmp_path)
    world.publish_raw([(b"not a bounce", pika.BasicProperties(delivery_mode=2))])
    world.run_worker()
    env = {**world.env(), "PMTABOUNCE_DLQ_AUDIT_FILE": BAD_AUDIT_FILE}
    done = run(env, "dlq", "purge", "--yes")
    assert done.returncode == 2, done.stderr
    assert f"PMTABOUNCE_DLQ_AUDIT_FILE={BAD_AUDIT_FILE}" in done.stderr and "nothing was done" in done.stderr
    assert vhost.queue_depth(vhost.topology.dead_queue) == 1
    assert world.dlq("purge", "--yes").returncode == 0  # with the good file it acts, and writes its line
    assert '"purge"' in world.audit_file.read_text()


def test_guard_trip_with_an_unwritable_audit_file_refuses_and_trips_nothing(iem_db):
    env = worker_env(iem_db.url, "amqp://unused@127.0.0.1/unused", table_prefix=iem_db.tables.prefix,
                     dlq_audit_file=BAD_AUDIT_FILE)
    assert run(env, "setup", "--no-broker").returncode == 0
    done = run(env, "guard", "trip", "example.com")
    assert done.returncode == 2 and "PMTABOUNCE_DLQ_AUDIT_FILE" in done.stderr, done.stderr
    assert iem_db.query("SELECT COUNT(*) FROM {t.audit}") == [(0,)]


def test_dlq_export_that_cannot_connect_leaves_no_file_so_the_retry_is_not_refused(vhost, tmp_path):
    export = tmp_path / "dead.jsonl"
    wrong = vhost.url.replace("guest:guest@", "guest:wrong-password@")
    assert wrong != vhost.url
    failed = run(worker_env("mysql://unused@127.0.0.1/unused", wrong), "dlq", "export", str(export))
    assert failed.returncode == 1 and "PMTABOUNCE_AMQP_URL" in failed.stderr, failed.stderr
    assert not export.exists()
    assert run(worker_env("mysql://unused@127.0.0.1/unused", vhost.url), "setup", "--no-database",
               "--no-policy").returncode == 0
    again = run(worker_env("mysql://unused@127.0.0.1/unused", vhost.url), "dlq", "export", str(export))
    assert again.returncode == 0, again.stderr
    assert export.read_text() == ""
