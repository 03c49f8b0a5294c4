"""Throwaway databases, vhosts and pmtabounce processes for the benchmark, removed afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pymysql
from pmtabounce.common.config import Settings, parse_mysql_url
from pmtabounce.common.topology import Topology
from pmtabounce.worker.db import Tables, connect
from pmtabounce.worker.migrate import setup_database

from pmtabounce.demo.fixture import create_iem_tables


class Scratch:
    def __init__(self, mysql_server: str, amqp_server: str, workdir: Path) -> None:
        self.mysql_server = mysql_server.rstrip("/")
        self.amqp_server = amqp_server.rstrip("/")
        self.tables = Tables("email_")
        self.topology = Topology()
        self.databases: list[str] = []
        self.vhosts: list[str] = []
        self.memory = PeakMemory()
        # `python -m` puts the working directory first on sys.path: in the clone's top folder the source
        # tree's pmtabounce/ would shadow the installed package, so children run in the bench's own folder.
        self.workdir = workdir

    def connect(self, url: str):
        return connect(parse_mysql_url(url))

    def _server(self):
        admin = parse_mysql_url(f"{self.mysql_server}/mysql")
        return pymysql.connect(host=admin.host, port=admin.port, user=admin.user, password=admin.password,
                               unix_socket=admin.unix_socket, autocommit=True)

    def database(self, world) -> str:
        """A fresh database holding IEM's fixture tables, `world` and our (empty) ledger; its URL."""
        name = f"pmtbench_{uuid.uuid4().hex[:10]}"
        server = self._server()
        with server.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        server.close()
        self.databases.append(name)
        url = f"{self.mysql_server}/{name}"
        connection = self.connect(url)
        try:
            create_iem_tables(connection, self.tables)
            world.create_database(connection, self.tables)
        finally:
            connection.close()
        setup_database(Settings(mysql_url=url))
        return url

    def vhost(self) -> str:
        """A fresh RabbitMQ virtual host (rabbitmqctl, as root); its URL."""
        name = f"pmtbench-{uuid.uuid4().hex[:10]}"
        self._rabbitmqctl("add_vhost", name)
        self.vhosts.append(name)
        self._rabbitmqctl("set_permissions", "-p", name, parse_user(self.amqp_server), ".*", ".*", ".*")
        return f"{self.amqp_server}/{name}"

    @staticmethod
    def _rabbitmqctl(*args: str) -> None:
        tool = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
        subprocess.run([tool, "-q", *args], check=True, capture_output=True, timeout=120)

    def env(self, mysql_url: str | None, amqp_url: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PMTABOUNCE_")}
        env["PMTABOUNCE_LOG_LEVEL"] = "WARNING"
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

    def start(self, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as handle:
            child = subprocess.Popen([sys.executable, "-m", "pmtabounce", *args], env=env, stdout=handle,
                                     stderr=subprocess.STDOUT, cwd=self.workdir)
        child.log_path = log
        self.memory.watch(child)
        return child

    def finish(self, child: subprocess.Popen, timeout: float = 600) -> int:
        """Wait for a child to exit 0; its peak resident set in kB."""
        if child.wait(timeout=timeout) != 0:
            raise RuntimeError(f"pmtabounce {child.args[3]} exited with {child.returncode}; see {child.log_path}")
        return self.memory.peak_kb(child)

    def wait_for_ledger(self, url: str, rows: int, children: list[subprocess.Popen], timeout: float = 1800) -> None:
        """Until the ledger holds `rows` records: the moment every bounce is committed."""
        connection = self.connect(url)
        deadline = time.monotonic() + timeout
        try:
            with connection.cursor() as cursor:
                while time.monotonic() < deadline:
                    cursor.execute(f"SELECT COUNT(*) FROM {self.tables.ledger}")
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
            server = self._server()
            with server.cursor() as cursor:
                for name in self.databases:
                    cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
            server.close()
        for name in self.vhosts:
            self._rabbitmqctl("delete_vhost", name)


class PeakMemory:
    """Samples each child's VmHWM (peak resident set) from /proc while it runs.

    Not wait4's ru_maxrss: a child started by vfork and exec inherits the
    parent's high-water mark there, so every child would report the bench's.
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peaks: dict[int, int] = {}
        self._children: list[subprocess.Popen] = []
        threading.Thread(target=self._sample, daemon=True).start()

    def watch(self, child: subprocess.Popen) -> None:
        self.peaks[child.pid] = 0
        self._children.append(child)

    def peak_kb(self, child: subprocess.Popen) -> int:
        return self.peaks.get(child.pid, 0)

    def _sample(self) -> None:
        while True:
            for child in list(self._children):
                if child.returncode is None:
                    self.peaks[child.pid] = max(self.peaks[child.pid], vm_hwm_kb(child.pid))
            time.sleep(self.interval)


def vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0  # gone, or a zombie with no memory left to report


def parse_user(amqp_url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(amqp_url).username or "guest"
