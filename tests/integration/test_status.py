"""`pmtabounce status` against the real RabbitMQ (and its management API) and MariaDB."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid

import pika
import pytest
from pmtabounce.common.broker import setup_broker
from pmtabounce.common.config import parse_mysql_url
from pmtabounce.common.record import BounceRecord
from rabbit_management import ensure_management_api
from tcp_proxy import TcpProxy
from throwaway import rabbitmqctl
from worker_fleet import publish, wait_for, worker_env


@pytest.fixture(scope="module")
def api_url() -> str:
    return ensure_management_api()


def status(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pmtabounce", "status", *args], env={**env, "COLUMNS": "200"},
                          capture_output=True, text=True, timeout=60)


def status_json(env: dict[str, str]) -> tuple[int, dict]:
    done = status(env, "--json")
    return done.returncode, json.loads(done.stdout)


def bounces(count: int) -> list[BounceRecord]:
    return [BounceRecord("b", 1_732_000_000 + n, f"user{n}@example.com", "5.1.1", "smtp;550 unknown",
                         "bad-mailbox", (1,), 0, "bounces-1.csv", n + 2) for n in range(count)]


def add_ledger_rows(db, *rows: tuple[str, int]) -> None:
    """(outcome, seconds ago) rows, as if workers had applied records then."""
    db.execute_many(
        "INSERT INTO {t.ledger} (fingerprint, record_type, time_logged, email, dsn_diag, decision, outcome, "
        "applied_at) VALUES (%s, 'b', 1732000000, 'x@example.com', '', 'hard', %s, NOW(6) - INTERVAL %s SECOND)",
        [(f"{n:032x}", outcome, ago) for n, (outcome, ago) in enumerate(rows)],
    )


def pending(directory, *names_and_ages: tuple[str, int]) -> None:
    for name, ago in names_and_ages:
        path = directory / name
        path.write_text("type,rcpt\r\n")
        os.utime(path, (time.time() - ago, time.time() - ago))


@pytest.mark.parametrize("api_set", [True, False], ids=["PMTABOUNCE_RABBITMQ_API_URL", "default-api-url"])
def test_status_shows_files_queue_unacked_consumers_dead_letters_and_ledger(iem_db, vhost, tmp_path, api_url,
                                                                             api_set):
    setup_broker(iem_db.settings(amqp_url=vhost.url))
    pending(tmp_path, ("bounces-2.csv", 30), ("bounces-10.csv", 600), ("bounces-1.csv.done", 9000))
    publish(vhost.url, vhost.topology, bounces(5))
    connection, channel = vhost.channel()
    channel.basic_publish(vhost.topology.dead_exchange, vhost.topology.routing_key, b"{}",
                          pika.BasicProperties(delivery_mode=2))
    # A consumer that holds two messages unacked, as a busy worker would.
    channel.basic_qos(prefetch_count=2)
    channel.basic_consume(vhost.topology.queue, lambda *a: None)
    connection.process_data_events(time_limit=0.5)
    add_ledger_rows(iem_db, ("applied", 10), ("applied", 20), ("disabled", 5), ("not_found", 7200),
                    ("disabled", 3 * 86400))
    # Unset, the API is found where setup finds it: the AMQP host on port 15672, with the AMQP login.
    env = worker_env(iem_db.url, vhost.url, bounce_dir=tmp_path, **({"rabbitmq_api_url": api_url} if api_set else {}))
    try:
        # The management API's statistics are refreshed every few seconds: wait for them to show the consumer.
        wait_for(lambda: status_json(env)[1]["queue"]["unacked"] == 2, "the API to count 2 unacked", 30)
        code, report = status_json(env)
    finally:
        connection.close()

    assert code == 0 and report["ok"] is True
    assert report["bounce_dir"]["pending_files"] == 2
    assert 590 <= report["bounce_dir"]["oldest_pending_age_seconds"] < 900
    queue = report["queue"]
    assert (queue["name"], queue["ready"], queue["unacked"], queue["consumers"]) == ("pmtabounce.bounces", 3, 2, 1)
    node = queue["leader"]  # the one node of the services' broker, a quorum queue's only member
    assert report["dead_letter"] == {"state": "ok", "name": "pmtabounce.dead-letter", "messages": 1,
                                     "leader": node, "members": [node], "online": [node]}
    ledger = report["ledger"]
    assert ledger["last_hour"] == {"applied": 2, "disabled": 1, "already_bounced": 0, "not_found": 0,
                                   "unroutable": 0, "held": 0, "discarded": 0, "duplicate": 0}
    assert ledger["last_day"]["not_found"] == 1 and ledger["last_day"]["disabled"] == 1
    assert 0 <= ledger["last_applied_age_seconds"] < 60 and ledger["last_applied_at"].endswith("Z")
    assert 3 * 86400 <= ledger["oldest_age_seconds"] < 3 * 86400 + 60 and ledger["oldest_at"].endswith("Z")
    assert isinstance(ledger["rows_estimate"], int)  # InnoDB's estimate, not a count
    assert "guest" not in json.dumps(report)  # URLs are shown without credentials


@pytest.fixture
def untagged_login(vhost):
    """An AMQP URL for a user with every permission on `vhost` but no tag: the management API answers it 401."""
    name, password = f"pmtt-untagged-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    rabbitmqctl("add_user", name, password)
    rabbitmqctl("set_permissions", "-p", vhost.name, name, ".*", ".*", ".*")
    try:
        yield f"amqp://{name}:{password}@127.0.0.1:5672/{vhost.name}"
    finally:
        rabbitmqctl("delete_user", name, check=False)


def test_without_the_management_api_unacked_is_unknown_and_a_database_outage_is_reported(iem_db, vhost, tmp_path,
                                                                                       untagged_login):
    setup_broker(iem_db.settings(amqp_url=vhost.url))
    target = parse_mysql_url(iem_db.url)
    proxy = TcpProxy(target.host, target.port)
    proxy.cut()
    try:
        env = worker_env(proxy.url_for(iem_db.url), untagged_login, bounce_dir=tmp_path)
        code, report = status_json(env)
        text = status(env)
    finally:
        proxy.close()

    assert code == 1 and report["ok"] is False
    assert report["queue"]["state"] == "ok" and report["queue"]["unacked"] is None
    assert "PMTABOUNCE_RABBITMQ_API_URL" in report["queue"]["unacked_note"]
    assert report["ledger"]["state"] == "down"
    assert report["ledger"]["problem"].startswith("cannot reach the database at mysql://root@127.0.0.1:")
    assert report["bounce_dir"] == {"state": "ok", "path": str(tmp_path), "pending_files": 0,
                                    "oldest_pending_age_seconds": None, "writable": True}
    assert text.returncode == 1
    assert "down" in text.stdout and "cannot reach the database" in text.stdout and "unknown unacked" in text.stdout


def test_a_broker_outage_is_reported_and_the_database_part_still_shows(iem_db, vhost, tmp_path):
    proxy = TcpProxy("127.0.0.1", 5672)
    proxy.cut()
    try:
        env = worker_env(iem_db.url, proxy.url_for(vhost.url), bounce_dir=tmp_path / "missing")
        code, report = status_json(env)
    finally:
        proxy.close()

    assert code == 1
    assert report["queue"]["state"] == "down"
    assert report["queue"]["problem"].startswith(f"cannot reach RabbitMQ at amqp://127.0.0.1:{proxy.port}/")
    assert report["dead_letter"]["state"] == "down"
    assert report["bounce_dir"]["state"] == "down" and "cannot read" in report["bounce_dir"]["problem"]
    assert report["ledger"]["state"] == "ok" and report["ledger"]["last_applied_at"] is None


def test_a_management_api_that_does_not_answer_is_down_but_ready_and_consumers_still_show(iem_db, vhost):
    setup_broker(iem_db.settings(amqp_url=vhost.url))
    api = TcpProxy("127.0.0.1", 15672)
    api.cut()
    try:
        code, report = status_json(worker_env(iem_db.url, vhost.url,
                                              rabbitmq_api_url=f"http://guest:guest@127.0.0.1:{api.port}"))
    finally:
        api.close()

    assert code == 1
    queue = report["queue"]
    assert queue["state"] == "down" and (queue["ready"], queue["consumers"], queue["unacked"]) == (0, 0, None)
    assert queue["problem"].startswith(f"cannot reach the management API at http://127.0.0.1:{api.port}/")
    assert report["dead_letter"]["state"] == "ok"


def test_a_vhost_without_the_topology_says_to_run_setup(iem_db, vhost):
    code, report = status_json(worker_env(iem_db.url, vhost.url))
    assert code == 1
    assert report["queue"]["problem"] == "queue pmtabounce.bounces does not exist (run `pmtabounce setup`)"
    assert report["bounce_dir"]["state"] == "not used"  # fleet mode: a worker host has no bounce directory


def test_complaints_are_counted_by_outcome_apart_from_bounces(iem_db, tmp_path):
    add_ledger_rows(iem_db, ("disabled", 5), ("not_found", 5))
    iem_db.execute_many(
        "INSERT INTO {t.ledger} (fingerprint, record_type, time_logged, email, dsn_diag, decision, outcome, "
        "applied_at) VALUES (%s, 'f', 1732000000, 'x@example.com', '', 'all', %s, NOW(6) - INTERVAL %s SECOND)",
        [(f"c{n:031x}", outcome, ago) for n, (outcome, ago) in enumerate(
            [("unsubscribed", 5), ("unsubscribed", 7200), ("not_found", 5), ("ignored", 5), ("unroutable", 9)])],
    )
    # Records met again: the bounce disabled 5 s ago 4 times, the complaints 3 and 5 times.
    iem_db.execute_many("UPDATE {t.ledger} SET seen_count = %s WHERE fingerprint = %s",
                        [(4, f"{0:032x}"), (3, f"c{0:031x}"), (5, f"c{1:031x}")])
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMTABOUNCE_")}
    env.update(PMTABOUNCE_MYSQL_URL=iem_db.url, PMTABOUNCE_BOUNCE_DIR=str(tmp_path))
    _, report = status_json(env)
    ledger = report["ledger"]
    assert ledger["last_hour"] == {"applied": 0, "disabled": 1, "already_bounced": 0, "not_found": 1,
                                   "unroutable": 0, "held": 0, "discarded": 0, "duplicate": 3}
    assert ledger["complaints_last_hour"] == {"unsubscribed": 1, "not_found": 1, "unroutable": 1, "ignored": 1,
                                              "duplicate": 2}
    assert ledger["complaints_last_day"]["unsubscribed"] == 2 and ledger["complaints_last_day"]["duplicate"] == 6
    text = status(env).stdout
    assert "complaints applied (ledger)" in text and "unsubscribed" in text
    assert re.search(r"duplicate\W+3\W+3", text) and re.search(r"duplicate\W+2\W+6", text)


def test_nothing_configured_is_not_ok(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMTABOUNCE_")}
    code, report = status_json(env)
    assert code == 1 and report["ok"] is False
    assert {report[part]["state"] for part in ("bounce_dir", "ledger")} == {"not configured"}
    assert {report[part]["state"] for part in ("queue", "dead_letter")} == {"not used"}  # inline mode
    assert report["ledger"]["problem"] == "PMTABOUNCE_MYSQL_URL is not set"


def test_inline_status_exits_0_when_the_directory_and_the_database_are_well(iem_db, tmp_path):
    """Inline mode (no PMTABOUNCE_AMQP_URL) has no queue: it once counted as 'not configured', so never 0."""
    pending(tmp_path, ("b-1.csv", 60))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMTABOUNCE_")}
    env.update(PMTABOUNCE_MYSQL_URL=iem_db.url, PMTABOUNCE_BOUNCE_DIR=str(tmp_path))
    code, report = status_json(env)
    assert code == 0 and report["ok"] is True, report
    assert report["queue"] == {"state": "not used", "note": "inline mode: PMTABOUNCE_AMQP_URL is not set"}
    assert (report["bounce_dir"]["state"], report["bounce_dir"]["pending_files"]) == ("ok", 1)
    assert status(env).returncode == 0
    env["PMTABOUNCE_MYSQL_URL"] = iem_db.url + "_missing"
    assert status_json(env)[0] == 1  # a part it needs is down


def test_fleet_status_on_a_worker_host_needs_no_bounce_directory(iem_db, vhost):
    setup_broker(iem_db.settings(amqp_url=vhost.url))
    code, report = status_json(worker_env(iem_db.url, vhost.url))
    assert report["bounce_dir"]["state"] == "not used" and code == 0, report


def test_a_backlog_that_no_worker_consumes_is_a_problem(iem_db, vhost, tmp_path):
    setup_broker(iem_db.settings(amqp_url=vhost.url))
    publish(vhost.url, vhost.topology, bounces(4))
    env = worker_env(iem_db.url, vhost.url, bounce_dir=tmp_path)
    code, report = status_json(env)
    text = status(env)
    assert code == 1 and report["ok"] is False
    queue = report["queue"]
    assert (queue["state"], queue["ready"], queue["consumers"]) == ("not consumed", 4, 0)
    assert queue["problem"] == "4 messages wait and no worker consumes them (start `pmtabounce worker`)"
    assert text.returncode == 1 and "no worker consumes them" in text.stdout


def test_a_symbolic_link_is_not_counted_as_pending_and_is_named(tmp_path):
    pending(tmp_path, ("b-1.csv", 60))
    (tmp_path / "b-2.csv").symlink_to(tmp_path / "b-1.csv")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMTABOUNCE_")}
    env["PMTABOUNCE_BOUNCE_DIR"] = str(tmp_path)
    _, report = status_json(env)
    assert report["bounce_dir"]["pending_files"] == 1
    assert report["bounce_dir"]["links_skipped"] == ["b-2.csv"]
    assert "symbolic links skipped (never read): b-2.csv" in status(env).stdout


def test_a_directory_argument_this_user_cannot_read_is_down_exit_1_not_a_usage_error(iem_db, tmp_path, monkeypatch):
    """docs/operations.md: the directory is down if this user cannot list and read it, and status exits 1.
    Click's own readable check made it a usage error (exit 2) before status looked. Tests run as root, who
    reads every directory, so the kernel's answer is stood in for."""
    from click.testing import CliRunner

    from pmtabounce.cli import main

    real_access = os.access
    unreadable = str(tmp_path)

    def access(path, mode, **kwargs):
        if os.fspath(path) == unreadable and mode & os.R_OK:
            return False
        return real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    for name in [k for k in os.environ if k.startswith("PMTABOUNCE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PMTABOUNCE_MYSQL_URL", iem_db.url)
    done = CliRunner().invoke(main, ["status", unreadable, "--json"])
    assert done.exit_code == 1, done.output
    report = json.loads(done.output)
    assert report["bounce_dir"]["state"] == "down" and "not readable" in report["bounce_dir"]["problem"]
