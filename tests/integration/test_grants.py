"""deploy/mysql/grants.sql is enough and no more: setup, `process` and a worker run as its user and
leave the database exactly as root would, and statements outside the grants are refused."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from string import Template

import pymysql
import pytest
from conftest import SAMPLES, drop_database, make_database
from iem_seed import snapshot
from pmtabounce.common.config import parse_mysql_url
from service_admin import as_root
from worker_fleet import Fleet, publish, records_of, worker_env

DEPLOY = Path(__file__).parents[2] / "deploy"
GRANTS = DEPLOY / "mysql" / "grants.sql"


def render(**values: str) -> str:
    """grants.sql with its placeholders filled; a placeholder left unnamed raises KeyError."""
    return render_file(GRANTS, **values)


def render_file(path: Path, **values: str) -> str:
    """A grants file with its placeholders filled."""
    return Template(path.read_text()).substitute(values)


def statements(sql: str) -> list[str]:
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


def seed(db) -> None:
    """The demo rows of deploy/mysql/demo-seed.sql: the subscribers the sample files bounce."""
    connection = db.connect()
    with connection.cursor() as cursor:
        for statement in statements((DEPLOY / "mysql" / "demo-seed.sql").read_text()):
            cursor.execute(statement)
    connection.commit()
    connection.close()


@pytest.fixture
def granted():
    """A seeded IEM database without our tables, and a user holding exactly grants.sql on it."""
    db = make_database()
    user, password = f"pmtt_{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    try:
        db.query("DROP TABLE {t.ledger}, {t.meta}, {t.guard_domains}, {t.guard_windows}, {t.audit}, {t.outbox}, "
                 "{t.outbox_attempts}")
        seed(db)
        for statement in statements(render(IEM_DATABASE=db.name, TABLE_PREFIX="email_", DB_USER=user,
                                           DB_HOST="%", DB_PASSWORD=password)):
            as_root(statement)
        target = parse_mysql_url(db.url)
        yield db, f"mysql://{user}:{password}@{target.host}:{target.port}/{db.name}"
    finally:
        as_root("DROP USER IF EXISTS %s@'%%'", params=(user,))
        drop_database(db)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pmtabounce", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def copy_samples(directory: Path, names: list[str]) -> Path:
    directory.mkdir()
    for name in names:
        shutil.copy(SAMPLES / name, directory / name)
    return directory


def test_setup_process_and_a_worker_run_as_the_granted_user_and_match_a_root_run(granted, vhost, tmp_path):
    db, url = granted
    names = sorted(p.name for p in SAMPLES.glob("*.csv"))
    inline_part, worker_part = names[:3], names[3:]
    env = worker_env(url, vhost.url)

    done = cli(env, "setup")
    assert done.returncode == 0, done.stderr
    done = cli(env, "process", str(copy_samples(tmp_path / "inline", inline_part)))
    assert done.returncode == 0, done.stderr
    publish(vhost.url, vhost.topology, records_of(copy_samples(tmp_path / "queued", worker_part)))
    with Fleet(env, tmp_path) as fleet:
        fleet.start("--exit-when-idle", "1")
        assert fleet.finish() == [0], fleet.log()
    assert "denied" not in done.stderr + fleet.log()

    reference = make_database()
    try:
        seed(reference)
        done = cli(worker_env(reference.url, vhost.url), "process", str(copy_samples(tmp_path / "all", names)))
        assert done.returncode == 0, done.stderr
        assert snapshot(db) == snapshot(reference)
    finally:
        drop_database(reference)
    assert db.query("SELECT bounced > 0 FROM {t.subscribers} WHERE emailaddress = 'john@example.com'") == [(1,)]
    assert db.query("SELECT COUNT(*) FROM {t.ledger}")[0][0] >= 10
    # The complaints sample, through the worker: found by its link (M=803 with its C), unsubscribed.
    assert db.query("SELECT unsubscribed > 0 FROM {t.subscribers} WHERE subscriberid IN (118, 802, 803, 901)") == [
        (1,)] * 4

    # An operator's account: grants.sql plus grants-operator.sql runs `undo` and `explain`.
    target = parse_mysql_url(url)
    for statement in statements(render_file(DEPLOY / "mysql" / "grants-operator.sql", IEM_DATABASE=db.name,
                                            TABLE_PREFIX="email_", DB_USER=target.user, DB_HOST="%",
                                            DB_PASSWORD=target.password)):
        as_root(statement)
    done = cli(env, "undo", "--email", "john@example.com", "--yes", "--json")
    assert done.returncode == 0 and '"subscribers_reenabled": 1' in done.stdout, done.stderr
    done = cli(env, "explain", "john@example.com", "--json")
    assert done.returncode == 0 and '"undone": true' in done.stdout, done.stderr
    assert db.query("SELECT bounced FROM {t.subscribers} WHERE emailaddress = 'john@example.com'") == [(0,)]
    # … and reverts the complaints: it reads and removes the unsubscribe rows they wrote.
    done = cli(env, "undo", "--outcome", "unsubscribed", "--yes", "--json")
    assert done.returncode == 0 and '"subscribers_resubscribed": 4' in done.stdout, done.stderr
    assert db.query("SELECT unsubscribed FROM {t.subscribers} WHERE subscriberid IN (118, 802, 803, 901)") == [
        (0,)] * 4


REFUSED = [
    "ALTER TABLE {t.subscribers} ADD COLUMN pmtt_extra int",
    "DELETE FROM {t.subscribers}",
    "DELETE FROM {t.bounces}",
    "DROP TABLE {t.lists}",
    "UPDATE {t.subscribers} SET emailaddress = 'someone@example.com'",
    "UPDATE {t.lists} SET name = 'renamed'",
    "SELECT bouncepassword FROM {t.lists}",
    "INSERT INTO {t.subscribers} (listid, emailaddress) VALUES (2, 'new@example.com')",
    "SELECT * FROM `email_list_subscribers_unsubscribe`",
    "DELETE FROM {t.ledger}",
    "DROP TABLE {t.ledger}",
]


def test_statements_outside_the_grants_are_refused(granted):
    db, url = granted
    target = parse_mysql_url(url)
    as_root(f"CREATE TABLE {db.tables.ledger} (id int)", database=db.name)  # so DROP and DELETE have a target
    connection = pymysql.connect(host=target.host, port=target.port, user=target.user, password=target.password,
                                 database=target.database)
    results = {}
    try:
        for sql in REFUSED:
            with connection.cursor() as cursor:
                try:
                    cursor.execute(sql.format(t=db.tables))
                    results[sql] = "allowed"
                except pymysql.err.MySQLError as exc:
                    results[sql] = exc.args[0]
    finally:
        connection.close()
    # 1142: the command is denied on the table; 1143: denied on the column.
    assert {sql: code for sql, code in results.items() if code not in (1142, 1143)} == {}


def test_the_compose_init_script_fills_the_placeholders_as_documented(tmp_path):
    capture = tmp_path / "piped.sql"
    stub = tmp_path / "bin" / "mariadb"
    stub.parent.mkdir()
    stub.write_text(f'#!/bin/sh\ncat > "{capture}"\n')
    stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{stub.parent}:{os.environ['PATH']}", "MARIADB_DATABASE": "iem",
           "MARIADB_ROOT_PASSWORD": "root-secret", "DB_PASSWORD": "s3cret"}
    script = (DEPLOY / "mysql" / "compose-grants.sh").read_text().replace("/pmtabounce/grants.sql", str(GRANTS))
    subprocess.run(["sh", "-c", script], env=env, check=True, timeout=30)
    assert capture.read_text() == render(IEM_DATABASE="iem", TABLE_PREFIX="email_", DB_USER="pmtabounce",
                                         DB_HOST="%", DB_PASSWORD="s3cret")


def test_every_grants_file_applies_to_a_fresh_database_before_setup_and_each_account_runs_its_commands(granted):
    # Issue 16 item 15: grants.sql says it may run before `setup`; so may the operator's and prune's files.
    db, url = granted
    target = parse_mysql_url(url)
    prune_user, prune_password = f"{target.user}_p", uuid.uuid4().hex
    try:
        for path, user, password in ((DEPLOY / "mysql" / "grants-operator.sql", target.user, target.password),
                                     (DEPLOY / "mysql" / "grants-prune.sql", prune_user, prune_password)):
            for statement in statements(render_file(path, IEM_DATABASE=db.name, TABLE_PREFIX="email_",
                                                    DB_USER=user, DB_HOST="%", DB_PASSWORD=password)):
                as_root(statement)  # before setup: our tables do not exist yet
        assert db.query("SHOW TABLES LIKE 'email_pmtabounce%%'") == []
        env = worker_env(url, "amqp://unused@127.0.0.1/unused")
        assert cli(env, "setup", "--no-broker").returncode == 0
        operator = cli(env, "guard", "trip", "example.com", "--reason", "grants test")
        assert operator.returncode == 0, operator.stderr
        released = cli(env, "guard", "release", "example.com")
        assert released.returncode == 0, released.stdout + released.stderr
        prune_url = f"mysql://{prune_user}:{prune_password}@{target.host}:{target.port}/{db.name}"
        pruned = cli(worker_env(prune_url, "amqp://unused@127.0.0.1/unused"), "prune", "--older-than", "1d")
        assert pruned.returncode == 0, pruned.stdout + pruned.stderr
        # … and nothing more: the prune account cannot touch an IEM table or the audit.
        connection = pymysql.connect(host=target.host, port=target.port, user=prune_user, password=prune_password,
                                     database=db.name)
        try:
            for sql in ("SELECT emailaddress FROM email_list_subscribers", "DELETE FROM email_pmtabounce_audit",
                        "DROP TABLE email_pmtabounce_ledger"):
                with connection.cursor() as cursor, pytest.raises(pymysql.err.OperationalError) as refused:
                    cursor.execute(sql)
                assert refused.value.args[0] in (1142, 1143), sql
        finally:
            connection.close()
    finally:
        as_root("DROP USER IF EXISTS %s@'%%'", params=(prune_user,))


def test_grants_apply_to_an_iem_before_6_5_1_up_to_its_last_statements_on_the_webhook_tables(tmp_path):
    # An IEM before 6.5.1 has no webhook tables, and a table-level GRANT without CREATE on a missing table
    # fails (error 1146). `mysql < grants.sql` stops at the first error: every other grant must come before.
    db = make_database(webhooks=False)
    user, password = f"pmtt_{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    try:
        seed(db)
        done, refused = [], []
        for statement in statements(render(IEM_DATABASE=db.name, TABLE_PREFIX="email_", DB_USER=user,
                                           DB_HOST="%", DB_PASSWORD=password)):
            try:
                if not refused:  # as the mysql client: nothing after the first error
                    as_root(statement)
                    done.append(statement)
                    continue
            except pymysql.err.ProgrammingError as exc:
                assert exc.args[0] == 1146, exc
            refused.append(statement)
        assert refused and all("webhook" in s for s in refused), refused
        assert not any("webhook" in s for s in done)
        target = parse_mysql_url(db.url)
        env = worker_env(f"mysql://{user}:{password}@{target.host}:{target.port}/{db.name}",
                         "amqp://unused@127.0.0.1/unused")
        assert cli(env, "setup", "--no-broker").returncode == 0
        processed = cli(env, "process", str(copy_samples(tmp_path / "all", ["bounces-2024-11-19-1000.csv"])))
        assert processed.returncode == 0 and "denied" not in processed.stderr, processed.stderr
        assert db.query("SELECT COUNT(*) FROM {t.ledger}")[0][0] > 0
    finally:
        as_root("DROP USER IF EXISTS %s@'%%'", params=(user,))
        drop_database(db)


def test_the_granted_account_sends_and_logs_iems_webhooks_and_the_operator_undoes_with_subscribe(granted, tmp_path):
    from iem_seed import Seed
    from webhook_receiver import WebhookReceiver

    db, url = granted
    receiver = WebhookReceiver().up()
    seed_ = Seed(db)
    [(listid, subscriberid)] = db.query("SELECT listid, subscriberid FROM {t.subscribers} "
                                        "WHERE emailaddress = 'john@example.com'")
    for event in (1, 3):
        seed_.webhook(listid, event, receiver.url(f"/{event}"))
    seed_.field_data(subscriberid, seed_.custom_field("Name", listid), "John")
    env = worker_env(url, "amqp://unused@127.0.0.1/unused")
    assert cli(env, "setup", "--no-broker").returncode == 0
    processed = cli(env, "process", str(copy_samples(tmp_path / "all", sorted(p.name for p in SAMPLES.glob("*.csv")))))
    assert processed.returncode == 0 and "denied" not in processed.stderr, processed.stderr
    bounces = len(receiver.requests)
    assert any(b'"emailaddress":"john@example.com"' in raw for raw in receiver.requests)
    assert {raw.split(b"\r\n")[0] for raw in receiver.requests} == {b"POST /3 HTTP/1.1"}
    assert db.query("SELECT webhook_event_type_id, webhook_response FROM {t.webhook_logs}") == [(3, "ok")] * bounces

    target = parse_mysql_url(url)
    for statement in statements(render_file(DEPLOY / "mysql" / "grants-operator.sql", IEM_DATABASE=db.name,
                                            TABLE_PREFIX="email_", DB_USER=target.user, DB_HOST="%",
                                            DB_PASSWORD=target.password)):
        as_root(statement)
    undone = cli(env, "undo", "--email", "john@example.com", "--yes")
    assert undone.returncode == 0, undone.stderr
    relayed = cli(env, "relay", "--once", "10")
    assert relayed.returncode == 0 and "denied" not in relayed.stderr, relayed.stderr
    assert receiver.requests[-1].endswith(b'"customfields":{"Name":"John"}}')
    assert len(receiver.requests) == bounces + 1
    assert db.query("SELECT webhook_event_type_id FROM {t.webhook_logs} ORDER BY logid") == [(3,)] * bounces + [(1,)]
