"""A small world for the `dlq` tests: IEM lists and subscribers, one list whose bounces a trigger
refuses, bounce messages published as the producer does, and the real worker to dead-letter them."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import orjson
import pika
from pmtabounce.common.record import BounceRecord
from worker_fleet import publish, publisher, worker_env

from pmtabounce.queue_policy import setup_rabbitmq

OK_LIST = 1
REFUSING_LIST = 2
REFUSAL = "list 2 takes no bounces today"
SOURCE = "bounces-2024-11-19-1000.csv"


@dataclass
class DlqWorld:
    db: object  # conftest IemDatabase
    vhost: object  # conftest Vhost
    tmp: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def settings(self):
        return replace(self.db.settings(), amqp_url=self.vhost.url)

    @property
    def audit_file(self) -> Path:
        return self.tmp / "audit.jsonl"

    def env(self) -> dict:
        return worker_env(self.db.url, self.vhost.url, table_prefix=self.db.tables.prefix,
                          dlq_audit_file=self.audit_file, log_level="INFO")

    def dlq(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """Run `pmtabounce dlq ARGS` as an operator would."""
        done = subprocess.run(
            [sys.executable, "-m", "pmtabounce", "dlq", *args],
            env=self.env(), input=stdin if stdin is not None else "", capture_output=True, text=True, timeout=120,
        )
        if check:
            assert done.returncode == 0, f"dlq {' '.join(args)}: rc {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    def dlq_json(self, *args: str) -> dict:
        return orjson.loads(self.dlq("list", "--json", *args).stdout)

    def spawn_dlq(self, *args: str) -> subprocess.Popen:
        """`pmtabounce dlq ARGS` in the background (killed by kill_leftovers if still running); its
        stderr goes to the file `process.log_path`."""
        log_path = self.tmp / f"dlq-{len(self.processes)}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "pmtabounce", "dlq", *args], env=self.env(),
                                       stdout=subprocess.DEVNULL, stderr=log)
        process.log_path = log_path
        self.processes.append(process)
        return process

    def kill_leftovers(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait()

    def run_worker(self) -> None:
        """The real worker, until the queue has been quiet for 3 s."""
        done = subprocess.run(
            [sys.executable, "-m", "pmtabounce", "worker", "--exit-when-idle", "3"],
            env=self.env(), capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, done.stderr

    def refuse_list_2(self) -> None:
        self.db.query(
            "CREATE TRIGGER pmtt_refuse BEFORE INSERT ON {t.bounces} FOR EACH ROW "
            f"BEGIN IF NEW.listid = {REFUSING_LIST} THEN "
            f"SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{REFUSAL}'; END IF; END"
        )

    def accept_list_2(self) -> None:
        self.db.query("DROP TRIGGER pmtt_refuse")

    def publish(self, records: list[BounceRecord]) -> None:
        """As the producer does: persistent, the fingerprint as message id, source file and line."""
        publish(self.vhost.url, self.vhost.topology, records)

    def publish_raw(self, messages: list[tuple[bytes, pika.BasicProperties]]) -> None:
        """Anything at all, as a broken producer might send it (poison has no message id)."""
        connection, channel = publisher(self.vhost.url, self.vhost.topology)
        try:
            topology = self.vhost.topology
            for body, properties in messages:
                channel.basic_publish(topology.exchange, topology.routing_key, body, properties, mandatory=True)
        finally:
            connection.close()

    def bounced(self, list_id: int) -> list[tuple]:
        """(email, bounced?, bounce rows, ledger rows) for every subscriber of the list."""
        return self.db.query(
            "SELECT s.emailaddress, s.bounced > 0, "
            "(SELECT COUNT(*) FROM {t.bounces} b WHERE b.subscriberid = s.subscriberid), "
            "(SELECT COUNT(*) FROM {t.ledger} l WHERE l.email = s.emailaddress) "
            "FROM {t.subscribers} s WHERE s.listid = %s ORDER BY s.emailaddress",
            (list_id,),
        )


def make_world(db, vhost, tmp: Path, subscribers: int = 3) -> DlqWorld:
    world = DlqWorld(db, vhost, tmp)
    db.execute_many(
        "INSERT INTO {t.lists} (listid, name, visiblefields) VALUES (%s, %s, '')",
        [(OK_LIST, "newsletter"), (REFUSING_LIST, "offers")],
    )
    db.execute_many(
        "INSERT INTO {t.subscribers} (listid, emailaddress, domainname, confirmed) VALUES (%s, %s, %s, '1')",
        [(list_id, address(list_id, n), "example.com") for list_id in (OK_LIST, REFUSING_LIST)
         for n in range(subscribers)],
    )
    setup_rabbitmq(world.settings)
    return world


def address(list_id: int, n: int) -> str:
    return f"user{n}@list{list_id}.example.com"


def hard_bounce(list_id: int, n: int, line: int) -> BounceRecord:
    return BounceRecord("b", 1_732_010_733 + n, address(list_id, n), "5.1.1 (bad destination mailbox address)",
                        "smtp;550 5.1.1 User unknown", "bad-mailbox", (list_id,), 0, SOURCE, line)
