"""deploy/rabbitmq/definitions.json imports into the real RabbitMQ, matches `pmtabounce setup`,
and its user can do a worker's job and nothing outside pmtabounce's names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker
from pmtabounce.common.record import BounceRecord
from pmtabounce.common.topology import Topology
from rabbit_management import ensure_management_api
from throwaway import rabbitmqctl
from worker_fleet import Fleet, drain, ledger_count, publish, publish_raw, wait_for, worker_env

DEFINITIONS = Path(__file__).parents[2] / "deploy" / "rabbitmq" / "definitions.json"
PASSWORD = "defs-" + uuid.uuid4().hex


def by_name(items: list[dict]) -> dict[str, dict]:
    return {item["name"]: item for item in items}


def test_definitions_declare_exactly_the_topology_of_setup():
    definitions = json.loads(DEFINITIONS.read_text())
    topology = Topology()
    queues, exchanges = by_name(definitions["queues"]), by_name(definitions["exchanges"])
    assert queues[topology.queue]["arguments"] == topology.queue_arguments()
    assert queues[topology.dead_queue]["arguments"] == topology.dead_queue_arguments()
    assert all(q["durable"] and not q["auto_delete"] for q in queues.values())
    assert queues[topology.unrouted_queue]["arguments"] == {"x-queue-type": "quorum"}
    assert {(e["name"], e["type"], e["durable"]) for e in exchanges.values()} == {
        (topology.exchange, "direct", True), (topology.dead_exchange, "direct", True),
        (topology.events_exchange, "topic", True), (topology.unrouted_exchange, "fanout", True)}
    assert exchanges[topology.events_exchange]["arguments"] == topology.events_arguments()
    assert {(b["source"], b["destination"], b["routing_key"]) for b in definitions["bindings"]} == {
        (topology.exchange, topology.queue, topology.routing_key),
        (topology.dead_exchange, topology.dead_queue, topology.routing_key),
        (topology.unrouted_exchange, topology.unrouted_queue, "")}
    (policy,) = definitions["policies"]
    assert (policy["name"], policy["pattern"], policy["definition"], policy["apply-to"]) == (
        topology.policy_name, topology.policy_pattern(), topology.policy_definition(), "queues")
    (user,) = definitions["users"]
    assert user["password_hash"] == "" and user["tags"] == ["policymaker"]  # no password, no admin rights


@pytest.fixture
def imported():
    """definitions.json imported with its vhost and user renamed for this test; both deleted after."""
    name = f"pmtt-defs-{uuid.uuid4().hex[:10]}"
    text = DEFINITIONS.read_text().replace('"pmtabounce"', json.dumps(name))
    assert text.count(json.dumps(name)) >= 8  # the vhost of every object, the user and its permissions
    # rabbitmqctl runs as the rabbitmq user, who cannot read pytest's tmp_path: a readable file in /tmp.
    handle, path = tempfile.mkstemp(prefix="pmtt-definitions-", suffix=".json")
    os.write(handle, text.encode())
    os.close(handle)
    os.chmod(path, 0o644)
    try:
        rabbitmqctl("import_definitions", path)
        wait_for(lambda: Topology().queue in rabbitmqctl("list_queues", "-p", name, "name").stdout,
                 "the definitions import", 60)
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        os.unlink(path)
        rabbitmqctl("delete_vhost", name, check=False)
        rabbitmqctl("delete_user", name, check=False)


def setup(amqp_url: str) -> subprocess.CompletedProcess:
    env = worker_env("mysql://unused@127.0.0.1/unused", amqp_url)
    return subprocess.run([sys.executable, "-m", "pmtabounce", "setup", "--no-database", "--broker"], env=env,
                          capture_output=True, text=True, timeout=60)


def test_imported_definitions_are_what_setup_declares_and_the_user_can_run_a_worker_only(imported, iem_db, tmp_path):
    vhost = imported
    # setup redeclares everything: any argument that differed would be PRECONDITION_FAILED (406).
    done = setup(f"amqp://guest:guest@127.0.0.1:5672/{vhost}")
    assert done.returncode == 0, done.stderr

    rabbitmqctl("change_password", vhost, PASSWORD)
    url = f"amqp://{vhost}:{PASSWORD}@127.0.0.1:5672/{vhost}"
    assert setup(url).returncode == 0  # the user may (re)declare pmtabounce's own names
    iem_db.query("INSERT INTO {t.lists} (listid, name, subscribecount, visiblefields) VALUES (1, 'L', 1, '')")
    iem_db.query("INSERT INTO {t.subscribers} (listid, emailaddress) VALUES (1, 'ann@example.com')")
    record = BounceRecord("b", 1_732_000_000, "ann@example.com", "5.1.1", "smtp;550 unknown", "bad-mailbox",
                          (1,), 0, "bounces-1.csv", 2)
    publish(url, Topology(), [record])
    publish_raw(url, Topology(), b"not json", "poison")
    with Fleet(worker_env(iem_db.url, url), tmp_path) as fleet:
        fleet.start("--exit-when-idle", "1")
        assert fleet.finish() == [0], fleet.log()
    assert ledger_count(iem_db) == 1
    assert [p.message_id for p, _ in drain(url, Topology().dead_queue)] == ["poison"]

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        with pytest.raises(ChannelClosedByBroker) as refused:
            connection.channel().queue_declare("someone-elses-queue")
        assert refused.value.reply_code == 403
        with pytest.raises(ChannelClosedByBroker) as refused:
            connection.channel().basic_get("amq.rabbitmq.trace")
        assert refused.value.reply_code == 403
    finally:
        if connection.is_open:
            connection.close()


def test_the_imported_user_cannot_log_in_before_an_operator_sets_its_password(imported):
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(pika.URLParameters(f"amqp://{imported}:@127.0.0.1:5672/{imported}"))


def test_the_imported_user_can_run_every_command_it_is_meant_for(imported, iem_db, tmp_path):
    vhost = imported
    rabbitmqctl("change_password", vhost, PASSWORD)
    ensure_management_api()
    url = f"amqp://{vhost}:{PASSWORD}@127.0.0.1:5672/{vhost}"
    bounce_dir = tmp_path / "bounces"
    bounce_dir.mkdir()
    env = worker_env(iem_db.url, url, bounce_dir=bounce_dir,
                     rabbitmq_api_url=f"http://{vhost}:{PASSWORD}@127.0.0.1:15672")

    def run(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "pmtabounce", *args], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, f"{' '.join(args)}: rc {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    run("setup")  # tables, topology and the queue's policy (the policymaker tag)
    iem_db.query("INSERT INTO {t.lists} (listid, name, subscribecount, visiblefields) VALUES (1, 'L', 1, '')")
    iem_db.query("INSERT INTO {t.subscribers} (listid, emailaddress) VALUES (1, 'ann@example.com')")
    (bounce_dir / "bounces-1.csv").write_text(
        "type,timeLogged,rcpt,dsnStatus,dsnDiag,bounceCat,header_X-Mailer-LID,header_X-Mailer-SID\r\n"
        "b,1732000000,ann@example.com,5.1.1,smtp;550 unknown,bad-mailbox,1,0\r\n")
    run("producer", "--once")
    publish_raw(url, Topology(), b"not json", "poison")
    run("worker", "--exit-when-idle", "1")
    assert ledger_count(iem_db) == 1

    report = json.loads(run("status", "--json").stdout)  # the management API answers this user
    assert report["ok"] is True and report["queue"]["unacked"] == 0 and report["dead_letter"]["messages"] == 1
    (letter,) = json.loads(run("dlq", "list", "--json").stdout)["messages"]
    assert "poison" in run("dlq", "show", letter["id"]).stdout
    export = tmp_path / "dead.jsonl"
    run("dlq", "export", str(export))
    run("dlq", "replay", "--yes")  # back to the work queue
    run("dlq", "import", str(export))  # and a copy into the dead-letter queue again
    run("dlq", "purge", "--yes")
    assert json.loads(run("dlq", "list", "--json").stdout)["messages"] == []


LEGACY_ARGUMENTS = {"x-queue-type": "quorum", "x-delivery-limit": 20,
                    "x-dead-letter-exchange": "pmtabounce.dead-letter", "x-dead-letter-routing-key": "bounce",
                    "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}


def legacy_queue_with(vhost: str, count: int) -> None:
    """As guest: the work queue as versions before the policy declared it, bound, holding `count` messages."""
    topology = Topology()
    connection = pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@127.0.0.1:5672/{vhost}"))
    channel = connection.channel()
    channel.queue_delete(topology.queue)
    channel.queue_declare(topology.queue, durable=True, arguments=LEGACY_ARGUMENTS)
    channel.queue_bind(topology.queue, topology.exchange, routing_key=topology.routing_key)
    channel.confirm_delivery()
    for n in range(count):
        channel.basic_publish(topology.exchange, topology.routing_key, str(n).encode(),
                              pika.BasicProperties(message_id=f"m{n}", delivery_mode=2))
    connection.close()


def queue_list(vhost: str) -> dict[str, str]:
    rows = rabbitmqctl("list_queues", "-q", "-p", vhost, "name", "messages", "arguments").stdout.splitlines()
    return {row.split("\t")[0]: row for row in rows[1:] if "\t" in row}


def test_the_shipped_user_moves_an_older_x_argument_queue_to_the_policy(imported):
    vhost = imported
    ensure_management_api()  # setup sets the policy through it, as this user (policymaker)
    rabbitmqctl("change_password", vhost, PASSWORD)
    legacy_queue_with(vhost, 50)
    done = setup(f"amqp://{vhost}:{PASSWORD}@127.0.0.1:5672/{vhost}")
    assert done.returncode == 0, done.stderr
    queues = queue_list(vhost)
    topology = Topology()
    assert topology.migration_queue not in queues
    assert "x-delivery-limit" not in queues[topology.queue]
    assert sorted(int(body) for _, body in drain(f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
                                                  topology.queue)) == list(range(50))


def test_a_user_who_may_not_publish_to_the_exchange_is_refused_before_anything_is_unbound(imported):
    vhost = imported
    ensure_management_api()
    rabbitmqctl("change_password", vhost, PASSWORD)
    # No write on pmtabounce.bounces (queue and exchange share the name): the move could not be done.
    rabbitmqctl("set_permissions", "-p", vhost, vhost, ".*", "^pmtabounce\\.(bounces\\.migrating|dead-letter)$", ".*")
    legacy_queue_with(vhost, 5)
    done = setup(f"amqp://{vhost}:{PASSWORD}@127.0.0.1:5672/{vhost}")
    assert done.returncode == 1, done.stderr
    assert "write permission on pmtabounce.bounces" in done.stderr and "Traceback" not in done.stderr
    queues = queue_list(vhost)
    assert Topology().migration_queue not in queues  # nothing declared, bound or unbound
    assert sorted(int(body) for _, body in drain(f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
                                                  Topology().queue)) == list(range(5))


def test_setup_for_a_prefix_the_user_has_no_permissions_on_leaves_no_policy_behind(imported):
    vhost = imported
    ensure_management_api()
    rabbitmqctl("change_password", vhost, PASSWORD)
    env = {**worker_env("mysql://unused@127.0.0.1/unused", f"amqp://{vhost}:{PASSWORD}@127.0.0.1:5672/{vhost}"),
           "PMTABOUNCE_QUEUE_PREFIX": "other"}
    done = subprocess.run([sys.executable, "-m", "pmtabounce", "setup", "--no-database"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "ACCESS_REFUSED" in done.stderr, done.stderr
    assert "other.bounces" not in rabbitmqctl("list_policies", "-p", vhost).stdout
