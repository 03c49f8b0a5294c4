"""Operator commands refuse a bad path before acting: an unwritable PMTABOUNCE_DLQ_AUDIT_FILE;
`dlq export` creates FILE only once connected."""

from __future__ import annotations

import json
import os
import pwd
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
    assert '"dlq purge"' in world.audit_file.read_text()


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


def test_every_audit_line_has_one_schema_naming_who_why_and_where(iem_db, vhost, tmp_path):
    # Issue 16 item 11: the sudo user (the OS user kept beside it), the MySQL account, the reason, the database.
    world = make_world(iem_db, vhost, tmp_path)
    world.publish_raw([(b"not a bounce", pika.BasicProperties(delivery_mode=2))])
    world.run_worker()
    env = {**world.env(), "SUDO_USER": "alice"}
    assert run(env, "guard", "trip", "example.com", "--reason", "provider status page, ticket 4711").returncode == 0
    assert run(env, "dlq", "purge", "--yes", "--why", "junk from a test sender").returncode == 0
    trip, purge = [json.loads(line) for line in world.audit_file.read_text().splitlines()]

    assert set(trip) == set(purge) == {"at", "action", "by", "os_user", "host", "account", "where", "reason",
                                       "target", "counts", "run"}
    assert (trip["action"], trip["by"], trip["reason"], trip["target"], trip["counts"]) == (
        "guard trip", "alice", "provider status page, ticket 4711", {"domain": "example.com"}, {"tripped": 1})
    assert trip["os_user"] == pwd.getpwuid(os.getuid()).pw_name and trip["account"].startswith("root@")
    assert trip["where"] == f"mysql://root@127.0.0.1:3306/{iem_db.name} (tables {iem_db.tables.prefix})"
    assert (purge["action"], purge["by"], purge["reason"], purge["counts"], purge["account"], purge["run"]) == (
        "dlq purge", "alice", "junk from a test sender", {"removed": 1}, "guest", None)
    assert purge["where"].endswith(f"/{vhost.name}")
    assert iem_db.query("SELECT operator, account, reason FROM {t.audit}") == [
        (f"alice@{trip['host']} (sudo, as {trip['os_user']})", trip["account"], trip["reason"])]


def test_with_a_reason_required_an_action_without_one_does_nothing(iem_db, vhost, tmp_path):
    world = make_world(iem_db, vhost, tmp_path)
    env = {**world.env(), "PMTABOUNCE_AUDIT_REQUIRE_REASON": "on"}
    for argv in (("guard", "trip", "example.com"), ("undo", "--domain", "example.com", "--yes"),
                 ("dlq", "purge", "--yes"), ("guard", "trip", "example.com", "--reason", " ")):
        done = run(env, *argv)
        assert done.returncode == 2 and "PMTABOUNCE_AUDIT_REQUIRE_REASON is on" in done.stderr, (argv, done.stderr)
    assert iem_db.query("SELECT COUNT(*) FROM {t.audit}") == [(0,)] and world.audit_file.read_text() == ""
    assert run(env, "undo", "--domain", "example.com", "--dry-run").returncode == 0  # changes nothing: no reason
    assert run(env, "guard", "trip", "example.com", "--reason", "ticket 4712").returncode == 0
    assert iem_db.query("SELECT reason FROM {t.audit}") == [("ticket 4712",)]


def test_a_reason_with_a_newline_is_refused_before_anything_is_done(iem_db, vhost, tmp_path):
    """A newline in --reason/--why could forge a line of the plain-text log the audit line also goes to."""
    world = make_world(iem_db, vhost, tmp_path)
    for argv in (("guard", "trip", "example.com", "--reason", "ticket 1\nINFO forged line"),
                 ("dlq", "purge", "--yes", "--why", "x\r\x1b[2K")):
        done = run(world.env(), *argv)
        assert done.returncode == 2 and "one line of printable text" in done.stderr, (argv, done.stderr)
    assert iem_db.query("SELECT COUNT(*) FROM {t.audit}") == [(0,)] and not world.audit_file.exists()
