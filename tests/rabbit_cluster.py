"""Three RabbitMQ nodes of the installed server on loopback, joined in a cluster, for the cluster tests.

Each node has its own name, AMQP, management and distribution ports, data and log directories, config
and enabled-plugins files; they share an Erlang cookie in a HOME of their own (the CLI tools read it
there too). The machine's default node (rabbit@localhost, port 5672) and its files are never touched.
A node is started with `start_new_session` so that a kill takes its whole process group (beam and its
helpers), and `close()` kills whatever is left, even when a test failed. Its own session also keeps it
alive when pytest itself is killed (a CI timeout, a second Ctrl-C), which runs no `close()`: a guard
process, holding the read end of a pipe only pytest writes to, kills every node when that pipe closes.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import orjson
from worker_fleet import free_port

# Waits for its stdin (a pipe from the process that started the cluster) to close, then kills each process
# group listed in the file, if its leader is still one of our nodes (a group id may have been reused).
GUARD = """
import os, signal, sys
sys.stdin.buffer.read()
for line in open(sys.argv[1]).read().split():
    pgid, _, name = line.partition(":")
    try:
        if f"RABBITMQ_NODENAME={name}".encode() in open(f"/proc/{pgid}/environ", "rb").read().split(b"\\0"):
            os.killpg(int(pgid), signal.SIGKILL)
    except OSError:
        pass
"""
SERVER_BIN = Path("/usr/lib/rabbitmq/bin")  # the package's own scripts: /usr/sbin's wrappers switch user
START_SECONDS = 120.0


def _tool(name: str) -> str:
    path = SERVER_BIN / name
    return str(path) if path.exists() else (shutil.which(name) or name)


class RabbitNode:
    """One node: started, killed (SIGKILL, no goodbye) and started again on the same data."""

    def __init__(self, cluster_dir: Path, home: Path, name: str) -> None:
        self.name = f"{name}@localhost"
        self.dir = cluster_dir / name
        self.home = home
        self.amqp_port, self.api_port, self.dist_port = free_port(), free_port(), free_port()
        self.process: subprocess.Popen | None = None
        self.dir.mkdir(parents=True)
        (self.dir / "rabbitmq.conf").write_text(
            f"management.tcp.port = {self.api_port}\nmanagement.tcp.ip = 127.0.0.1\n"
            # the management API lists connections and queue leaders after a statistics round: 5 s by default,
            # as long as a scenario's run lasts on a fast machine
            "collect_statistics_interval = 500\n"
            "log.console = false\nlog.file.level = warning\n"
        )
        (self.dir / "enabled_plugins").write_text("[rabbitmq_management].\n")
        (self.dir / "rabbitmq-env.conf").write_text("")  # not the machine's (it names the default node)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "PMTABOUNCE_"))}
        env.update(
            HOME=str(self.home), ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_NODENAME=self.name, RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.amqp_port), RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_CONFIG_FILE=str(self.dir / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.dir / "advanced.config"),
            RABBITMQ_CONF_ENV_FILE=str(self.dir / "rabbitmq-env.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.dir / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(self.dir / "mnesia"), RABBITMQ_LOG_BASE=str(self.dir / "log"),
            RABBITMQ_PID_FILE=str(self.dir / "pid"),
        )
        return env

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/%2F"

    @property
    def api_url(self) -> str:
        return f"http://guest:guest@127.0.0.1:{self.api_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        with open(self.dir / "server.log", "ab") as log:
            self.process = subprocess.Popen([_tool("rabbitmq-server")], env=self.env(), stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True, cwd=self.dir)
        with open(self.dir.parent / "process-groups", "a") as groups:
            groups.write(f"{self.process.pid}:{self.name}\n")

    def wait_ready(self, timeout: float = START_SECONDS) -> None:
        """Until the node runs its apps and the management API answers."""
        deadline = time.monotonic() + timeout
        while not self.answers():
            if not self.running:
                raise AssertionError(f"RabbitMQ node {self.name} exited while starting: see {self.dir}/server.log")
            if time.monotonic() > deadline:
                raise AssertionError(f"RabbitMQ node {self.name} did not start in {timeout:.0f} s")
            time.sleep(0.3)
        self.ctl("await_startup", timeout=timeout)

    def answers(self) -> bool:
        try:
            self.api("/api/overview")
            return True
        except OSError:
            return False

    def api(self, path: str):
        request = urllib.request.Request(f"http://127.0.0.1:{self.api_port}{path}",
                                         headers={"Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q="})  # guest:guest
        with urllib.request.urlopen(request, timeout=5) as response:
            return orjson.loads(response.read())

    def ctl(self, *args: str, timeout: float = 60) -> str:
        done = subprocess.run([_tool("rabbitmqctl"), "-n", self.name, *args], env=self.env(), capture_output=True,
                              text=True, timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"rabbitmqctl {' '.join(args)} on {self.name}: {done.stdout}{done.stderr}")
        return done.stdout

    def kill(self) -> None:
        """SIGKILL to the node's whole process group: what a crashed machine does, no goodbye to anyone."""
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()
            self.process = None


class RabbitCluster:
    """Three nodes joined into one cluster; `close()` kills every node and removes nothing of others'."""

    def __init__(self, directory: Path, size: int = 3) -> None:
        self.dir = directory
        home = directory / "home"
        home.mkdir(parents=True)
        cookie = home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16).upper())
        cookie.chmod(0o400)
        prefix = f"pmtc{os.getpid()}x{secrets.token_hex(2)}"
        self.nodes = [RabbitNode(directory, home, f"{prefix}n{n}") for n in range(1, size + 1)]
        self._guard: subprocess.Popen | None = None

    def start(self) -> RabbitCluster:
        (self.dir / "process-groups").touch()
        self._guard = subprocess.Popen([sys.executable, "-c", GUARD, str(self.dir / "process-groups")],
                                       stdin=subprocess.PIPE, start_new_session=True)
        try:
            for node in self.nodes:
                node.start()
            with ThreadPoolExecutor(len(self.nodes)) as pool:
                list(pool.map(lambda node: node.wait_ready(), self.nodes))
            first = self.nodes[0]
            for node in self.nodes[1:]:
                node.ctl("stop_app")
                node.ctl("join_cluster", first.name)
                node.ctl("start_app")
            for node in self.nodes:
                node.wait_ready()
            running = first.api("/api/nodes")
            assert sum(1 for n in running if n["running"]) == len(self.nodes), running
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for node in self.nodes:
            node.kill()
        if self._guard is not None:
            self._guard.stdin.close()  # nothing left for it to kill
            self._guard.wait()
            self._guard = None

    @property
    def urls(self) -> str:
        """PMTABOUNCE_AMQP_URL for the whole cluster: every node's URL, comma-separated."""
        return ",".join(node.url for node in self.nodes)

    @property
    def api_urls(self) -> str:
        return ",".join(node.api_url for node in self.nodes)

    def node(self, name: str) -> RabbitNode:
        return next(node for node in self.nodes if node.name == name)

    def any_running(self) -> RabbitNode:
        """A node that runs and answers (one being restarted may run and not answer yet)."""
        return next(node for node in self.nodes if node.running and node.answers())

    def queue(self, name: str) -> dict:
        """The queue as the management API of a running node shows it (leader, members, online)."""
        return self.any_running().api(f"/api/queues/%2F/{quote(name, safe='')}")

    def leader(self, queue: str) -> RabbitNode:
        """The node of the queue's leader (waiting for the management API to list the queue)."""
        deadline = time.monotonic() + 30
        while True:
            try:
                return self.node(self.queue(queue)["leader"])
            except (OSError, KeyError):  # 404 (HTTPError is an OSError) until its statistics arrive
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def clients(self, prefix: str = "pmtabounce-") -> dict[str, list[str]]:
        """Our processes' connections by node name (the connection_name every role sets)."""
        by_node: dict[str, list[str]] = {}
        for connection in self.any_running().api("/api/connections"):
            name = (connection.get("client_properties") or {}).get("connection_name", "")
            if name.startswith(prefix):
                by_node.setdefault(connection["node"], []).append(name)
        return by_node

    def restart(self, node: RabbitNode) -> None:
        node.start()
        node.wait_ready()

    def all_up(self) -> None:
        """Start any node a test left down (they rejoin the cluster on their own data)."""
        down = [node for node in self.nodes if not node.running]
        for node in down:
            node.start()
        for node in down:
            node.wait_ready()
