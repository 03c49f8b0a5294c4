"""Throughput on one generated world: the original's one-by-one pattern, inline `process`, and the fleet.

    python bench/bench.py [--records 30000] [--workers 1,2,4] [--big-file-mb 200] [--webhooks]

Every variant runs on its own fresh database (and RabbitMQ vhost) built from
the same seed, and must end with exactly the tables of the expected-state
model (tests/iem_model.py); the world is an order-independent one, so the
fleet's parallel workers must reach them too. Prints rows/s, the ratio to the
original, and peak RSS (VmHWM, sampled from /proc) of the producer and the workers.
`--webhooks` measures inline and each fleet size again, in the same run, with IEM
list webhooks (Bounce and Unsubscribe) configured on every list and a loopback
receiver answering them (docs/events.md): the bounce rate must stay within 10%
of the rate without; it also says how long the calls took to be delivered.
`--webhooks --relay-apart`: also each fleet size with its workers run
`--no-relay` and one `pmtabounce relay` process at nice 10 sending the calls.
`--webhooks --hang`: the same with a receiver that never answers (every call
waits out PMTABOUNCE_WEBHOOK_TIMEOUT): the bounce rate must not drop either.
`--big-file-mb N` also measures the producer's peak memory on an N MB file
against a small one: it must not grow with the file.
"""

from __future__ import annotations

import argparse
import atexit
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the expected-state model checks every variant

import broker_limit  # noqa: E402
import original  # noqa: E402
import replay  # noqa: E402
from iem_model import BounceModel, IemState, differences  # noqa: E402
from measure import Result, ServerCpu, batch_timings, print_profiles, print_results  # noqa: E402
from pmtabounce.common.policy import Policy  # noqa: E402
from rabbit_management import ensure_management_api  # noqa: E402
from sandbox import Sandbox, insert_world  # noqa: E402
from scale import Size, cached_database, shift_world, slice_state  # noqa: E402

from pmtabounce.demo.world import World  # noqa: E402


@dataclass
class Place:
    """Where one variant runs: its database, its files, and what they must end as."""

    url: str
    directory: Path
    expected: IemState
    world: World | None = None  # a slice of the --scale database: checked on its own rows
    above: int = 0  # the ledger's highest id before the variant


class Bench:
    def __init__(self, args: argparse.Namespace, sandbox: Sandbox, work: Path) -> None:
        self.args = args
        self.sandbox = sandbox
        self.work = work
        started = time.perf_counter()
        self.world = World.generate(args.seed, subscribers=args.subscribers or args.records, records=args.records,
                                    files=args.files, independent=True)
        self.template = self.world.write_files(work / "template")[0].parent
        self.expected = IemState.from_world(self.world)
        model = BounceModel(self.expected)
        model.apply_directory(self.template)
        self.records = sum(model.outcomes.values())
        self.outcomes = model.outcomes
        print(f"world: seed {args.seed}, {self.records} bounce records in {len(self.world.files)} files, "
              f"{len(self.world.subscribers)} subscriber rows (built in {time.perf_counter() - started:.1f} s)")
        print("  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())))

        self.frames: tuple[Path, int] | None = None  # (R): the prepared messages and how many
        self.scale_url: str | None = None  # set: variants run in slices of the big database
        self.next_slice = 0
        self.runs = 0

    def directory(self, name: str) -> Path:
        target = self.work / name
        shutil.copytree(self.template, target)
        return target

    def place(self, name: str) -> Place:
        """A fresh database, or with --scale the next slice of the big one, and a copy of the files."""
        self.runs += 1
        name = f"{name}-run{self.runs}"  # a variant may be measured more than once in a run
        if self.scale_url is None:
            return Place(self.sandbox.database(self.world), self.directory(name), self.expected)
        world = shift_world(self.world, self.next_slice)
        self.next_slice += 1
        connection = self.sandbox.connect(self.scale_url)
        try:
            insert_world(world, connection, self.sandbox.tables)
        finally:
            connection.close()
        directory = world.write_files(self.work / f"{name}-scale")[0].parent
        expected = IemState.from_world(world)
        BounceModel(expected).apply_directory(directory)
        return Place(self.scale_url, directory, expected, world, self.sandbox.ledger_top(self.scale_url))

    def check(self, result: Result, place: Place, *, ledger: bool = True) -> Result:
        connection = self.sandbox.connect(place.url)
        try:
            if place.world is None:
                actual = IemState.from_database(connection, self.sandbox.tables)
            else:
                actual = slice_state(connection, self.sandbox.tables, place.world, place.above)
        finally:
            connection.close()
        result.problems = differences(place.expected, actual, ledger=ledger)
        if place.world is not None:
            result.name += ", at scale"
        return result

    def original(self) -> Result:
        place = Place(self.sandbox.database(self.world), self.directory("original"),
                      original.expected_state(self.world, self.template))
        url, directory = place.url, place.directory
        connection = self.sandbox.connect(url)
        started = time.perf_counter()
        try:
            records, trips = original.process_directory(connection, self.sandbox.tables, directory, Policy())
        finally:
            connection.close()
        result = Result("(a) original, one by one", records, time.perf_counter() - started,
                        note=f"{trips / records:.1f} round trips per bounce")
        return self.check(result, place, ledger=False)

    def webhooks_on_every_list(self, url: str) -> Receiver:
        """A Bounce and an Unsubscribe webhook on every list of the database, to a receiver on loopback (in a
        process of its own; with --hang, one that reads each call and never answers: the bounces must not slow)."""
        receiver = Receiver(self.args.hang)
        connection = self.sandbox.connect(url)
        t = self.sandbox.tables
        try:
            with connection.cursor() as cursor:
                for event in (2, 3):
                    cursor.execute(f"INSERT INTO {t.webhooks} (webhook_type_id, webhook_event_type_id, id, "
                                   f"webhook_url, createdate) SELECT 1, %s, listid, %s, 0 FROM {t.lists}",
                                   (event, receiver.url()))
            connection.commit()
        finally:
            connection.close()
        return receiver

    def calls_delivered(self, url: str, started: float, children: list, timeout: float = 600) -> str:
        """Wait until the outbox has no webhook call waiting; how many went out and when the last did."""
        deadline = time.monotonic() + timeout
        t = self.sandbox.tables
        while True:
            connection = self.sandbox.connect(url)
            try:
                with connection.cursor() as cursor:
                    cursor.execute(f"SELECT SUM(state = 'waiting'), SUM(state = 'sent'), COUNT(*) FROM {t.outbox} "
                                   "WHERE target = 'webhook'")
                    waiting, sent, total = (int(n or 0) for n in cursor.fetchone())
            finally:
                connection.close()
            if not waiting or time.monotonic() > deadline or all(c.poll() is not None for c in children):
                return (f"{sent} of {total} webhook calls delivered {time.perf_counter() - started:.1f} s "
                        "after the start")
            time.sleep(0.2)

    def inline(self, python: str = sys.executable, webhooks: bool = False) -> Result:
        """(b); with `python`, the pmtabounce installed for that interpreter (--baseline); with `webhooks`, a
        Bounce and an Unsubscribe webhook on every list."""
        baseline = python != sys.executable
        place = self.place("inline-baseline" if baseline else "inline-webhooks" if webhooks else "inline")
        url, directory = place.url, place.directory
        receiver = self.webhooks_on_every_list(url) if webhooks else None
        env = self.sandbox.env(url, None, "DEBUG")
        servers = ServerCpu()
        started = time.perf_counter()
        log = self.work / f"{directory.name}.log"
        # The bounces' time alone; the calls are then sent as `process` would after its files, and timed apart.
        command = ["process", str(directory)] if baseline else ["process", "--send-events", "0", str(directory)]
        child = self.sandbox.start(command, env, log, python)
        rss = self.sandbox.finish(child)
        seconds = time.perf_counter() - started
        note = ""
        if receiver is not None and not self.args.hang:
            sending = time.perf_counter()
            self.sandbox.run(["relay", "--once", "600"], env)
            receiver.down()
            note = f"then {receiver.requests} calls sent in {time.perf_counter() - sending:.1f} s"
        if receiver is not None:
            receiver.down()
            note += f", receiver CPU {receiver.cpu:.2f} s"
        name = ("(b0) inline, --baseline" if baseline else "(b) inline process"
                + (", webhooks on every list" if webhooks else ""))
        result = Result(name, self.records, seconds, {"process": rss},
                        cpu={"process": self.sandbox.memory.cpu_seconds(child)}, servers=servers.stop(),
                        batches=batch_timings([log]), note=note)
        return self.check(result, place)

    def limit(self, python: str = sys.executable) -> Result:
        """MariaDB alone: `process`'s statements (of the pmtabounce installed for `python`), recorded in a run
        of their own, replayed by the C client on a fresh database from the same seed (which must then hold
        the expected tables as well)."""
        baseline = python != sys.executable
        recorded = self.place("record")
        statements = self.work / f"{recorded.directory.name}.sql"
        env = self.sandbox.env(recorded.url, None)
        command = [python, str(REPO / "bench" / "replay.py"), "record", str(statements), "--",
                   "process", str(recorded.directory)]
        done = subprocess.run(command, env=env, cwd=self.work, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            raise RuntimeError(f"recording the statements failed: {done.stderr.strip()}")
        place = self.place("replay")
        count = statements.read_bytes().count(b";\n")
        servers = ServerCpu()
        seconds, handlers = replay.replay(statements, place.url)
        result = Result(f"(L) MariaDB alone, (b{'0' if baseline else ''})'s SQL", self.records, seconds,
                        servers=servers.stop(), handlers=handlers,
                        note=f"{count} statements, {count * 500 / self.records:.1f} per 500 rows")
        return self.check(result, place)

    def broker(self) -> Result:
        """(R), RabbitMQ alone: the fleet's messages (same bodies, headers and properties, persistent, mandatory)
        published with confirms to the quorum work queue of a fresh vhost and consumed at the worker's prefetch
        with one `multiple` ack per batch, by a client that costs next to nothing (bench/broker_limit.py)."""
        amqp = self.sandbox.vhost()
        env = self.sandbox.env(None, amqp)
        self.sandbox.run(["setup", "--no-database", "--broker"], env)
        script = str(REPO / "bench" / "broker_limit.py")
        if self.frames is None:
            target = self.work / "broker-frames.pickle"
            done = subprocess.run([sys.executable, script, "prepare", str(self.template), str(target)],
                                  capture_output=True, text=True, cwd=self.work, timeout=600, check=True)
            self.frames = (target, int(done.stdout))
        frames, count = self.frames
        logs = self.work / f"broker-run{self.runs}"
        logs.mkdir()
        self.runs += 1

        def start(*args: str) -> subprocess.Popen:
            with open(logs / f"{args[0]}.log", "wb") as handle:
                child = subprocess.Popen([sys.executable, script, *args], stdout=handle, stderr=subprocess.STDOUT,
                                         cwd=self.work)
            self.sandbox.memory.watch(child)
            return child

        consumer = start("consume", amqp, str(count), self.sandbox.topology.queue)
        servers = ServerCpu()
        started = time.perf_counter()
        publisher = start("publish", amqp, str(frames))
        for child in (publisher, consumer):
            if child.wait(timeout=1800) != 0:
                raise RuntimeError(f"broker_limit.py {child.args[2]} exited with {child.returncode}: see {logs}")
        seconds = time.perf_counter() - started
        cpu = {"publisher": self.sandbox.memory.cpu_seconds(publisher),
               "consumer": self.sandbox.memory.cpu_seconds(consumer)}
        return Result("(R) RabbitMQ alone, same messages", count, seconds,
                      {"publisher": self.sandbox.memory.peak_kb(publisher),
                       "consumer": self.sandbox.memory.peak_kb(consumer)},
                      cpu=cpu, servers=servers.stop(),
                      note=f"prefetch {broker_limit.PREFETCH}, ack every {broker_limit.BATCH}, "
                           f"window {broker_limit.WINDOW}")

    def fleet(self, workers: int, webhooks: bool = False, python: str = sys.executable, apart: bool = False) -> Result:
        """(c) `workers` workers and the producer; with `webhooks`, IEM webhooks on every list, sent by the workers'
        relay threads, or (`apart`) by one `pmtabounce relay` process at nice 10 beside workers run --no-relay."""
        baseline = python != sys.executable
        place = self.place(f"fleet-{workers}" + ("-webhooks" if webhooks else "") + ("-apart" if apart else "")
                           + ("-baseline" if baseline else ""))
        url, directory = place.url, place.directory
        receiver = self.webhooks_on_every_list(url) if webhooks else None
        env = self.sandbox.env(url, self.sandbox.vhost())
        self.sandbox.run(["setup"], env)
        logs = self.work / f"{directory.name}-logs"
        debug = self.sandbox.env(url, env["PMTABOUNCE_AMQP_URL"], "DEBUG")
        fleet = [self.sandbox.start(["worker", "--exit-when-idle", "60"] + (["--no-relay"] if apart else []), debug,
                                    logs / f"worker-{n}.log", python) for n in range(workers)]
        relay = [self.sandbox.start(["relay"], env, logs / "relay.log", python)] if apart else []
        for child in relay:
            os.setpriority(os.PRIO_PROCESS, child.pid, 10)
        servers = ServerCpu()
        started = time.perf_counter()
        producer = self.sandbox.start(["producer", "--once", str(directory)], env, logs / "producer.log", python)
        try:
            self.sandbox.wait_for_ledger(url, len(place.expected.ledger), [producer, *fleet, *relay],
                                         above=place.above)
            seconds = time.perf_counter() - started
            note = (self.calls_delivered(url, started, fleet + relay) if receiver is not None and not self.args.hang
                    else "")
            rss = {"producer": self.sandbox.finish(producer)}
            for child in fleet + relay:  # every record is committed: a clean stop, rather than idling out
                child.send_signal(signal.SIGTERM)
            rss["worker"] = max(self.sandbox.finish(child) for child in fleet)
            if relay:
                rss["relay"] = self.sandbox.finish(relay[0])
        finally:
            for child in (producer, *fleet, *relay):
                if child.poll() is None:
                    child.kill()
        if receiver is not None:
            receiver.down()
            note += f", receiver CPU {receiver.cpu:.2f} s"
        name = (f"(c{'0' if baseline else ''}) fleet, {workers} worker{'s' if workers > 1 else ''}"
                + (", webhooks" if webhooks else "") + (", relay apart" if apart else "")
                + (", --baseline" if baseline else ""))
        cpu = {"producer": self.sandbox.memory.cpu_seconds(producer),
               "worker": sum(self.sandbox.memory.cpu_seconds(child) for child in fleet)}
        if relay:
            cpu["relay"] = self.sandbox.memory.cpu_seconds(relay[0])
        result = Result(name, self.records, seconds, rss, cpu=cpu, servers=servers.stop(),
                        batches=batch_timings([logs / f"worker-{n}.log" for n in range(workers)]), note=note)
        return self.check(result, place)


class Receiver:
    """bench/receiver.py in a child process: the webhooks' receiver, answering `200 ok` (or never, `hang`)."""

    def __init__(self, hang: bool) -> None:
        command = [sys.executable, str(REPO / "bench" / "receiver.py")] + (["--hang"] if hang else [])
        self.child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        atexit.register(self.down)  # a variant that fails does not leave it running
        self.port = int(self.child.stdout.readline().split()[1])
        self.requests = 0
        self.cpu = 0.0

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def down(self) -> None:
        """Stop it (again is nothing): its last word sets `requests`, the calls it read, and `cpu`, its seconds."""
        if self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)
            _, requests, _, cpu = self.child.stdout.readline().split()
            self.requests, self.cpu = int(requests), float(cpu)
            self.child.wait(10)


def big_file_memory(sandbox: Sandbox, work: Path, megabytes: int) -> None:
    """The producer's peak RSS on a small file and on a big one: streaming keeps them equal."""
    print(f"\nproducer memory: a 1 MB file against a {megabytes} MB file (a consumer drains the queue)")
    for label, size in (("small", 1), ("big", megabytes)):
        amqp = sandbox.vhost()
        env = sandbox.env(None, amqp)
        sandbox.run(["setup", "--no-database", "--broker"], env)
        directory = work / f"memory-{label}"
        directory.mkdir()
        path = directory / "bounces-2024-11-19-0000.csv"
        rows = write_big_file(path, size * 1024 * 1024)
        megabytes = path.stat().st_size / 1024 / 1024
        drain = Drain(amqp, sandbox.topology.queue)
        started = time.perf_counter()
        try:
            producer = sandbox.start(["producer", "--once", str(directory)], env, work / f"memory-{label}.log")
            rss = sandbox.finish(producer, timeout=7200)
        finally:
            drain.stop()
        seconds = time.perf_counter() - started
        print(f"  {label:<6}{megabytes:>7.0f} MB {rows:>9} rows {seconds:7.1f} s {rows / seconds:8.0f} rows/s  "
              f"producer peak RSS {rss / 1024:.0f} MB")


def process_memory(sandbox: Sandbox, work: Path, megabytes: int, world: World) -> None:
    """`process`'s peak RSS, reader thread included, on a small file and on a big one (its rows are
    addresses the world does not hold: every one a ledger row, `not_found`)."""
    print(f"\nprocess memory: a 1 MB file against a {megabytes} MB file")
    for label, size in (("small", 1), ("big", megabytes)):
        directory = work / f"process-memory-{label}"
        directory.mkdir()
        path = directory / "bounces-2024-11-19-0000.csv"
        rows = write_big_file(path, size * 1024 * 1024)
        megabytes = path.stat().st_size / 1024 / 1024  # before `process` marks it done
        env = sandbox.env(sandbox.database(world), None)
        started = time.perf_counter()
        child = sandbox.start(["process", str(directory)], env, work / f"process-memory-{label}.log")
        rss = sandbox.finish(child, timeout=7200)
        seconds = time.perf_counter() - started
        print(f"  {label:<6}{megabytes:>7.0f} MB {rows:>9} rows {seconds:7.1f} s "
              f"{rows / seconds:8.0f} rows/s  process peak RSS {rss / 1024:.0f} MB")


_ROW = ("b,{t},user{n}@example.com,failed,5.1.1 (bad destination mailbox address),"
        "\"smtp;550 5.1.1 <user{n}@example.com>: Recipient address rejected: User unknown, \"\"{n}\"\"\","
        "bad-mailbox,\"3,7\",42\r\n")


def write_big_file(path: Path, size: int) -> int:
    """A file of about `size` bytes of distinct bounce rows, written in chunks; returns the row count."""
    header = "type,timeLogged,rcpt,dsnAction,dsnStatus,dsnDiag,bounceCat,header_X-Mailer-LID,header_X-Mailer-SID\r\n"
    rows, written = 0, len(header)
    with open(path, "w", newline="") as handle:
        handle.write(header)
        while written < size:
            chunk = "".join(_ROW.format(t=1732000000 + (rows + i) // 50, n=rows + i) for i in range(1000))
            handle.write(chunk)
            written += len(chunk)
            rows += 1000
    return rows


class Drain:
    """Consumes and drops everything the producer publishes, so a big file does not pile up in RabbitMQ."""

    def __init__(self, url: str, queue: str) -> None:
        import pika

        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.channel = self.connection.channel()
        self.channel.basic_qos(prefetch_count=2000)
        self.channel.basic_consume(queue, self._drop)
        self.thread = threading.Thread(target=self.channel.start_consuming, daemon=True)
        self.thread.start()

    def _drop(self, channel, method, properties, body) -> None:
        if method.delivery_tag % 500 == 0:
            channel.basic_ack(method.delivery_tag, multiple=True)

    def stop(self) -> None:
        self.connection.add_callback_threadsafe(self.channel.stop_consuming)
        self.thread.join(timeout=30)
        self.connection.close()


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    return f"{os.cpu_count()} cores ({cpu}), {memory} GB RAM, Python {platform.python_version()}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=30000, help="bounce records in the world (default 30000)")
    parser.add_argument("--subscribers", type=int, default=0, help="addresses (default: as many as records)")
    parser.add_argument("--files", type=int, default=10, help="accounting files (default 10)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", default="1,2,4", help="fleet sizes to measure, comma separated ('' for none)")
    parser.add_argument("--skip-original", action="store_true", help="leave out (a), the slow baseline")
    parser.add_argument("--big-file-mb", type=int, default=0, help="also measure producer memory on a file this big")
    parser.add_argument("--mysql-url", default="mysql://root@127.0.0.1:3306", help="MariaDB server (no database)")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672", help="RabbitMQ (no vhost)")
    parser.add_argument("--baseline", metavar="PYTHON",
                        help="also run (b) with the pmtabounce installed for this interpreter (an earlier version)")
    parser.add_argument("--rounds", type=int, default=1, metavar="N",
                        help="measure every variant N times, interleaved (default 1)")
    parser.add_argument("--no-limit", dest="limit", action="store_false",
                        help="leave out (L), MariaDB replaying inline's statements alone, and (R), RabbitMQ "
                             "publishing and consuming the fleet's messages alone")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="run every child under cProfile, keep its stats in DIR and print the top functions")
    parser.add_argument("--webhooks", action="store_true",
                        help="also each variant with IEM webhooks on every list, to a loopback receiver")
    parser.add_argument("--relay-apart", action="store_true",
                        help="with --webhooks: also each fleet with its workers run --no-relay and one `pmtabounce "
                             "relay` process sending, at nice 10 (the kernel gives the bounces' CPU first)")
    parser.add_argument("--hang", action="store_true",
                        help="with --webhooks: the receiver never answers (each call waits out the timeout)")
    parser.add_argument("--keep", action="store_true", help="keep the databases, vhosts and files afterwards")
    parser.add_argument("--scale", action="store_true",
                        help="also run every variant on a realistic-size database (built once, then kept)")
    for name, default in vars(Size()).items():
        parser.add_argument(f"--scale-{name}", type=int, default=default, metavar="N",
                            help=f"--scale: {name} rows (default {default:,})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"machine: {machine()}; MariaDB, RabbitMQ and every process below share it")
    if args.limit and args.workers.strip():
        ensure_management_api()  # (R)'s `setup --broker` sets the queue's policy through it, as the tests do
    work = Path(tempfile.mkdtemp(prefix="pmtabounce-bench-"))
    sandbox = Sandbox(args.mysql_url, args.amqp_url, work)
    ServerCpu.PORTS = {"mariadb": urlsplit(args.mysql_url).port or 3306,
                       "rabbitmq": urlsplit(args.amqp_url).port or 5672}
    sandbox.profile = args.profile
    results: list[Result] = []
    try:
        bench = Bench(args, sandbox, work)
        if not args.skip_original:
            results.append(bench.original())
        if args.scale:
            size = Size(**{name: getattr(args, f"scale_{name}") for name in vars(Size())})
            scale_url, bench.next_slice = cached_database(args.mysql_url, size)
        for at_scale in (False, True) if args.scale else (False,):
            bench.scale_url = scale_url if at_scale else None
            for _ in range(args.rounds):  # interleaved, so that a change in the machine's load hits every variant
                if args.baseline:
                    results.append(bench.inline(args.baseline))
                results.append(bench.inline())
                if args.webhooks:
                    results.append(bench.inline(webhooks=True))
                if args.limit and args.baseline:
                    results.append(bench.limit(args.baseline))
                if args.limit:
                    results.append(bench.limit())
                if args.limit and args.workers.strip() and not at_scale:
                    results.append(bench.broker())
            for workers in (int(n) for n in args.workers.split(",") if n.strip()):
                for _ in range(args.rounds):
                    if args.baseline:
                        results.append(bench.fleet(workers, python=args.baseline))
                    results.append(bench.fleet(workers))
                    if args.webhooks:
                        results.append(bench.fleet(workers, webhooks=True))
                    if args.webhooks and args.relay_apart:
                        results.append(bench.fleet(workers, webhooks=True, apart=True))
        print_results(results)
        if args.profile:
            print_profiles(args.profile)
        if args.big_file_mb:
            big_file_memory(sandbox, work, args.big_file_mb)
            process_memory(sandbox, work, args.big_file_mb, bench.world)
    finally:
        if args.keep:
            print(f"\nkept: {work}, databases {', '.join(sandbox.databases)}, vhosts {', '.join(sandbox.vhosts)}")
        else:
            sandbox.cleanup()
            shutil.rmtree(work, ignore_errors=True)
    return 1 if any(r.problems for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
