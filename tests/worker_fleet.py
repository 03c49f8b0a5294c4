"""What the worker and fleet tests share: worker processes, publishing and draining queues."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path

import pika
from pmtabounce.common.accounting import AccountingFile
from pmtabounce.common.bouncedir import pending_files
from pmtabounce.common.broker import declare_topology
from pmtabounce.common.complaint import ComplaintRecord
from pmtabounce.common.message import CONTENT_TYPE, encode
from pmtabounce.common.record import BounceRecord
from pmtabounce.common.topology import H_SOURCE_FILE, H_SOURCE_LINE, Topology


def worker_env(mysql_url: str, amqp_url: str, **settings) -> dict[str, str]:
    """The test runner's environment without its PMTABOUNCE_* variables, plus these."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMTABOUNCE_")}
    env.update(PMTABOUNCE_MYSQL_URL=mysql_url, PMTABOUNCE_AMQP_URL=amqp_url)
    env.update({f"PMTABOUNCE_{name.upper()}": str(value) for name, value in settings.items()})
    return env


class Fleet:
    """Worker processes of one test; whatever is still running at the end is killed."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait()

    def start(self, *args: str) -> subprocess.Popen:
        log = open(self.logs / f"worker-{len(self.processes)}.log", "wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "pmtabounce", "worker", *args],
            env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        process.log_path = log.name
        self.processes.append(process)
        return process

    def wait_consuming(self, process: subprocess.Popen) -> None:
        """Until the worker says it consumes (its signal handlers are in place by then)."""
        wait_for(lambda: self._started(process), "a worker to start")

    def running(self) -> list[subprocess.Popen]:
        return [p for p in self.processes if p.poll() is None]

    def consuming(self) -> list[subprocess.Popen]:
        """Running workers past their start-up."""
        return [p for p in self.running() if self._started(p)]

    @staticmethod
    def _started(process: subprocess.Popen) -> bool:
        return "consuming" in Path(process.log_path).read_text(errors="replace")

    def finish(self, timeout: float = 120) -> list[int]:
        """Wait for every worker to exit by itself (--exit-when-idle); their exit codes."""
        return [p.wait(timeout=timeout) for p in self.processes]

    def terminate(self, process: subprocess.Popen, timeout: float = 20) -> int:
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout=timeout)

    def log(self) -> str:
        return "\n".join(Path(p.log_path).read_text(errors="replace") for p in self.processes)


def produce_once(env: dict[str, str], directory: Path, log: Path) -> None:
    """`pmtabounce producer --once DIR`: every file published, confirmed and marked done, or the test fails."""
    with open(log, "wb") as output:
        done = subprocess.run([sys.executable, "-m", "pmtabounce", "producer", "--once", str(directory)],
                              env=env, stdout=output, stderr=subprocess.STDOUT, timeout=300)
    assert done.returncode == 0, log.read_text(errors="replace")


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    """Poll until `condition` holds; fail naming `what` (a guard against hanging, not a timing check)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def publisher(url: str, topology: Topology):
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    declare_topology(channel, topology)
    channel.confirm_delivery()
    return connection, channel


def publish(url: str, topology: Topology, records: Iterable[BounceRecord]) -> int:
    """Publish as the producer does (persistent, message_id, source headers), each one confirmed."""
    connection, channel = publisher(url, topology)
    count = 0
    try:
        for record in records:
            publish_on(channel, topology, record)
            count += 1
    finally:
        connection.close()
    return count


def publish_on(channel, topology: Topology, record: BounceRecord) -> None:
    """One record on a confirming channel (`publisher`), as the producer publishes it."""
    headers = {H_SOURCE_FILE: record.source_file, H_SOURCE_LINE: record.source_line}
    properties = pika.BasicProperties(
        content_type=CONTENT_TYPE, delivery_mode=2, message_id=record.fingerprint, headers=headers
    )
    channel.basic_publish(topology.exchange, topology.routing_key, encode(record), properties, mandatory=True)


def publish_raw(url: str, topology: Topology, body: bytes, message_id: str, headers: dict | None = None) -> None:
    connection, channel = publisher(url, topology)
    try:
        properties = pika.BasicProperties(delivery_mode=2, message_id=message_id, headers=headers)
        channel.basic_publish(topology.exchange, topology.routing_key, body, properties, mandatory=True)
    finally:
        connection.close()


def drain(url: str, queue: str) -> list[tuple[pika.BasicProperties, bytes]]:
    """Take every message out of `queue` (the dead-letter queue, at the end of a test)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    messages = []
    try:
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return messages
            messages.append((properties, body))
    finally:
        connection.close()


def records_of(directory: Path) -> list[BounceRecord | ComplaintRecord]:
    """Every bounce and complaint record of the accounting files in `directory`, in the order the producer
    sends them."""
    return [item for path in pending_files(directory) for item in AccountingFile(path)
            if isinstance(item, (BounceRecord, ComplaintRecord))]


def ledger_count(db) -> int:
    return db.query("SELECT COUNT(*) FROM {t.ledger}")[0][0]


def free_port() -> int:
    """A TCP port nobody listens on right now (for PMTABOUNCE_METRICS_PORT)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(port: int, path: str) -> tuple[int, str]:
    """(status, body) of a GET on the local health server; (0, '') while it does not listen."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:  # not listening yet
        return 0, ""


def add_subscribers(db, count: int) -> list[str]:
    """List 1 with `count` active subscribers; subscriberid n+1 is user{n}.

    Spread over 20 domains: 1500 hard bounces of one domain within minutes is a storm the domain guard holds.
    """
    emails = [f"user{n}@example{n % 20}.com" for n in range(count)]
    db.query("INSERT INTO {t.lists} (listid, name, subscribecount, visiblefields) VALUES (1, 'List 1', %s, '')",
             (count,))
    db.execute_many("INSERT INTO {t.subscribers} (listid, emailaddress) VALUES (1, %s)", [(e,) for e in emails])
    return emails


def hard_bounces(emails: list[str], start: int = 0) -> list[BounceRecord]:
    return [
        BounceRecord("b", 1_732_000_000 + n, email, "5.1.1", "smtp;550 5.1.1 user unknown", "bad-mailbox",
                     (1,), 0, "bounces-2024-11-19-1000.csv", start + n + 2)
        for n, email in enumerate(emails)
    ]
