"""PMTABOUNCE_AMQP_URL and PMTABOUNCE_RABBITMQ_API_URL as lists, against the machine's RabbitMQ: a node that
does not answer is passed over by every command, a list that cannot be read stops the start (exit 2), and
`setup` on a broker that cannot be reached says so in one line (exit 1). The cluster itself, with nodes
dying under the fleet, is test_cluster.py."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest
from worker_fleet import Fleet, free_port, ledger_count, produce_once, records_of, wait_for, worker_env

from pmtabounce.demo.world import World

TIMEOUT = 60  # a command retrying for ever instead runs into it and fails the test


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pmtabounce", *args], env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)


def dead_node(vhost) -> str:
    """A node of the list that nobody answers at (a port nothing listens on), same login and vhost."""
    return f"amqp://guest:s3cret@127.0.0.1:{free_port()}/{vhost.name}"


def test_every_role_passes_over_a_node_that_does_not_answer(iem_db, vhost, tmp_path):
    dead = dead_node(vhost)
    env = worker_env(iem_db.url, f"{dead}, {dead.replace('s3cret', 'x')} {vhost.url}", batch_size=10,
                     rabbitmq_api_url="http://guest:guest@127.0.0.1:1,http://guest:guest@127.0.0.1:15672")
    setup = run(["setup", "--no-database"], env)
    assert setup.returncode == 0, setup.stderr
    assert "management API of rabbit@" in setup.stderr, "setup says which broker's API answered"

    world = World.generate(5, subscribers=100, records=150, files=1, edge_files=False)
    connection = iem_db.connect()
    world.create_database(connection.cursor(), iem_db.tables)
    connection.commit()
    connection.close()
    directory = tmp_path / "bounces"
    world.write_files(directory)
    distinct = len({record.fingerprint for record in records_of(directory)})
    with Fleet(env, tmp_path) as fleet:
        fleet.wait_consuming(fleet.start("--exit-when-idle", "3"))
        produce_once(env, directory, tmp_path / "producer.log")
        wait_for(lambda: ledger_count(iem_db) == distinct, "every record applied")
        assert fleet.finish() == [0], fleet.log()

    status = run(["status", "--json"], env)
    queue = orjson.loads(status.stdout)["queue"]
    assert queue["broker"] == f"amqp://127.0.0.1:5672/{vhost.name}", "status names the node that answered"
    assert queue["unacked"] == 0, "the management API list: the second address answered"
    assert "s3cret" not in status.stdout + status.stderr + setup.stderr


@pytest.mark.parametrize("setting, named", [
    ("amqp://guest:s3cret@127.0.0.1:5672,127.0.0.1:5673/%2F", "entry 2 (127.0.0.1:5673/%2F)"),
    ("amqp://guest:s3cret@mq1,mq2/%2F", "entry 2 (mq2/%2F)"),
], ids=["hosts-with-ports", "hosts-without-ports"])
@pytest.mark.parametrize("command", [["setup", "--no-database"], ["worker"], ["status"]])
def test_a_host_list_in_one_url_stops_every_command_naming_the_entry(command, setting, named, iem_db):
    done = run(command, worker_env(iem_db.url, setting))
    assert done.returncode == 2, done.stderr
    assert named in done.stderr and "Traceback" not in done.stderr
    assert "s3cret" not in done.stderr


def test_setup_on_a_broker_that_does_not_answer_says_so_in_one_line(iem_db, vhost):
    done = run(["setup", "--no-database", "--no-policy"], worker_env(iem_db.url, dead_node(vhost)))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach RabbitMQ at amqp://127.0.0.1:" in lines[0], done.stderr
    assert "s3cret" not in done.stderr and "Traceback" not in done.stderr


def test_setup_requires_the_management_api_when_nodes_are_on_other_ports(iem_db, vhost):
    done = run(["setup", "--no-database"], worker_env(iem_db.url, f"{dead_node(vhost)},{vhost.url}"))
    assert done.returncode == 2
    assert "is not on port 5672" in done.stderr and "PMTABOUNCE_RABBITMQ_API_URL" in done.stderr
