"""Logs of real commands: one JSON object per line when asked, readable text otherwise, and never a
password, an address from a bounce or a message body."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import uuid

import pika
import pytest
from conftest import SAMPLES
from pmtabounce.common.config import parse_mysql_url
from pmtabounce.common.record import BounceRecord
from pmtabounce.common.topology import H_SOURCE_FILE, H_SOURCE_LINE
from service_admin import as_root
from throwaway import rabbitmqctl
from worker_fleet import Fleet, publish, wait_for, worker_env

SECRET = "pw" + uuid.uuid4().hex  # the same distinctive password for the MySQL and the RabbitMQ user
# An address with a named domain; `user@127.0.0.1` in a URL without its password is fine.
EMAIL = re.compile(r"[\w.+-]+@[A-Za-z][\w-]*\.[A-Za-z][\w.-]*")


@pytest.fixture
def urls(iem_db, vhost):
    """MySQL and AMQP URLs of users of this test whose password is SECRET."""
    name = f"pmtt_{uuid.uuid4().hex[:10]}"
    as_root("CREATE USER %s@'%%' IDENTIFIED BY %s", (name, SECRET))
    as_root(f"GRANT ALL ON `{iem_db.name}`.* TO %s@'%%'", (name,))
    rabbitmqctl("add_user", name, SECRET)
    rabbitmqctl("set_permissions", "-p", vhost.name, name, ".*", ".*", ".*")
    target = parse_mysql_url(iem_db.url)
    try:
        yield (f"mysql://{name}:{SECRET}@{target.host}:{target.port}/{iem_db.name}",
               f"amqp://{name}:{SECRET}@127.0.0.1:5672/{vhost.name}")
    finally:
        as_root("DROP USER IF EXISTS %s@'%%'", (name,))
        rabbitmqctl("delete_user", name)


def json_lines(text: str) -> list[dict]:
    """Every line must be one JSON object: a line that is not fails here, naming it."""
    entries = []
    for line in text.splitlines():
        entry = json.loads(line)
        assert isinstance(entry, dict), line
        entries.append(entry)
    return entries


def test_process_logs_one_json_object_per_line_without_passwords_or_addresses(urls, tmp_path):
    mysql_url, amqp_url = urls
    for sample in SAMPLES.glob("*.csv"):
        shutil.copy(sample, tmp_path / sample.name)
    env = worker_env(mysql_url, amqp_url, log_format="json")
    done = subprocess.run([sys.executable, "-m", "pmtabounce", "process", str(tmp_path), "--json"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

    entries = json_lines(done.stderr)
    assert len(entries) >= 6  # a line per file done, and the rejected rows of the troubled one
    assert all({"ts", "level", "logger", "msg"} <= set(e) for e in entries)
    assert {e["level"] for e in entries} <= {"debug", "info", "warning", "error"}
    assert any("bounces-2024-11-19-1025.csv" in e["msg"] and e["level"] == "error" for e in entries)
    done_files = [e for e in entries if e["event"] == "file_done"]
    assert sorted(e["file"] for e in done_files) == sorted(p.name for p in SAMPLES.glob("*.csv"))
    assert all(isinstance(e["bounces"], int) and isinstance(e["rejected"], int) for e in done_files)
    rejected = [e for e in entries if e["event"] == "rejected"]
    assert rejected and all(e["file"] == "bounces-2024-11-19-1025.csv" and e["line"] > 1 for e in rejected)
    assert SECRET not in done.stderr + done.stdout
    assert EMAIL.findall(done.stderr) == []


def test_a_worker_logs_json_without_bodies_passwords_or_addresses_and_text_when_not_asked(urls, iem_db, vhost,
                                                                                           tmp_path):
    mysql_url, amqp_url = urls
    records = [BounceRecord("b", 1_732_000_000 + n, f"private{n}@example.com", "5.1.1", "smtp;550 unknown",
                            "bad-mailbox", (1,), 0, "bounces-1.csv", n + 2) for n in range(5)]
    publish(vhost.url, vhost.topology, records)
    poison = b'{"v": 1, "rcpt": "poison@example.com", "marker": "BODY-MARKER"}'
    connection, channel = vhost.channel()
    channel.basic_publish(vhost.topology.exchange, vhost.topology.routing_key, poison,
                          pika.BasicProperties(headers={H_SOURCE_FILE: "bounces-9.csv", H_SOURCE_LINE: 3}))
    connection.close()

    with Fleet(worker_env(mysql_url, amqp_url, log_format="json"), tmp_path) as fleet:
        fleet.start("--exit-when-idle", "1")
        assert fleet.finish() == [0]
    text = fleet.log()
    entries = json_lines(text)
    assert any(e["level"] == "error" and "bounces-9.csv line 3" in e["msg"] for e in entries)  # the dead letter
    assert [(e["source"], e["outcome"]) for e in entries if e["event"] == "dead_lettered"] == [
        ("bounces-9.csv line 3", "invalid_message")]
    assert SECRET not in text and "BODY-MARKER" not in text
    assert EMAIL.findall(text) == []

    (tmp_path / "text").mkdir()
    with Fleet(worker_env(mysql_url, amqp_url), tmp_path / "text") as fleet:
        fleet.start("--exit-when-idle", "0.5")
        assert fleet.finish() == [0]
    lines = fleet.log().splitlines()
    assert lines and all(" INFO " in line or " WARNING " in line for line in lines)
    assert not any(line.startswith("{") for line in lines) and SECRET not in fleet.log()


@pytest.mark.parametrize(("level", "pika_shown"), [("DEBUG", True), ("INFO", False)])
def test_the_worker_shows_pikas_own_lines_only_at_debug(iem_db, vhost, tmp_path, level, pika_shown):
    """pika's level is set once, by the logging setup: the worker used to silence it even at DEBUG."""
    env = worker_env(iem_db.url, vhost.url, log_level=level)
    with Fleet(env, tmp_path) as fleet:
        fleet.start("--exit-when-idle", "1")
        assert fleet.finish() == [0], fleet.log()
    assert (" pika." in fleet.log()) is pika_shown, fleet.log()


def run_json(args: list[str], env: dict[str, str]) -> tuple[int, list[dict], str]:
    """A real `pmtabounce` process with PMTABOUNCE_LOG_FORMAT=json: (exit code, its stderr as JSON lines, stderr)."""
    done = subprocess.run([sys.executable, "-m", "pmtabounce", *args], env=env, capture_output=True, text=True,
                          timeout=60)
    return done.returncode, json_lines(done.stderr), done.stderr


def test_the_fatal_line_is_json_with_its_event_and_error_class(iem_db, vhost):
    env = worker_env(iem_db.url, f"amqp://guest:{SECRET}@127.0.0.1:5672/{vhost.name}", log_format="json")
    code, entries, text = run_json(["worker"], env)
    assert code == 1
    fatal = [e for e in entries if e.get("event") == "fatal"]
    assert len(fatal) == 1 and fatal[0]["error_class"] == "FatalError" and fatal[0]["level"] == "critical"
    assert "PMTABOUNCE_AMQP_URL" in fatal[0]["msg"]
    assert SECRET not in text


def test_a_configuration_error_is_json_too(iem_db):
    env = worker_env(iem_db.url, "amqp://guest:guest@127.0.0.1:5672/%2F", log_format="json", batchsize="10")
    code, entries, _ = run_json(["worker"], env)
    assert code == 2
    assert [(e["event"], e["error_class"]) for e in entries] == [("fatal", "ConfigError")]
    assert "PMTABOUNCE_BATCHSIZE" in entries[0]["msg"] and "PMTABOUNCE_BATCH_SIZE" in entries[0]["msg"]


def test_an_uncaught_exception_is_one_json_line_with_its_traceback_as_a_field(tmp_path):
    crash = ("from pmtabounce.common import logs; logs.configure('json'); "
             "raise RuntimeError('mysql://iem:" + SECRET + "@db/iem refused ann@example.com')")
    done = subprocess.run([sys.executable, "-c", crash], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 1
    [entry] = json_lines(done.stderr)
    assert entry["event"] == "crash" and entry["error_class"] == "RuntimeError"
    assert "Traceback" in entry["exception"] and "mysql://iem:****@db/iem" in entry["exception"]
    assert SECRET not in done.stderr and EMAIL.findall(done.stderr) == []


def test_a_retry_line_carries_the_attempt_and_the_error_class(iem_db, tmp_path):
    with socket.socket() as sock:  # a port nobody listens on: RabbitMQ "down"
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = worker_env(iem_db.url, f"amqp://guest:guest@127.0.0.1:{port}/%2F", log_format="json", retry_max_wait="0.2")
    with Fleet(env, tmp_path) as fleet:
        worker = fleet.start()
        wait_for(lambda: fleet.log().count('"retry"') >= 2, "two retry lines")
        fleet.terminate(worker)
    retries = [e for e in json_lines(fleet.log()) if e.get("event") == "retry"]
    assert [e["retry_attempt"] for e in retries[:2]] == [1, 2]
    assert {e["error_class"] for e in retries} == {"TransientError"}


@pytest.mark.parametrize("args", [["status", "--bogus"], ["no-such-command"], ["dlq", "import"],
                                  ["dlq", "import", "/nonexistent/dead.jsonl"], ["dlq", "list", "--limit", "x"]],
                         ids=["unknown option", "unknown command", "missing argument", "missing file", "bad value"])
def test_a_usage_error_is_json_too(args):
    env = worker_env("mysql://unused@127.0.0.1/unused", "amqp://unused@127.0.0.1/unused", log_format="json")
    code, entries, text = run_json(args, env)
    assert code == 2, text
    assert [(e["event"], e["level"]) for e in entries] == [("fatal", "critical")]
    assert entries[0]["error_class"] in ("NoSuchOption", "NoSuchCommand", "UsageError", "MissingParameter",
                                         "BadParameter")
