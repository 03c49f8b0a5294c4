"""The fleet on a real three-node RabbitMQ cluster, while nodes die (issue 19).

One cluster of the installed server serves the module (tests/rabbit_cluster.py: own names, ports and
data, the default node untouched). Each scenario loads one generated world into a fresh database, runs a
producer and two workers given every node (PMTABOUNCE_AMQP_URL is the list), disturbs the cluster
mid-run, and then asks: is the database what `pmtabounce process` makes of the same files (nothing lost,
nothing applied twice), is the queue empty with no dead letter, and how long did the ledger stand still
after the kill (the stall, printed for the record)? A stall must stay under one reconnect backoff and an
election (STALL_BOUND): a process waiting for its own node, as before the node list, stalls as long as
the node is away, and for ever when it is gone for good.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import threading
import time
from itertools import pairwise
from pathlib import Path

import orjson
import pika
import pytest
from conftest import drop_database, make_database
from fleet_world import assert_same_database
from pmtabounce.common.bouncedir import pending_files
from pmtabounce.common.topology import Topology
from rabbit_cluster import RabbitCluster, RabbitNode
from tcp_proxy import TcpProxy
from worker_fleet import Fleet, drain, ledger_count, records_of, wait_for, worker_env

from pmtabounce.demo.world import World
from pmtabounce.inline import process_directory

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

AWAY_SECONDS = 15.0  # a killed node that comes back stays away this long: longer than any stall allowed
BACKOFF = 2.0  # PMTABOUNCE_RETRY_MAX_WAIT of the fleet: the longest pause between two rounds of the node list
# The longest stall allowed: one backoff and a leader election's few seconds. Waiting for the lost node
# takes AWAY_SECONDS (or for ever); a producer channel nacked on after an election took 9-10 s. Measured
# with the node list: under 1 s.
STALL_BOUND = BACKOFF + 4.0
RECORDS = 6000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    rabbits = RabbitCluster(tmp_path_factory.mktemp("rabbit-cluster")).start()
    try:
        yield rabbits
    finally:
        rabbits.close()


@pytest.fixture
def up(cluster):
    """The cluster with all three nodes running, whatever the test before left."""
    cluster.all_up()
    return cluster


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One world for every scenario, and the inline result of it to compare with."""
    generated = World.generate(19, subscribers=3000, records=RECORDS, files=4, independent=True)
    inline_db = make_database()
    connection = inline_db.connect()
    generated.create_database(connection.cursor(), inline_db.tables)
    connection.commit()
    connection.close()
    directory = tmp_path_factory.mktemp("inline-bounces")
    generated.write_files(directory)
    process_directory(inline_db.settings(), directory)
    yield generated, inline_db
    drop_database(inline_db)


@pytest.fixture
def fleet_db(world):
    db = make_database()
    connection = db.connect()
    world[0].create_database(connection.cursor(), db.tables)
    connection.commit()
    connection.close()
    yield db
    drop_database(db)


class Progress:
    """The ledger's count, read every 50 ms on a thread: when it moved, to measure stalls."""

    def __init__(self, db) -> None:
        self.db = db
        self.moves: list[tuple[float, int]] = [(time.monotonic(), 0)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            count = ledger_count(self.db)
            if count != self.moves[-1][1]:
                self.moves.append((time.monotonic(), count))

    @property
    def count(self) -> int:
        return self.moves[-1][1]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def stall_after(self, moment: float) -> float:
        """The longest time the ledger stood still from `moment` until its last move."""
        times = [moment] + [t for t, _ in self.moves if t > moment]
        return max(b - a for a, b in pairwise(times)) if len(times) > 1 else float("inf")


class Run:
    """A producer and two workers on one queue prefix of their own, given `amqp_url`."""

    def __init__(self, fleet_db, amqp_url: str, tmp_path: Path, api_urls: str) -> None:
        self.db = fleet_db
        self.prefix = f"pmtc{secrets.token_hex(3)}"
        self.topology = Topology(self.prefix)
        self.env = worker_env(fleet_db.url, amqp_url, batch_size=100, queue_prefix=self.prefix,
                              publish_window=300, retry_max_wait=BACKOFF, rabbitmq_api_url=api_urls)
        self.tmp = tmp_path
        self.directory = tmp_path / "bounces"
        self.producer_log = tmp_path / "producer.log"
        self.producer: subprocess.Popen | None = None

    def start_producer(self) -> None:
        with open(self.producer_log, "wb") as log:
            self.producer = subprocess.Popen(
                [sys.executable, "-m", "pmtabounce", "producer", "--once", str(self.directory)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def files_started(self) -> int:
        return self.producer_log.read_text(errors="replace").count(": publishing")

    def logs(self, fleet: Fleet) -> str:
        return f"{fleet.log()}\n--- producer ---\n{self.producer_log.read_text(errors='replace')}"


def run_scenario(cluster: RabbitCluster, world, fleet_db, tmp_path: Path, disturb, amqp_url: str | None = None,
                 before_producer=None) -> tuple[float, str]:
    """Run the fleet through `disturb(run, progress) -> moment of the kill`; check nothing was lost or doubled.
    `before_producer()` runs once the workers consume and before the producer starts (to choose a victim
    while nothing is published yet: the management API lists connections seconds late).

    Returns the stall after the kill (seconds) and every process's log.
    """
    generated, inline_db = world
    run = Run(fleet_db, amqp_url or cluster.urls, tmp_path, cluster.api_urls)
    generated.write_files(run.directory)
    distinct = len({record.fingerprint for record in records_of(run.directory)})
    progress = Progress(fleet_db)
    try:
        with Fleet(run.env, tmp_path) as fleet:
            for process in [fleet.start() for _ in range(2)]:
                fleet.wait_consuming(process)
            if before_producer is not None:
                before_producer()
            run.start_producer()
            killed_at = disturb(run, progress)
            assert progress.count < distinct, "the run was over before the kill: give it more records"
            wait_for(lambda: ledger_count(fleet_db) == distinct, "every record in the ledger", 240)
            assert run.producer.wait(timeout=120) == 0, run.logs(fleet)
            assert [fleet.terminate(p) for p in fleet.running()] == [0, 0], run.logs(fleet)
            logs = run.logs(fleet)
    finally:
        progress.stop()
        if run.producer is not None and run.producer.poll() is None:
            run.producer.kill()
    assert_same_database(fleet_db, inline_db)
    node = cluster.any_running()
    assert depth(node.url, run.topology.queue) == 0
    assert drain(node.url, run.topology.dead_queue) == []
    assert pending_files(run.directory) == [], "every file is marked done"
    return progress.stall_after(killed_at), logs


def depth(url: str, queue: str) -> int:
    """Messages in `queue` now, by a passive declare (the management API's counts lag by seconds)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()


def busiest_node(cluster: RabbitCluster) -> RabbitNode:
    """The node most of our processes are connected to."""
    wait_for(lambda: sum(map(len, cluster.clients().values())) >= 2, "the workers connected (management API)", 60)
    clients = cluster.clients()
    print(f"\n[cluster] clients by node: {clients}")
    return cluster.node(max(clients, key=lambda name: len(clients[name])))


def later(seconds: float, action) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), action()), daemon=True)
    thread.start()
    return thread


def mid_file(run: Run, progress: Progress) -> None:
    """Until the producer is into its second file and the workers have applied some."""
    wait_for(lambda: run.files_started() >= 2 and progress.count > 0, "the producer in its second file", 120)


def record(name: str, stall: float) -> None:
    print(f"\n[cluster] {name}: lost 0, doubled 0, stall {stall:.1f} s")


def test_clients_node_killed_and_restarted(up, world, fleet_db, tmp_path):
    restart: list[threading.Thread] = []
    victims: list[RabbitNode] = []

    def disturb(run, progress):
        victim = victims[0]
        mid_file(run, progress)
        victim.kill()
        restart.append(later(AWAY_SECONDS, lambda: up.restart(victim)))
        return time.monotonic()

    stall, logs = run_scenario(up, world, fleet_db, tmp_path, disturb,
                               before_producer=lambda: victims.append(busiest_node(up)))
    record("clients' node killed, back 15 s later", stall)
    assert "moved from RabbitMQ node" in logs, "a process on the killed node moved to another one"
    assert stall < STALL_BOUND, f"stalled {stall:.1f} s: waited for the killed node instead of moving on"
    restart[0].join()


def test_queue_leader_killed_mid_file(up, world, fleet_db, tmp_path):
    restart: list[threading.Thread] = []

    def disturb(run, progress):
        mid_file(run, progress)
        assert run.producer.poll() is None, "the producer finished before the kill"
        leader = up.leader(run.topology.queue)
        leader.kill()
        restart.append(later(AWAY_SECONDS, lambda: up.restart(leader)))
        return time.monotonic()

    stall, _ = run_scenario(up, world, fleet_db, tmp_path, disturb)
    record("the queue's leader killed mid-file", stall)
    assert stall < STALL_BOUND
    restart[0].join()


def test_clients_node_gone_for_good(up, world, fleet_db, tmp_path):
    victims: list[RabbitNode] = []

    def disturb(run, progress):
        mid_file(run, progress)
        victims[0].kill()
        return time.monotonic()

    stall, logs = run_scenario(up, world, fleet_db, tmp_path, disturb,
                               before_producer=lambda: victims.append(busiest_node(up)))
    record("the clients' node gone for good", stall)
    assert "moved from RabbitMQ node" in logs
    assert stall < STALL_BOUND


def test_behind_a_load_balancer_the_leader_killed(up, world, fleet_db, tmp_path):
    first, *others = up.nodes
    balancer = TcpProxy("127.0.0.1", first.amqp_port, *[("127.0.0.1", node.amqp_port) for node in others])
    restart: list[threading.Thread] = []

    def disturb(run, progress):
        mid_file(run, progress)
        leader = up.leader(run.topology.queue)
        leader.kill()
        restart.append(later(AWAY_SECONDS, lambda: up.restart(leader)))
        return time.monotonic()

    try:
        stall, _ = run_scenario(up, world, fleet_db, tmp_path, disturb, amqp_url=balancer.url_for(first.url))
    finally:
        balancer.close()
    record("one address (a TCP load balancer), the leader killed", stall)
    assert balancer.connections >= 3
    assert stall < STALL_BOUND
    restart[0].join()


def test_a_queue_below_quorum_is_visible_in_status_and_the_producers_log(up, world, fleet_db, tmp_path):
    generated, _ = world
    run = Run(fleet_db, up.urls, tmp_path, up.api_urls)
    generated.write_files(run.directory)
    # the topology exists once the producer has declared it; then two of three nodes go
    run.start_producer()
    try:
        wait_for(lambda: run.files_started() >= 1, "the producer publishing", 60)
        leader = up.leader(run.topology.queue)
        for node in [leader, *[n for n in up.nodes if n is not leader][:1]]:
            node.kill()
        wait_for(lambda: "waited" in run.producer_log.read_text(errors="replace"), "the confirms-late warning", 60)
        late = [line for line in run.producer_log.read_text(errors="replace").splitlines() if "waited" in line]
        assert "takes messages only while more than half of its nodes are online" in late[0]
        status = subprocess.run([sys.executable, "-m", "pmtabounce", "status", "--json"], env=run.env,
                                capture_output=True, text=True, timeout=120)
        queue = orjson.loads(status.stdout)["queue"]
        assert status.returncode == 1, status.stdout + status.stderr
        assert queue["state"] == "below quorum", queue
        assert len(queue["members"]) == 3 and len(queue["online"]) == 1, queue
        assert queue["broker"] == f"amqp://127.0.0.1:{up.any_running().amqp_port}/%2F", "the node that answered"
        assert [p["node"] for p in queue["processes"] if p["process"].startswith("producer@")] == [
            up.any_running().name], "status says which node the producer is on now"
    finally:
        run.producer.kill()
        run.producer.wait()


def pmtabounce(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pmtabounce", *args], env=env, capture_output=True, text=True,
                          timeout=180)


def test_dead_letters_below_quorum_are_not_counted_as_none(up, fleet_db, tmp_path):
    # RabbitMQ counts 0 messages in a quorum queue whose leader it cannot reach: `dlq list` said
    # "0 of 0 messages" and status "dead letter ok: 0 messages" while three waited there
    run = Run(fleet_db, up.urls, tmp_path, up.api_urls)
    assert pmtabounce(run.env, "setup").returncode == 0
    connection = pika.BlockingConnection(pika.URLParameters(up.nodes[0].url))
    channel = connection.channel()
    channel.confirm_delivery()
    for number in range(3):
        channel.basic_publish("", run.topology.dead_queue, orjson.dumps({"dead": number}),
                              pika.BasicProperties(delivery_mode=2))
    connection.close()
    leader = up.leader(run.topology.dead_queue)
    for node in [leader, *[n for n in up.nodes if n is not leader][:1]]:
        node.kill()

    listed = pmtabounce(run.env, "dlq", "list")
    assert listed.returncode == 1, listed.stdout + listed.stderr
    assert "below quorum" in listed.stderr and "nothing was read or removed" in listed.stderr, listed.stderr
    status = pmtabounce(run.env, "status", "--json")
    dead = orjson.loads(status.stdout)["dead_letter"]
    assert status.returncode == 1
    assert dead["state"] == "below quorum" and dead["messages"] is None, dead

    up.all_up()
    wait_for(lambda: len(up.queue(run.topology.dead_queue).get("online", ())) == 3, "the queue's nodes online", 60)
    listed = pmtabounce(run.env, "dlq", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert len(orjson.loads(listed.stdout)["messages"]) == 3, "nothing was lost"


def test_the_nodes_die_with_the_process_that_started_them(tmp_path):
    # a node runs in a session of its own: when pytest itself is killed (no close()), only the guard stops it
    owner = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from rabbit_cluster import RabbitCluster; "
         "cluster = RabbitCluster(Path(sys.argv[1]), size=1).start(); "
         "print(cluster.nodes[0].process.pid, flush=True); time.sleep(600)", str(tmp_path / "cluster")],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent)
    try:
        node = int(owner.stdout.readline())
    finally:
        owner.kill()
        owner.wait()
    wait_for(lambda: not Path(f"/proc/{node}").exists(), "the orphaned node killed by the guard", 30)
