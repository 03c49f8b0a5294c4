"""/metrics, /healthz and /readyz of real worker and producer processes, and the metric naming rules."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time

from conftest import SAMPLES
from pmtabounce.common.config import parse_mysql_url
from pmtabounce.common.health import serve
from pmtabounce.common.record import BounceRecord
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families
from storm_world import pmtabounce
from tcp_proxy import TcpProxy
from worker_fleet import Fleet, free_port, http_get, ledger_count, publish, wait_for, worker_env

# Prometheus base units; anything ending in another unit (ms, minutes, kilobytes...) breaks the rules.
OTHER_UNITS = re.compile(r"_(ms|milliseconds|microseconds|minutes|hours|days|kb|kilobytes|mb|megabytes|percent)(_|$)")
FORBIDDEN_LABELS = re.compile(r"(email|rcpt|address|recipient|fingerprint|message_?id|subscriber|file|line|^id$|id$)")


def families(port: int) -> dict:
    _, text = http_get(port, "/metrics")
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(found: dict, sample_name: str, **labels: str) -> float:
    """The value of one sample (0 when it has not been exported yet)."""
    for family in found.values():
        for sample in family.samples:
            if sample.name == sample_name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def assert_naming_rules(found: dict) -> None:
    ours = {name: f for name, f in found.items() if not name.startswith(("python_", "process_"))}
    assert ours, "no pmtabounce metrics exported"
    for name, family in ours.items():
        assert name.startswith("pmtabounce_"), name
        assert not OTHER_UNITS.search(name), f"{name}: not in base units"
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples), name
        if family.type in ("gauge", "histogram") and name.endswith(("_age", "_duration", "_time", "_timestamp")):
            raise AssertionError(f"{name}: a time without its unit (_seconds)")
        for sample in family.samples:
            for label, text in sample.labels.items():
                if label in ("le", "quantile"):
                    continue
                assert not FORBIDDEN_LABELS.search(label), f"{name}: label {label} names a record or a person"
                assert "@" not in text and not re.fullmatch(r"[0-9a-f]{32}", text), f"{name}: label value {text}"


def bounces(count: int) -> list[BounceRecord]:
    return [BounceRecord("b", 1_732_000_000 + n, f"user{n}@example.com", "5.1.1", "smtp;550 unknown",
                         "bad-mailbox", (1,), 0, "bounces-1.csv", n + 2) for n in range(count)]


def add_subscribers(db, count: int) -> None:
    db.query("INSERT INTO {t.lists} (listid, name, subscribecount, visiblefields) VALUES (1, 'L', %s, '')",
             (count,))
    db.execute_many("INSERT INTO {t.subscribers} (listid, emailaddress) VALUES (1, %s)",
                    [(f"user{n}@example.com",) for n in range(count)])


def exported(found: dict, *sample_names: str) -> list[str]:
    """Which of these sample names the page holds, with any labels."""
    names = {sample.name for family in found.values() for sample in family.samples}
    return [name for name in sample_names if name in names]


def ready(port: int) -> bool:
    return http_get(port, "/readyz")[0] == 200


def test_a_worker_serves_health_and_readiness_and_counts_what_it_applied(iem_db, vhost, tmp_path):
    add_subscribers(iem_db, 30)
    iem_db.query("INSERT INTO {t.ledger} (fingerprint, record_type, time_logged, email, dsn_diag, decision, outcome, "
                 "applied_at) VALUES (REPEAT('0', 32), 'b', 1732000000, 'x@example.com', '', 'hard', 'applied', "
                 "NOW() - INTERVAL 2 DAY)")
    target = parse_mysql_url(iem_db.url)
    mysql = TcpProxy(target.host, target.port)
    amqp = TcpProxy("127.0.0.1", 5672)
    port = free_port()
    env = worker_env(mysql.url_for(iem_db.url), amqp.url_for(vhost.url), metrics_port=port, retry_max_wait=1)
    started = time.time()
    try:
        with Fleet(env, tmp_path) as fleet:
            fleet.start()
            wait_for(lambda: ready(port), "the worker to be ready", 60)
            assert http_get(port, "/healthz") == (200, "ok\n")
            publish(vhost.url, vhost.topology, bounces(25) + bounces(5))  # five met again: duplicates
            wait_for(lambda: value(families(port), "pmtabounce_records_processed_total", outcome="duplicate") == 5,
                     "the worker to apply 30 records")
            found = families(port)
            assert value(found, "pmtabounce_records_processed_total", outcome="disabled") == 25
            assert value(found, "pmtabounce_batch_duration_seconds_count") >= 1
            assert value(found, "pmtabounce_last_success_timestamp_seconds") >= started
            assert abs(value(found, "pmtabounce_ledger_oldest_row_timestamp_seconds") - (started - 2 * 86400)) < 60
            assert value(found, "pmtabounce_ledger_rows") >= 0  # InnoDB's estimate, read once a minute
            assert_naming_rules(found)

            assert not exported(found, "pmtabounce_pending_files", "pmtabounce_records_published_total")

            before = len(fleet.log())
            mysql.cut()  # the database goes away: alive, but not ready
            wait_for(lambda: not ready(port), "/readyz to say not ready without the database", 30)
            assert http_get(port, "/healthz")[0] == 200
            for _ in range(3):  # probes go on; the log says it once
                assert "database" in http_get(port, "/readyz")[1]
            assert fleet.log()[before:].count("not ready (/readyz answers 503): the database") == 1, fleet.log()
            mysql.restore()
            wait_for(lambda: ready(port), "/readyz to recover with the database", 30)

            amqp.cut()  # the broker goes away: not consuming, not ready
            wait_for(lambda: not ready(port), "/readyz to say not ready without the broker", 30)
            amqp.restore()
            wait_for(lambda: ready(port), "/readyz to recover with the broker", 30)
            assert fleet.terminate(fleet.processes[0]) == 0
    finally:
        mysql.close()
        amqp.close()
    assert ledger_count(iem_db) == 1 + 25  # the old row from before, and the 25 new records


def test_a_producer_serves_health_and_counts_what_it_published(vhost, tmp_path):
    bounce_dir = tmp_path / "bounces"
    bounce_dir.mkdir()
    port = free_port()
    env = worker_env("mysql://unused@127.0.0.1/unused", vhost.url, metrics_port=port, bounce_dir=bounce_dir)
    log = open(tmp_path / "producer.log", "wb")
    producer = subprocess.Popen([sys.executable, "-m", "pmtabounce", "producer"], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: ready(port), "the producer to be ready", 60)
        assert http_get(port, "/healthz") == (200, "ok\n")
        found = families(port)
        assert "pmtabounce_pending_files" in found
        assert value(found, "pmtabounce_pending_files") == 0
        assert not exported(found, "pmtabounce_records_processed_total", "pmtabounce_batch_duration_seconds_count",
                            "pmtabounce_dead_lettered_total")
        idle = socket.create_connection(("127.0.0.1", port))  # a client that connects and says nothing
        try:
            assert http_get(port, "/healthz") == (200, "ok\n"), "an idle connection blocks /healthz"
            assert http_get(port, "/readyz")[0] == 200
            assert "pmtabounce_pending_files" in http_get(port, "/metrics")[1]
            idle.settimeout(30)
            assert idle.recv(100) == b"", "the server should hang up on a client that sends nothing"
        finally:
            idle.close()
        samples = sorted(SAMPLES.glob("*.csv"))
        for sample in samples:
            shutil.copy(sample, bounce_dir / sample.name)
        wait_for(lambda: not list(bounce_dir.glob("*.csv")), "the producer to finish the sample files")
        wait_for(lambda: value(families(port), "pmtabounce_files_done_total", role="producer") == len(samples),
                 "the producer to count every sample file done")
        found = families(port)
        published = value(found, "pmtabounce_records_published_total")
        assert published == value(found, "pmtabounce_records_confirmed_total") == vhost.queue_depth(
            vhost.topology.queue) > 0
        assert value(found, "pmtabounce_records_read_total", role="producer") == published
        assert value(found, "pmtabounce_records_rejected_total", role="producer") >= 1
        assert_naming_rules(found)
    finally:
        producer.terminate()
        code = producer.wait(timeout=30)
        log.close()
    assert code == 0, (tmp_path / "producer.log").read_text()


def test_the_guard_gauges_follow_hand_trips_and_a_restart_without_any_batch(iem_db, vhost, tmp_path):
    pmtabounce(iem_db, "guard", "trip", "gmail.com")  # before the worker starts: it must serve 1 from the start
    port = free_port()
    env = worker_env(iem_db.url, vhost.url, metrics_port=port, table_prefix=iem_db.tables.prefix)
    with Fleet(env, tmp_path) as fleet:
        fleet.start()
        wait_for(lambda: ready(port), "the worker to be ready", 60)
        assert value(families(port), "pmtabounce_guard_tripped_domains") == 1
        pmtabounce(iem_db, "guard", "trip", "yahoo.com")  # no record comes: the gauge still follows
        wait_for(lambda: value(families(port), "pmtabounce_guard_tripped_domains") == 2,
                 "the gauge to count the second trip", 30)


def test_a_metrics_port_in_use_is_one_fatal_line_naming_the_setting(vhost, tmp_path):
    taken = socket.socket()
    taken.bind(("0.0.0.0", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    env = worker_env("mysql://unused@127.0.0.1/unused", vhost.url, metrics_port=port, bounce_dir=tmp_path)
    try:
        done = subprocess.run([sys.executable, "-m", "pmtabounce", "producer", "--once"], env=env,
                              capture_output=True, text=True, timeout=60)
    finally:
        taken.close()
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"PMTABOUNCE_METRICS_PORT={port} is already in use" in done.stderr


def test_only_the_three_paths_answer_and_every_other_path_is_not_found():
    registry = CollectorRegistry()
    Counter("pmtabounce_probe_total", "a series to find", registry=registry).inc()
    server = serve(free_port(), lambda: None, registry, host="127.0.0.1")
    try:
        port = server.server_port
        assert http_get(port, "/metrics")[0] == 200 and "pmtabounce_probe_total 1.0" in http_get(port, "/metrics")[1]
        assert http_get(port, "/healthz") == (200, "ok\n") and http_get(port, "/readyz") == (200, "ready\n")
        for path in ("/", "/anything", "/metrics/extra", "/favicon.ico", "/healthz/"):
            code, body = http_get(port, path)
            assert code == 404 and "pmtabounce_probe_total" not in body, path
    finally:
        server.shutdown()
        server.server_close()


def test_a_fresh_worker_serves_every_labelled_counter_at_zero_so_the_first_increase_alerts(iem_db, vhost, tmp_path):
    """A series born at 1 has no earlier sample: increase() never saw the first dead letters after a start."""
    port = free_port()
    with Fleet(worker_env(iem_db.url, vhost.url, metrics_port=port), tmp_path) as fleet:
        worker = fleet.start()
        wait_for(lambda: ready(port), "the worker to be ready", 60)
        found = families(port)
        assert fleet.terminate(worker) == 0, fleet.log()
    served = {(s.name, tuple(sorted(s.labels.items())), s.value) for f in found.values() for s in f.samples}
    for name, labels in [("pmtabounce_dead_lettered_total", {"reason": "invalid_message"}),
                         ("pmtabounce_dead_lettered_total", {"reason": "database_refused"}),
                         ("pmtabounce_records_processed_total", {"outcome": "disabled", "record": "bounce"}),
                         ("pmtabounce_records_processed_total", {"outcome": "unsubscribed", "record": "complaint"}),
                         ("pmtabounce_retries_total", {"kind": "database"})]:
        assert (name, tuple(sorted(labels.items())), 0.0) in served, (name, labels)
