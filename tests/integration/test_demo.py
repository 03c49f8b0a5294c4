"""`pmtabounce demo` end to end on a tiny world: real subprocesses, a drained queue, a summary, nothing left running."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path

from conftest import MYSQL_URL
from pmtabounce.common.accounting import AccountingFile
from pmtabounce.common.complaint import ComplaintRecord
from pmtabounce.common.record import BounceRecord
from pmtabounce.common.topology import Topology
from rabbit_management import ensure_management_api
from service_admin import as_root
from throwaway import delete_vhost, rabbitmqctl
from worker_fleet import worker_env


def processes_working(directory: Path) -> list[int]:
    """Pids of live processes whose bounce directory is `directory` (read from /proc, as root may)."""
    marker = f"PMTABOUNCE_BOUNCE_DIR={directory}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


def summary_count(output: str, what: str) -> int:
    match = re.search(rf"│\s*{re.escape(what)}\s*│\s*(\d+)\s*│", output)
    assert match, f"no '{what}' row in the summary:\n{output}"
    return int(match.group(1))


def test_the_demo_runs_the_fleet_on_a_tiny_world_and_stops_everything(vhost, tmp_path):
    ensure_management_api()
    database = f"pmtt_demo_{uuid.uuid4().hex[:10]}"
    demo_vhost = f"pmtt-demo-{uuid.uuid4().hex[:10]}"
    env = {**worker_env(MYSQL_URL, vhost.url), "COLUMNS": "160"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pmtabounce", "demo", "--subscribers", "150", "--records", "300", "--files", "3",
             "--workers", "2", "--seed", "3", "--database", database, "--directory", str(tmp_path / "demo"),
             "--vhost", demo_vhost, "--timeout", "180"],
            env=env, capture_output=True, text=True, timeout=300,
        )
        demo_queues = rabbitmqctl("list_queues", "-q", "-p", demo_vhost, "name", "messages").stdout
        in_given_vhost = rabbitmqctl("list_queues", "-q", "-p", vhost.name, "name").stdout
        assert done.returncode == 0, done.stdout + done.stderr
        out = done.stdout
        ledger = dict(as_root(f"SELECT outcome, COUNT(*) FROM `{database}`.`email_pmtabounce_ledger` "
                                   "WHERE record_type <> 'f' GROUP BY outcome"))
        complaints = dict(as_root(f"SELECT outcome, COUNT(*) FROM `{database}`.`email_pmtabounce_ledger` "
                                       "WHERE record_type = 'f' GROUP BY outcome"))
        seen = as_root(f"SELECT SUM(seen_count) FROM `{database}`.`email_pmtabounce_ledger`")[0][0]
    finally:
        as_root(f"DROP DATABASE IF EXISTS `{database}`")
        delete_vhost(demo_vhost)

    topology = Topology("pmtabounce-demo")
    # Its own virtual host (made by the demo, the URL's own left alone), its queues drained there.
    assert {tuple(line.split("\t")) for line in demo_queues.splitlines()} >= {(topology.queue, "0"),
                                                                             (topology.dead_queue, "0")}
    assert "pmtabounce-demo" not in in_given_vhost
    bounce_dir = (tmp_path / "demo" / "bounces").resolve()
    published = sum(isinstance(item, (BounceRecord, ComplaintRecord)) for path in sorted(bounce_dir.glob("*.csv.done"))
                    for item in AccountingFile(path))
    assert published > 250 and not list(bounce_dir.glob("*.csv"))  # every file done
    assert summary_count(out, "records published") == published == seen
    assert summary_count(out, "disabled") == ledger["disabled"] > 0
    assert summary_count(out, "not found") == ledger.get("not_found", 0)
    assert summary_count(out, "complaints unsubscribed") == complaints["unsubscribed"] > 0
    assert summary_count(out, "complaints ignored") == complaints.get("ignored", 0)
    assert summary_count(out, "dead-lettered") == 0
    assert "processes: producer exit 0, worker-1 exit 0, worker-2 exit 0" in out
    assert f"mysql://root@127.0.0.1:3306/{database}" in out
    assert "RabbitMQ console: http://127.0.0.1:15672/" in out
    assert processes_working(bounce_dir) == []
    assert sorted(p.name for p in (tmp_path / "demo" / "logs").iterdir()) == [
        "producer.log", "worker-1.log", "worker-2.log"]


def run_demo(env: dict[str, str], database: str, directory: Path, vhost: str = "") -> subprocess.CompletedProcess:
    vhost = vhost or f"pmtt-demo-{uuid.uuid4().hex[:10]}"
    try:
        return subprocess.run(
            [sys.executable, "-m", "pmtabounce", "demo", "--subscribers", "20", "--records", "20", "--files", "1",
             "--workers", "1", "--database", database, "--directory", str(directory), "--vhost", vhost,
             "--timeout", "60"],
            env=env, capture_output=True, text=True, timeout=120)
    finally:
        if "pmtt-demo-" in vhost:
            rabbitmqctl("delete_vhost", vhost, check=False)  # not there when the demo refused before making it


def test_the_demo_refuses_a_virtual_host_it_did_not_make(vhost, tmp_path):
    ensure_management_api()
    database = f"pmtt_demo_{uuid.uuid4().hex[:10]}"
    connection, channel = vhost.channel()
    channel.queue_declare("someone.elses", durable=True)
    connection.close()
    try:
        done = run_demo(worker_env(MYSQL_URL, vhost.url), database, tmp_path / "demo", vhost=vhost.name)
    finally:
        as_root(f"DROP DATABASE IF EXISTS `{database}`")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"virtual host {vhost.name} exists and was not made by `pmtabounce demo`" in done.stderr
    assert "someone.elses" in rabbitmqctl("list_queues", "-q", "-p", vhost.name, "name").stdout


def test_the_demo_refuses_a_database_it_did_not_make(vhost, tmp_path):
    database = f"pmtt_notdemo_{uuid.uuid4().hex[:10]}"
    as_root(f"CREATE DATABASE `{database}`")
    try:
        as_root(f"CREATE TABLE `{database}`.`email_lists` (listid INT PRIMARY KEY)")
        as_root(f"INSERT INTO `{database}`.`email_lists` VALUES (7)")
        done = run_demo(worker_env(MYSQL_URL, vhost.url), database, tmp_path / "demo")
        kept = as_root(f"SELECT listid FROM `{database}`.`email_lists`")
    finally:
        as_root(f"DROP DATABASE IF EXISTS `{database}`")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"database {database} exists and was not made by `pmtabounce demo`" in done.stderr
    assert kept == [(7,)]


def test_the_demo_resets_a_database_it_made(tmp_path):
    from pmtabounce.common.config import parse_mysql_url

    from pmtabounce.demo.reset import MARK_TABLE, reset_database

    database = f"pmtt_demo_{uuid.uuid4().hex[:10]}"
    target = replace(parse_mysql_url(MYSQL_URL), database=database)
    try:
        reset_database(target)
        as_root(f"CREATE TABLE `{database}`.`left_over` (n INT)")
        reset_database(target)  # marked by the first: made anew
        tables = as_root("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (database,))
    finally:
        as_root(f"DROP DATABASE IF EXISTS `{database}`")
    assert tables == [(MARK_TABLE,)]


def test_the_demo_refuses_a_directory_it_did_not_make(vhost, tmp_path):
    directory = tmp_path / "pmta"
    (directory / "bounces").mkdir(parents=True)
    (directory / "bounces" / "acct-2024-11-19.csv").write_text("type,rcpt\r\n")
    database = f"pmtt_demo_{uuid.uuid4().hex[:10]}"
    done = run_demo(worker_env(MYSQL_URL, vhost.url), database, directory)
    assert done.returncode == 1 and "was not made by `pmtabounce demo`" in done.stderr
    assert "files:" not in done.stdout  # refused before it says what it would use
    assert (directory / "bounces" / "acct-2024-11-19.csv").exists()
    assert as_root("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (database,)) == [(0,)]


def test_make_run_passes_the_demos_options_on():
    done = subprocess.run(["make", "--no-print-directory", "-n", "run",
                           "DEMO_ARGS=--database pmtt_ann --vhost pmtt-ann --directory /tmp/ann"],
                          cwd=Path(__file__).parents[2], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.endswith("pmtabounce demo --database pmtt_ann --vhost pmtt-ann --directory /tmp/ann"), last
