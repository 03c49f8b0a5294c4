"""A worker and a MySQL that stops answering without closing anything (a network partition):
SIGTERM still stops it within seconds, and after a long outage it resumes within seconds."""

from __future__ import annotations

import re
import time

from pmtabounce.common.config import parse_mysql_url
from tcp_proxy import TcpProxy
from worker_fleet import (
    Fleet,
    add_subscribers,
    free_port,
    hard_bounces,
    http_get,
    ledger_count,
    publish,
    wait_for,
    worker_env,
)


def first_batch_applied(fleet: Fleet, db, vhost, emails: list[str]):
    """Start the worker and wait until it applied the first 20 (the database answers through the proxy)."""
    worker = fleet.start()
    publish(vhost.url, vhost.topology, hard_bounces(emails[:20]))
    wait_for(lambda: ledger_count(db) == 20, "the first batch")
    return worker


def proxied(db, vhost, **settings) -> tuple[TcpProxy, dict[str, str]]:
    target = parse_mysql_url(db.url)
    proxy = TcpProxy(target.host, target.port)
    return proxy, worker_env(proxy.url_for(db.url), vhost.url, **settings)


def test_sigterm_stops_a_worker_stuck_in_a_silent_database_call_within_seconds(iem_db, vhost, tmp_path):
    emails = add_subscribers(iem_db, 60)
    proxy, env = proxied(iem_db, vhost, batch_size=20)
    try:
        with Fleet(env, tmp_path) as fleet:
            worker = first_batch_applied(fleet, iem_db, vhost, emails)
            proxy.black_hole()
            publish(vhost.url, vhost.topology, hard_bounces(emails[20:], start=20))
            time.sleep(2)  # the next batch's first statement is sent and waits for an answer that never comes
            started = time.monotonic()
            assert fleet.terminate(worker, timeout=15) == 0, fleet.log()
            assert time.monotonic() - started < 8, "SIGTERM waited on the silent database"
            assert "abandoning the call" in fleet.log()
    finally:
        proxy.close()
    assert ledger_count(iem_db) == 20
    wait_for(lambda: vhost.queue_depth(vhost.topology.queue) == 40, "the 40 unapplied back in the queue")


def test_after_a_long_outage_the_worker_resumes_within_seconds_of_the_database(iem_db, vhost, tmp_path):
    emails = add_subscribers(iem_db, 40)
    proxy, env = proxied(iem_db, vhost, batch_size=20, retry_max_wait=30)
    long_wait = re.compile(r"database not available .*; trying again in (1\d|[2-9]\d)\.\d s")
    try:
        with Fleet(env, tmp_path) as fleet:
            worker = first_batch_applied(fleet, iem_db, vhost, emails)
            proxy.cut()
            publish(vhost.url, vhost.topology, hard_bounces(emails[20:], start=20))
            wait_for(lambda: long_wait.search(fleet.log()), "the backoff to pass 10 s", 60)
            proxy.restore()
            started = time.monotonic()
            wait_for(lambda: ledger_count(iem_db) == 40, "the second batch", 40)
            assert time.monotonic() - started < 5, "resumed only when the backoff ran out"
            assert fleet.terminate(worker) == 0, fleet.log()
    finally:
        proxy.close()


def test_readiness_names_the_database_while_a_batch_waits_on_a_silent_one(iem_db, vhost, tmp_path):
    emails = add_subscribers(iem_db, 40)
    port = free_port()
    proxy, env = proxied(iem_db, vhost, batch_size=20, metrics_port=port)
    try:
        with Fleet(env, tmp_path) as fleet:
            worker = first_batch_applied(fleet, iem_db, vhost, emails)
            wait_for(lambda: http_get(port, "/readyz")[0] == 200, "the worker to be ready")
            proxy.black_hole()
            publish(vhost.url, vhost.topology, hard_bounces(emails[20:], start=20))
            wait_for(lambda: http_get(port, "/readyz")[0] == 503, "/readyz to fail while the batch hangs", 20)
            assert "the database" in http_get(port, "/readyz")[1]
            assert "not ready (/readyz answers 503): the database" in fleet.log()
            proxy.restore()
            wait_for(lambda: ledger_count(iem_db) == 40, "the batch once the database answers", 90)
            assert fleet.terminate(worker, timeout=15) == 0, fleet.log()
    finally:
        proxy.close()


def test_a_worker_started_against_a_silent_database_says_it_waits_for_it(iem_db, vhost, tmp_path):
    port = free_port()
    proxy, env = proxied(iem_db, vhost, metrics_port=port)
    proxy.black_hole()
    try:
        with Fleet(env, tmp_path) as fleet:
            worker = fleet.start()
            wait_for(lambda: "waiting for the database" in fleet.log(), "the start-up check to say it waits", 20)
            status, body = http_get(port, "/readyz")
            assert status == 503 and "the database" in body and "RabbitMQ" not in body, body
            assert fleet.terminate(worker, timeout=15) == 0, fleet.log()
    finally:
        proxy.close()
