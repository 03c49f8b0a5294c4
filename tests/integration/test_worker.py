"""One worker process against the real RabbitMQ and MariaDB: poison, refusals, SIGTERM and outages."""

from __future__ import annotations

import re
import signal
import socket
import time
from pathlib import Path

import pytest
from pmtabounce.common.config import parse_mysql_url
from pmtabounce.common.topology import H_DEAD_AT, H_ERROR, H_REASON, H_SOURCE_FILE, H_SOURCE_LINE, H_WORKER
from tcp_proxy import TcpProxy
from throwaway import rabbitmqctl
from worker_fleet import (
    Fleet,
    add_subscribers,
    drain,
    free_port,
    hard_bounces,
    http_get,
    ledger_count,
    publish,
    publish_raw,
    wait_for,
    worker_env,
)


def bounced_count(db) -> int:
    return db.query("SELECT COUNT(*) FROM {t.subscribers} WHERE bounced > 0")[0][0]


def test_a_malformed_message_is_dead_lettered_with_a_readable_reason_and_the_rest_applied(iem_db, vhost, tmp_path):
    emails = add_subscribers(iem_db, 20)
    publish(vhost.url, vhost.topology, hard_bounces(emails[:10]))
    publish_raw(vhost.url, vhost.topology, b"{not json", "poison-1", {H_SOURCE_FILE: "b.csv", H_SOURCE_LINE: 7})
    publish_raw(vhost.url, vhost.topology, b'{"v": 3, "type": "b"}', "poison-2")
    publish(vhost.url, vhost.topology, hard_bounces(emails[10:], start=10))
    port = free_port()

    with Fleet(worker_env(iem_db.url, vhost.url, metrics_port=port), tmp_path) as fleet:
        worker = fleet.start()
        wait_for(lambda: ledger_count(iem_db) == 20 and vhost.queue_depth(vhost.topology.dead_queue) == 2,
                 "the good records applied and the bad ones dead-lettered")
        wait_for(lambda: http_get(port, "/readyz") == (200, "ready\n"), "/readyz to say ready")
        status, metrics = http_get(port, "/metrics")
        assert 'pmtabounce_dead_lettered_total{reason="invalid_message"} 2.0' in metrics
        assert 'pmtabounce_records_processed_total{outcome="disabled",record="bounce"} 20.0' in metrics
        assert fleet.terminate(worker) == 0, fleet.log()

    assert bounced_count(iem_db) == 20
    dead = {props.message_id: (props, body) for props, body in drain(vhost.url, vhost.topology.dead_queue)}
    assert set(dead) == {"poison-1", "poison-2"}
    properties, body = dead["poison-1"]
    assert body == b"{not json"
    assert properties.headers[H_ERROR] == "invalid_message"
    assert properties.headers[H_REASON].startswith("invalid message: message body is not JSON")
    assert properties.headers[H_SOURCE_FILE] == "b.csv" and properties.headers[H_SOURCE_LINE] == 7
    assert properties.headers[H_WORKER] and properties.headers[H_DEAD_AT] > 1_700_000_000
    assert properties.delivery_mode == 2
    assert "unknown schema version 3" in dead["poison-2"][0].headers[H_REASON]
    assert "dead-lettered b.csv line 7: invalid message" in fleet.log()
    assert vhost.queue_depth(vhost.topology.queue) == 0


def test_a_fatal_database_error_stops_the_worker_without_acking(iem_db, vhost, tmp_path):
    emails = add_subscribers(iem_db, 30)
    iem_db.query("DROP TABLE {t.ledger}")
    publish(vhost.url, vhost.topology, hard_bounces(emails))

    with Fleet(worker_env(iem_db.url, vhost.url), tmp_path) as fleet:
        fleet.start()
        assert fleet.finish() == [1], fleet.log()

    assert "worker stops" in fleet.log() and "pmtabounce setup" in fleet.log()
    wait_for(lambda: vhost.queue_depth(vhost.topology.queue) == 30, "all 30 back in the queue, none acked")
    assert vhost.queue_depth(vhost.topology.dead_queue) == 0
    assert bounced_count(iem_db) == 0


def test_a_record_the_database_refuses_is_dead_lettered_while_its_batch_commits(iem_db, vhost, tmp_path):
    emails = add_subscribers(iem_db, 30)
    iem_db.query(
        "CREATE TRIGGER refuse_subscriber_7 BEFORE INSERT ON {t.bounces} FOR EACH ROW "
        "IF NEW.subscriberid = 7 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'subscriber 7 is frozen'; END IF"
    )
    records = hard_bounces(emails)
    publish(vhost.url, vhost.topology, records)

    with Fleet(worker_env(iem_db.url, vhost.url), tmp_path) as fleet:
        fleet.start("--exit-when-idle", "1")
        assert fleet.finish() == [0], fleet.log()

    assert ledger_count(iem_db) == 29 and bounced_count(iem_db) == 29
    assert iem_db.query("SELECT bounced FROM {t.subscribers} WHERE subscriberid = 7") == [(0,)]
    [(properties, body)] = drain(vhost.url, vhost.topology.dead_queue)
    assert properties.message_id == records[6].fingerprint
    assert properties.headers[H_ERROR] == "database_refused"
    assert "subscriber 7 is frozen" in properties.headers[H_REASON]
    assert "dead-lettered bounces-2024-11-19-1000.csv line 8: the database refused it" in fleet.log()


def test_sigterm_stops_the_worker_with_exit_0_and_loses_nothing(iem_db, vhost, tmp_path):
    emails = add_subscribers(iem_db, 1500)
    publish(vhost.url, vhost.topology, hard_bounces(emails))

    with Fleet(worker_env(iem_db.url, vhost.url, batch_size=25), tmp_path) as fleet:
        first = fleet.start()
        wait_for(lambda: ledger_count(iem_db) > 0, "the first batches")
        assert fleet.terminate(first, timeout=10) == 0, fleet.log()
        assert "SIGTERM received" in fleet.log()
        stopped_at = ledger_count(iem_db)
        assert stopped_at < 1500, "the worker finished before the signal: give it more to do"
        fleet.start("--exit-when-idle", "1")
        assert fleet.finish()[-1] == 0, fleet.log()

    assert ledger_count(iem_db) == 1500 and bounced_count(iem_db) == 1500
    assert iem_db.query("SELECT bouncecount, subscribecount FROM {t.lists}") == [(1500, 0)]
    assert vhost.queue_depth(vhost.topology.queue) == 0



def lock_waits(db) -> int:
    """Transactions of this test's database waiting for a row lock."""
    return db.query(
        "SELECT COUNT(*) FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p "
        "ON p.ID = t.trx_mysql_thread_id WHERE t.trx_state = 'LOCK WAIT' AND p.DB = %s", (db.name,))[0][0]


def test_a_second_signal_of_either_kind_ends_a_stopping_worker_at_once(iem_db, vhost, tmp_path):
    """The first SIGTERM waits for the batch in hand; a second signal, here Ctrl-C, means now (docs: Stopping)."""
    emails = add_subscribers(iem_db, 1)
    publish(vhost.url, vhost.topology, hard_bounces(emails))
    holder = iem_db.connect()  # holds the subscriber's row, so the worker's batch waits for it
    try:
        with holder.cursor() as cursor:
            cursor.execute(f"SELECT subscriberid FROM {iem_db.tables.subscribers} FOR UPDATE")
        with Fleet(worker_env(iem_db.url, vhost.url), tmp_path) as fleet:
            worker = fleet.start()
            wait_for(lambda: lock_waits(iem_db) > 0, "the worker's batch to wait for the row lock")
            worker.send_signal(signal.SIGTERM)
            wait_for(lambda: "SIGTERM received: finishing the batch in hand" in fleet.log(), "the first signal")
            assert worker.poll() is None, fleet.log()
            worker.send_signal(signal.SIGINT)
            assert worker.wait(timeout=10) == -signal.SIGINT, fleet.log()
    finally:
        holder.rollback()
        holder.close()
    wait_for(lambda: vhost.queue_depth(vhost.topology.queue) == 1, "the unacked message back in the queue")
    assert ledger_count(iem_db) == 0 and bounced_count(iem_db) == 0

@pytest.fixture
def proxy_to():
    proxies = []

    def make(host: str, port: int) -> TcpProxy:
        proxies.append(TcpProxy(host, port))
        return proxies[-1]

    yield make
    for proxy in proxies:
        proxy.close()


# What the worker's log says while it retries, and once the service is back.
OUTAGE_SIGNS = {
    "mysql": ("database not available", "the database answers again"),
    "amqp": ("cannot reach RabbitMQ", "connected to RabbitMQ again"),
}


def cut_off_worker_env(service: str, db, vhost, proxy_to, **settings) -> tuple[TcpProxy, dict[str, str]]:
    """A proxy between the worker and `service` (mysql or amqp), and the worker's environment using it."""
    if service == "mysql":
        target = parse_mysql_url(db.url)
        proxy = proxy_to(target.host, target.port)
        return proxy, worker_env(proxy.url_for(db.url), vhost.url, **settings)
    proxy = proxy_to("127.0.0.1", 5672)
    return proxy, worker_env(db.url, proxy.url_for(vhost.url), **settings)


@pytest.mark.parametrize("service", ["mysql", "amqp"])
def test_an_outage_is_ridden_out_with_nothing_lost_or_dead_lettered(service, iem_db, vhost, tmp_path, proxy_to):
    emails = add_subscribers(iem_db, 400)
    proxy, env = cut_off_worker_env(service, iem_db, vhost, proxy_to, batch_size=50, retry_max_wait=1)
    retrying, recovered = OUTAGE_SIGNS[service]

    with Fleet(env, tmp_path) as fleet:
        worker = fleet.start()
        publish(vhost.url, vhost.topology, hard_bounces(emails[:200]))
        wait_for(lambda: ledger_count(iem_db) == 200, "the first half")
        proxy.cut()
        publish(vhost.url, vhost.topology, hard_bounces(emails[200:], start=200))
        wait_for(lambda: fleet.log().count(retrying) >= 3, "the worker to retry three times")
        assert ledger_count(iem_db) == 200
        proxy.restore()
        wait_for(lambda: ledger_count(iem_db) == 400, "the second half, after the outage")
        assert recovered in fleet.log()
        assert fleet.terminate(worker) == 0, fleet.log()

    assert bounced_count(iem_db) == 400
    assert drain(vhost.url, vhost.topology.dead_queue) == []
    assert vhost.queue_depth(vhost.topology.queue) == 0
    # Through a database outage the AMQP connection stays up: the retry pauses keep its heartbeats going.
    assert ("RabbitMQ connection or channel failed" in fleet.log()) == (service == "amqp")


def test_sigterm_during_a_mysql_outage_exits_0_and_hands_the_batch_back(iem_db, vhost, tmp_path, proxy_to):
    emails = add_subscribers(iem_db, 100)
    proxy, env = cut_off_worker_env("mysql", iem_db, vhost, proxy_to, retry_max_wait=5)
    proxy.cut()

    with Fleet(env, tmp_path) as fleet:
        worker = fleet.start()
        publish(vhost.url, vhost.topology, hard_bounces(emails))
        wait_for(lambda: "database not available" in fleet.log(), "the worker to meet the outage")
        assert fleet.terminate(worker, timeout=10) == 0, fleet.log()

    assert "stopped while waiting to retry" in fleet.log()
    wait_for(lambda: vhost.queue_depth(vhost.topology.queue) == 100, "all 100 back in the queue, none acked")
    assert vhost.queue_depth(vhost.topology.dead_queue) == 0


def test_a_broker_that_never_completes_the_handshake_is_waited_out(iem_db, vhost, tmp_path, proxy_to):
    emails = add_subscribers(iem_db, 20)
    proxy, env = cut_off_worker_env("amqp", iem_db, vhost, proxy_to, retry_max_wait=1)
    proxy.black_hole()  # TCP is accepted, the AMQP handshake never answered: pika's stack timeout

    with Fleet(env, tmp_path) as fleet:
        worker = fleet.start()
        wait_for(lambda: "AMQP handshake" in fleet.log(), "the handshake to time out", timeout=60)
        assert worker.poll() is None, fleet.log()
        assert "cannot reach RabbitMQ" in fleet.log() and "Traceback" not in fleet.log()
        proxy.restore()
        publish(vhost.url, vhost.topology, hard_bounces(emails))
        wait_for(lambda: ledger_count(iem_db) == 20, "the bounces, once the broker answers")
        assert fleet.terminate(worker) == 0, fleet.log()



def test_sigterm_with_a_broker_that_stopped_answering_ends_within_the_deploy_grace(iem_db, vhost, tmp_path,
                                                                                  proxy_to):
    emails = add_subscribers(iem_db, 20)
    proxy, env = cut_off_worker_env("amqp", iem_db, vhost, proxy_to)
    with Fleet(env, tmp_path) as fleet:
        worker = fleet.start()
        publish(vhost.url, vhost.topology, hard_bounces(emails))
        wait_for(lambda: ledger_count(iem_db) == 20, "the bounces applied")
        proxy.black_hole()  # the socket stays open, nothing answers: no Basic.CancelOk, no Connection.CloseOk
        started = time.monotonic()
        # It took 69 s (the heartbeat's minute); deploy/ grants 30 s.
        assert fleet.terminate(worker, timeout=20) == 0, fleet.log()
        assert time.monotonic() - started < 10, fleet.log()
    assert "did not answer within 3 s" in fleet.log()


def test_the_worker_names_itself_uniquely_in_its_consumer_tag_and_dead_letters(iem_db, vhost, tmp_path):
    """Containerised workers with host networking share host name and pid 1: a random suffix tells them apart."""
    publish_raw(vhost.url, vhost.topology, b"{not json", "poison-1")
    with Fleet(worker_env(iem_db.url, vhost.url), tmp_path) as fleet:
        workers = [fleet.start(), fleet.start()]
        for worker in workers:
            fleet.wait_consuming(worker)
        wait_for(lambda: vhost.queue_depth(vhost.topology.dead_queue) == 1, "the poison dead-lettered")
        listed = rabbitmqctl("list_consumers", "-q", "-p", vhost.name, "queue_name", "consumer_tag").stdout
        tags = sorted(line.split("\t")[1] for line in listed.splitlines() if line.startswith(vhost.topology.queue))
        names = [re.search(r"worker (\S+) consuming", Path(w.log_path).read_text()).group(1) for w in workers]
        for worker in workers:
            assert fleet.terminate(worker) == 0, fleet.log()
    host = socket.gethostname()
    assert all(re.fullmatch(rf"{re.escape(host)}:\d+:[0-9a-f]{{6}}", name) for name in names), names
    assert tags == sorted(f"pmtabounce-worker@{name}" for name in names)
    ((properties, _),) = drain(vhost.url, vhost.topology.dead_queue)
    assert properties.headers[H_WORKER] in names
