"""`pmtabounce producer` as a process against the real RabbitMQ: what reaches the queue, and what survives
kill -9, SIGTERM, a cut connection, a second producer and files dropped in while it runs."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pika
import pytest
from iem_seed import rejected_rows, write_oversized
from pmtabounce.common.accounting import AccountingFile, RejectedRow
from pmtabounce.common.bouncedir import REJECT_COLUMN
from pmtabounce.common.complaint import ComplaintRecord
from pmtabounce.common.message import CONTENT_TYPE, decode
from pmtabounce.common.record import BounceRecord
from pmtabounce.common.topology import H_SOURCE_FILE, H_SOURCE_LINE
from pmtabounce.producer.checkpoint import checkpoint_path, load_checkpoint
from tcp_proxy import TcpProxy

SAMPLES = Path(__file__).parent.parent / "data" / "samples"
HEADER = "type,timeLogged,rcpt,dsnAction,dsnStatus,dsnDiag,bounceCat,header_X-Mailer-LID,header_X-Mailer-SID\r\n"


@dataclass
class Producer:
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float = 120) -> int:
        return self.process.wait(timeout=timeout)


@pytest.fixture
def spawn(tmp_path):
    """Start `pmtabounce producer` processes; whatever is left running is killed afterwards."""
    started: list[Producer] = []

    def start(directory: Path, env: dict, *args: str) -> Producer:
        log_path = tmp_path / f"producer-{len(started)}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "pmtabounce", "producer", *args, str(directory)],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        started.append(Producer(process, log_path))
        return started[-1]

    yield start
    for producer in started:
        if producer.process.poll() is None:
            producer.process.kill()
            producer.process.wait(timeout=30)


def producer_env(amqp_url: str, **settings) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PMTABOUNCE_")}
    env["PMTABOUNCE_AMQP_URL"] = amqp_url
    env.update({f"PMTABOUNCE_{key.upper()}": str(value) for key, value in settings.items()})
    return env


def wait_for(condition, what: str, timeout: float = 60.0):
    """Poll until `condition()` is truthy; a generous deadline, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def write_bounces(path: Path, count: int, first: int = 0, bad_every: int = 0) -> None:
    """`count` distinct bounces (every `bad_every`-th with no rcpt), moved into place whole, as PowerMTA does."""
    temporary = path.with_name(f".{path.name}.part")
    with open(temporary, "w", newline="") as handle:
        handle.write(HEADER)
        for n in range(first, first + count):
            rcpt = "" if bad_every and n % bad_every == bad_every - 1 else f"user{n}@example.com"
            handle.write(f'b,{1732010000 + n},{rcpt},failed,5.1.1 (bad destination mailbox address),'
                         f'"smtp;550 5.1.1 <{rcpt}>: unknown, ""gone""",bad-mailbox,"3,7",42\r\n')
    os.replace(temporary, path)


def parse(path: Path) -> tuple[list[BounceRecord | ComplaintRecord], list[RejectedRow]]:
    items = list(AccountingFile(path))
    return ([i for i in items if not isinstance(i, RejectedRow)], [i for i in items if isinstance(i, RejectedRow)])


def drain(vhost, at_least: int = 0, timeout: float = 120.0) -> list:
    """Every message in the work queue as (properties, body), consumed away."""
    connection, channel = vhost.channel()
    messages = []
    deadline = time.monotonic() + timeout
    try:
        channel.basic_qos(prefetch_count=1000)
        for method, properties, body in channel.consume(vhost.topology.queue, auto_ack=True, inactivity_timeout=1):
            if method is not None:
                messages.append((properties, body))
            elif len(messages) >= at_least or time.monotonic() > deadline:
                break
    finally:
        connection.close()
    return messages


def rabbitmqctl(*args: str) -> None:
    tool = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([tool, "-q", *args], check=True, capture_output=True, timeout=60)


def checkpoint_line(source: Path) -> int:
    try:
        saved = load_checkpoint(source, source.stat().st_size)
    except FileNotFoundError:
        return 0
    return saved.line if saved else 0


def rejected_lines(source: Path) -> list[int]:
    """The line numbers named in NAME.rejected's reason column, in file order."""
    with open(source.with_name(source.name + ".rejected"), newline="") as handle:
        header, *rows = list(csv.reader(handle))
    reason = header.index(REJECT_COLUMN)
    return [int(row[reason].split(":")[0].removeprefix("line ")) for row in rows]


@pytest.mark.parametrize("done_action", ["rename", "delete"])
def test_once_publishes_every_sample_bounce_as_one_persistent_message(vhost, tmp_path, spawn, done_action):
    directory = tmp_path / "bounces"
    directory.mkdir()
    for sample in SAMPLES.glob("*.csv"):
        shutil.copyfile(sample, directory / sample.name)
    expected = {}
    for path in sorted(directory.glob("*.csv")):
        expected.update({(r.source_file, r.source_line): r for r in parse(path)[0]})
    bad = parse(directory / "bounces-2024-11-19-1025.csv")[1]

    producer = spawn(directory, producer_env(vhost.url, done_action=done_action), "--once")
    assert producer.wait() == 0, producer.log()

    messages = drain(vhost, at_least=len(expected))
    got = {}
    for properties, body in messages:
        record = decode(body)
        assert properties.message_id == record.fingerprint
        assert properties.delivery_mode == 2
        assert properties.content_type == CONTENT_TYPE
        assert properties.type == ("complaint" if record.type == "f" else "bounce")
        assert properties.app_id == "pmtabounce-producer"
        assert properties.timestamp
        assert properties.headers == {H_SOURCE_FILE: record.source_file, H_SOURCE_LINE: record.source_line}
        got[(record.source_file, record.source_line)] = record
    assert len(messages) == len(expected) == 15 + 6  # the bounce samples, then the complaints sample's b and f rows
    assert got == expected

    names = {p.name for p in directory.iterdir()}
    assert not {n for n in names if n.endswith(".csv")}
    assert not {n for n in names if "checkpoint" in n}
    if done_action == "rename":
        assert {f"{s.name}.done" for s in SAMPLES.glob("*.csv")} <= names  # empty and header-only ones too
    else:
        assert not {n for n in names if n.endswith(".done")}
    rejects = directory / "bounces-2024-11-19-1025.csv"
    assert rejected_lines(rejects) == [row.source_line for row in bad] and len(bad) == 2
    assert "line 4: rejected: rcpt is empty" in producer.log()


def test_a_record_too_big_for_a_queue_message_is_rejected_with_its_cells_not_published(vhost, tmp_path, spawn):
    """A worker dead-letters a body over 256 KiB for ever: the producer keeps such a record, as `process` does."""
    directory = tmp_path / "bounces"
    directory.mkdir()
    big_cells = write_oversized(directory / "bounces-1.csv")
    producer = spawn(directory, producer_env(vhost.url), "--once")
    assert producer.wait() == 0, producer.log()
    assert [decode(body).rcpt for _, body in drain(vhost, at_least=1)] == ["ann@example.com"]
    rejected = rejected_rows(directory / "bounces-1.csv")
    assert [cells for _, cells in rejected] == big_cells
    assert all("262144-byte limit" in reason for reason, _ in rejected)
    assert (directory / "bounces-1.csv.done").exists()


def test_sigterm_then_kill_9_mid_file_resume_from_the_checkpoint(vhost, tmp_path, spawn):
    directory = tmp_path / "bounces"
    directory.mkdir()
    source = directory / "bounces-2024-11-20-0000.csv"
    write_bounces(source, 20000, bad_every=997)
    records, bad = parse(source)
    window = 50
    env = producer_env(vhost.url, publish_window=window)

    first = spawn(directory, env)  # watch mode
    wait_for(lambda: checkpoint_line(source) > 2000, "a first checkpoint")
    first.process.send_signal(signal.SIGTERM)
    assert first.wait(timeout=30) == 0, first.log()
    stopped_at = checkpoint_line(source)
    assert source.exists() and stopped_at < 20000, "the stop should land mid-file"
    assert "stopped; records up to line" in first.log()

    second = spawn(directory, env, "--once")
    wait_for(lambda: checkpoint_line(source) > stopped_at + 2000, "progress after the restart")
    second.process.kill()
    second.wait(timeout=30)
    assert f"publishing after line {stopped_at} (checkpoint)" in second.log()
    assert source.exists(), "the kill should land mid-file"

    third = spawn(directory, producer_env(vhost.url), "--once")  # the default window: no kill this time
    assert third.wait() == 0, third.log()
    assert not source.exists() and source.with_name(source.name + ".done").exists()
    assert not checkpoint_path(source).exists()
    assert rejected_lines(source) == [row.source_line for row in bad]  # cut back on resume: none twice

    messages = drain(vhost, at_least=len(records))
    ids = [properties.message_id for properties, _ in messages]
    assert set(ids) == {r.fingerprint for r in records}
    # SIGTERM waited for its confirms, so only kill -9 sends anything twice: at most what was
    # in flight plus what was confirmed since the last checkpoint.
    assert len(ids) - len(records) <= 2 * window


def test_a_cut_connection_mid_file_loses_nothing(vhost, tmp_path, spawn):
    directory = tmp_path / "bounces"
    directory.mkdir()
    source = directory / "bounces-2024-11-20-0005.csv"
    write_bounces(source, 10000)
    records, _ = parse(source)
    proxy = TcpProxy("127.0.0.1", 5672)
    try:
        env = producer_env(proxy.url_for(vhost.url), publish_window=100, retry_max_wait=1)
        producer = spawn(directory, env, "--once")
        wait_for(lambda: checkpoint_line(source) > 1000, "progress before the cut")
        proxy.cut()
        wait_for(lambda: "lost the connection to RabbitMQ" in producer.log(), "the producer to notice")
        time.sleep(1.0)
        assert producer.process.poll() is None, producer.log()
        proxy.restore()
        assert producer.wait() == 0, producer.log()
    finally:
        proxy.close()
    assert "unconfirmed messages will be sent again" in producer.log()
    assert source.with_name(source.name + ".done").exists()
    messages = drain(vhost, at_least=len(records))
    assert {properties.message_id for properties, _ in messages} == {r.fingerprint for r in records}


def test_watch_mode_publishes_new_files_and_a_second_producer_waits_its_turn(vhost, tmp_path, spawn):
    directory = tmp_path / "bounces"
    directory.mkdir()
    env = producer_env(vhost.url, rescan_seconds=60)  # so only the file watcher can notice in time
    first = spawn(directory, env)
    wait_for(lambda: "connected to" in first.log(), "the first producer to connect")
    second = spawn(directory, env)
    wait_for(lambda: f"being worked by another process (pid {first.process.pid})" in second.log(),
             "the second producer to wait for the lock")

    write_bounces(directory / "bounces-2024-11-21-0000.csv", 40)
    wait_for(lambda: (directory / "bounces-2024-11-21-0000.csv.done").exists(), "the first file to be done", 30)
    assert "publishing" not in second.log() and second.process.poll() is None

    first.process.send_signal(signal.SIGTERM)
    assert first.wait(timeout=30) == 0, first.log()
    wait_for(lambda: "took over" in second.log(), "the second producer to take over")
    write_bounces(directory / "bounces-2024-11-21-0005.csv", 60, first=40)
    wait_for(lambda: (directory / "bounces-2024-11-21-0005.csv.done").exists(), "the second file to be done", 30)
    second.process.send_signal(signal.SIGTERM)
    assert second.wait(timeout=30) == 0, second.log()

    messages = drain(vhost, at_least=100)
    assert sorted(properties.headers[H_SOURCE_FILE] for properties, _ in messages) == (
        ["bounces-2024-11-21-0000.csv"] * 40 + ["bounces-2024-11-21-0005.csv"] * 60
    )


def test_once_without_a_broker_exits_non_zero_and_leaves_files_alone(tmp_path, spawn):
    directory = tmp_path / "bounces"
    directory.mkdir()
    write_bounces(directory / "bounces-2024-11-22-0000.csv", 5)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    producer = spawn(directory, producer_env(f"amqp://guest:guest@127.0.0.1:{port}/%2F", retry_max_wait=0.1),
                     "--once")
    assert producer.wait() != 0
    log = producer.log()
    assert "gave up" in log and f"amqp://127.0.0.1:{port}/" in log
    assert "guest:guest" not in log
    assert (directory / "bounces-2024-11-22-0000.csv").exists()


def test_nacked_and_unroutable_messages_are_sent_again_until_taken(vhost, tmp_path, spawn):
    directory = tmp_path / "bounces"
    directory.mkdir()
    producer = spawn(directory, producer_env(vhost.url, retry_max_wait=0.5))
    wait_for(lambda: "connected to" in producer.log(), "the producer to connect")
    queue, exchange, key = vhost.topology.queue, vhost.topology.exchange, vhost.topology.routing_key

    # A full queue with overflow=reject-publish (the queue's policy; this one stands in for it) nacks
    # what does not fit.
    connection, channel = vhost.channel()
    for _ in range(10):
        channel.basic_publish(exchange, key, b"filler", pika.BasicProperties(message_id="filler"))
    rabbitmqctl("set_policy", "-p", vhost.name, "--apply-to", "queues", "tiny", f"^{queue}$",
                '{"max-length": 5, "overflow": "reject-publish"}')
    write_bounces(directory / "bounces-2024-11-23-0000.csv", 30)
    wait_for(lambda: "(nacked)" in producer.log(), "a nack")
    assert not (directory / "bounces-2024-11-23-0000.csv.done").exists()
    rabbitmqctl("clear_policy", "-p", vhost.name, "tiny")
    wait_for(lambda: (directory / "bounces-2024-11-23-0000.csv.done").exists(), "the file after the nacks")

    # No queue bound: mandatory messages come back (basic.return), then are acked; they must go again,
    # and the producer's reconnect declares the binding again.
    channel.queue_unbind(queue, exchange, routing_key=key)
    connection.close()
    write_bounces(directory / "bounces-2024-11-23-0005.csv", 20, first=30)
    wait_for(lambda: "unroutable: 312 NO_ROUTE" in producer.log(), "a returned message")
    assert not (directory / "bounces-2024-11-23-0005.csv.done").exists()
    wait_for(lambda: (directory / "bounces-2024-11-23-0005.csv.done").exists(), "the file after the returns")
    assert "reconnecting, which declares the topology again" in producer.log()

    producer.process.send_signal(signal.SIGTERM)
    assert producer.wait(timeout=30) == 0, producer.log()
    expected = {r.fingerprint for name in ("0000", "0005")
                for r in parse(directory / f"bounces-2024-11-23-{name}.csv.done")[0]}
    messages = drain(vhost, at_least=60)
    assert len(expected) == 50 and len(messages) == 60
    assert {properties.message_id for properties, _ in messages} == expected | {"filler"}


@pytest.fixture
def rabbit_proxy():
    """A TcpProxy between the producer and RabbitMQ, closed after the test."""
    proxy = TcpProxy("127.0.0.1", 5672)
    yield proxy
    proxy.close()


def one_file(tmp_path: Path, name: str, count: int) -> tuple[Path, Path]:
    """A bounce directory holding one file of `count` bounces: (directory, file)."""
    directory = tmp_path / "bounces"
    directory.mkdir()
    write_bounces(directory / name, count)
    return directory, directory / name


def test_sigterm_with_a_broker_that_stopped_answering_ends_within_the_deploy_grace(vhost, tmp_path, spawn,
                                                                                  rabbit_proxy):
    directory, source = one_file(tmp_path, "bounces-2024-11-24-0000.csv", 20000)
    producer = spawn(directory, producer_env(rabbit_proxy.url_for(vhost.url), publish_window=100))
    wait_for(lambda: checkpoint_line(source) > 1000, "progress before the broker goes silent")
    rabbit_proxy.black_hole()  # the socket stays open, nothing answers: no confirm, no Connection.CloseOk
    time.sleep(0.5)
    started = time.monotonic()
    producer.process.send_signal(signal.SIGTERM)
    # 10 s for the outstanding confirms, then at most a few seconds for the close; deploy/ grants 30 s.
    assert producer.wait(timeout=20) == 0, producer.log()
    assert time.monotonic() - started < 15, producer.log()
    log = producer.log()
    assert "SIGTERM received: reading no more" in log
    assert "did not answer the close" in log and "the next start sends them again" in log
    assert source.exists() and checkpoint_line(source) < 20000  # not done: the rest is published next time


def test_a_broker_that_never_completes_the_handshake_is_waited_out(vhost, tmp_path, spawn, rabbit_proxy):
    directory, source = one_file(tmp_path, "bounces-2024-11-24-0005.csv", 10)
    rabbit_proxy.black_hole()  # TCP is accepted, the AMQP handshake never answered: pika's stack timeout
    producer = spawn(directory, producer_env(rabbit_proxy.url_for(vhost.url), retry_max_wait=1), "--once")
    wait_for(lambda: "AMQP handshake" in producer.log(), "the handshake to time out")
    assert producer.process.poll() is None, producer.log()
    rabbit_proxy.restore()
    assert producer.wait() == 0, producer.log()
    assert "cannot reach RabbitMQ" in producer.log() and "Traceback" not in producer.log()
    assert source.with_name(source.name + ".done").exists()
    assert len(drain(vhost, at_least=10)) == 10


def test_a_symbolic_link_named_csv_is_not_published_and_is_named_in_a_warning(vhost, tmp_path, spawn):
    secret = tmp_path / "pmtabounce.env"
    secret.write_text("type,rcpt\r\nb,secret@example.com\r\n")
    directory = tmp_path / "bounces"
    directory.mkdir()
    write_bounces(directory / "b-1.csv", 3)
    (directory / "b-2.csv").symlink_to(secret)
    producer = spawn(directory, producer_env(vhost.url), "--once")
    assert producer.wait() == 0, producer.log()
    assert len(drain(vhost, at_least=3)) == 3
    assert "b-2.csv" in producer.log() and "symbolic link" in producer.log()
    assert sorted(p.name for p in directory.iterdir() if not p.name.startswith(".")) == ["b-1.csv.done", "b-2.csv"]
