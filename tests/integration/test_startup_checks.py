"""At start, `setup`, `process` and `worker` check that IEM's tables are under PMTABOUNCE_TABLE_PREFIX,
and `process` reaches the database even when no file waits: a wrong setting is said at once."""

from __future__ import annotations

import subprocess
import sys
import time

from worker_fleet import Fleet, free_port, http_get, worker_env

WRONG = "iem2_"


def pmtabounce(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pmtabounce", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def tables(db) -> set[str]:
    return {row[0] for row in db.query("SHOW TABLES")}


def test_setup_under_a_prefix_with_no_iem_tables_creates_nothing_and_names_the_prefix(iem_db):
    before = tables(iem_db)
    done = pmtabounce(worker_env(iem_db.url, "", table_prefix=WRONG), "setup")
    assert done.returncode == 1
    assert "PMTABOUNCE_TABLE_PREFIX='iem2_'" in done.stderr and "iem2_lists" in done.stderr
    assert tables(iem_db) == before


def test_process_on_an_empty_directory_stops_at_once_on_a_wrong_prefix_or_password(iem_db, tmp_path):
    done = pmtabounce(worker_env(iem_db.url, "", table_prefix=WRONG), "process", str(tmp_path))
    assert done.returncode == 1 and "PMTABOUNCE_TABLE_PREFIX='iem2_'" in done.stderr

    wrong_password = iem_db.url.replace("mysql://root@", "mysql://root:wrong@")
    started = time.monotonic()
    done = pmtabounce(worker_env(wrong_password, ""), "process", str(tmp_path))
    assert done.returncode == 1, done.stderr
    assert "PMTABOUNCE_MYSQL_URL" in done.stderr and "wrong" not in done.stderr
    assert time.monotonic() - started < 30

    ok = pmtabounce(worker_env(iem_db.url, ""), "process", str(tmp_path))
    assert ok.returncode == 0, ok.stderr


def test_a_worker_with_a_wrong_prefix_stops_before_consuming(iem_db, vhost, tmp_path):
    port = free_port()
    env = worker_env(iem_db.url, vhost.url, table_prefix=WRONG, metrics_port=port)
    with Fleet(env, tmp_path) as fleet:
        worker = fleet.start()
        assert worker.wait(timeout=30) == 1, fleet.log()
        assert "PMTABOUNCE_TABLE_PREFIX='iem2_'" in fleet.log()
    assert http_get(port, "/readyz")[0] == 0  # gone, never ready
