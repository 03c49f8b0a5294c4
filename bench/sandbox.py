"""The benchmark's sandbox: its throwaway databases and vhosts (made by tests/throwaway.py, as the tests'
are), the pmtabounce processes it runs and their peak memory; everything removed afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from pmtabounce.common.config import parse_mysql_url
from pmtabounce.common.topology import Topology
from pmtabounce.store.db import Tables, connect
from throwaway import add_vhost, create_database, delete_vhost, drop_databases  # bench.py puts tests/ on sys.path


class Sandbox:
    """Databases and vhosts on the given servers (URLs without database or vhost), and child processes."""

    def __init__(self, mysql_server: str, amqp_server: str, workdir: Path) -> None:
        self.mysql_server = mysql_server.rstrip("/")
        self.amqp_server = amqp_server.rstrip("/")
        self.tables = Tables("email_")
        self.topology = Topology()
        self.databases: list[str] = []
        self.vhosts: list[str] = []
        self.memory = PeakMemory()
        self.profile: Path | None = None  # --profile: every child runs under cProfile, its stats written here
        # `python -m` puts the working directory first on sys.path: in the clone's top folder the source
        # tree's pmtabounce/ would shadow the installed package, so children run in the bench's own folder.
        self.workdir = workdir

    def connect(self, url: str):
        return connect(parse_mysql_url(url))

    def database(self, world) -> str:
        """A fresh database holding IEM's fixture tables, `world` and our (empty) ledger; its URL."""
        name, url = create_database(self.mysql_server, "pmtbench_", self.tables.prefix,
                                    lambda connection, tables: insert_world(world, connection, tables))
        self.databases.append(name)
        return url

    def vhost(self) -> str:
        """A fresh RabbitMQ virtual host (rabbitmqctl, as root); its URL."""
        name, url = add_vhost(self.amqp_server, "pmtbench-")
        self.vhosts.append(name)
        return url

    def env(self, mysql_url: str | None, amqp_url: str | None, level: str = "WARNING") -> dict[str, str]:
        """The children's environment; DEBUG makes workers and `process` log each batch's timings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PMTABOUNCE_")}
        env["PMTABOUNCE_LOG_LEVEL"] = level
        if mysql_url:
            env["PMTABOUNCE_MYSQL_URL"] = mysql_url
        if amqp_url:
            env["PMTABOUNCE_AMQP_URL"] = amqp_url
        return env

    def run(self, args: list[str], env: dict[str, str]) -> None:
        done = subprocess.run([sys.executable, "-m", "pmtabounce", *args], env=env, capture_output=True, text=True,
                              timeout=300, cwd=self.workdir)
        if done.returncode != 0:
            raise RuntimeError(f"pmtabounce {' '.join(args)} failed: {done.stderr.strip()}")

    def start(self, args: list[str], env: dict[str, str], log: Path, python: str = sys.executable) -> subprocess.Popen:
        log.parent.mkdir(parents=True, exist_ok=True)
        profile: list[str] = []
        if self.profile is not None:
            self.profile.mkdir(parents=True, exist_ok=True)
            profile = ["-m", "cProfile", "-o", str(self.profile / f"{log.parent.name}-{log.stem}.prof")]
        with open(log, "wb") as handle:
            child = subprocess.Popen([python, *profile, "-m", "pmtabounce", *args], env=env, stdout=handle,
                                     stderr=subprocess.STDOUT, cwd=self.workdir)
        child.log_path = log
        self.memory.watch(child)
        return child

    def finish(self, child: subprocess.Popen, timeout: float = 600) -> int:
        """Wait for a child to exit 0; its peak resident set in kB."""
        if child.wait(timeout=timeout) != 0:
            command = child.args[child.args.index("pmtabounce") + 1]
            raise RuntimeError(f"pmtabounce {command} exited with {child.returncode}; see {child.log_path}")
        return self.memory.peak_kb(child)

    def ledger_top(self, url: str) -> int:
        """The ledger's highest id now: rows above it are the run's."""
        connection = self.connect(url)
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {self.tables.ledger}")
                return int(cursor.fetchone()[0])
        finally:
            connection.close()

    def wait_for_ledger(self, url: str, rows: int, children: list[subprocess.Popen], *, above: int = 0,
                        timeout: float = 1800) -> None:
        """Until the ledger holds `rows` records with ids above `above`: the moment every bounce is committed."""
        connection = self.connect(url)
        deadline = time.monotonic() + timeout
        try:
            with connection.cursor() as cursor:
                while time.monotonic() < deadline:
                    # MAX(id) is one index dive and never below the row count; COUNT(*) scans the ledger,
                    # which on two shared cores slowed the very run it watched. Count once MAX(id) is there.
                    cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {self.tables.ledger}")
                    connection.commit()
                    if cursor.fetchone()[0] - above >= rows:
                        cursor.execute(f"SELECT COUNT(*) FROM {self.tables.ledger} WHERE id > %s", (above,))
                        connection.commit()
                        if cursor.fetchone()[0] >= rows:
                            return
                    if all(child.poll() is not None for child in children):
                        raise RuntimeError(f"every process ended with the ledger short of {rows} rows")
                    time.sleep(0.1)
        finally:
            connection.close()
        raise RuntimeError(f"the ledger did not reach {rows} rows in {timeout:.0f} s")

    def cleanup(self) -> None:
        if self.databases:
            drop_databases(self.mysql_server, self.databases)
        for name in self.vhosts:
            delete_vhost(name)


class PeakMemory:
    """Samples each child's VmHWM (peak resident set) and CPU time (utime + stime) from /proc while it runs.

    Not wait4's ru_maxrss: a child started by vfork and exec inherits the
    parent's high-water mark there, so every child would report the bench's.
    CPU is the last sample before the child exits (at most `interval` short).
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peaks: dict[int, int] = {}
        self.cpu: dict[int, float] = {}
        self._children: list[subprocess.Popen] = []
        threading.Thread(target=self._sample, daemon=True).start()

    def watch(self, child: subprocess.Popen) -> None:
        self.peaks[child.pid] = 0
        self.cpu[child.pid] = 0.0
        self._children.append(child)

    def peak_kb(self, child: subprocess.Popen) -> int:
        return self.peaks.get(child.pid, 0)

    def cpu_seconds(self, child: subprocess.Popen) -> float:
        return self.cpu.get(child.pid, 0.0)

    def _sample(self) -> None:
        while True:
            for child in list(self._children):
                if child.returncode is None:
                    self.peaks[child.pid] = max(self.peaks[child.pid], vm_hwm_kb(child.pid))
                    self.cpu[child.pid] = max(self.cpu[child.pid], cpu_seconds(child.pid))
            time.sleep(self.interval)


def insert_world(world, connection, tables: Tables) -> None:
    """The world's IEM rows, committed (World.create_database writes in the caller's transaction)."""
    with connection.cursor() as cursor:
        world.create_database(cursor, tables)
    connection.commit()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, in seconds (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0  # gone, or a zombie with no memory left to report

