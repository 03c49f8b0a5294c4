"""What the benchmark reads besides the clock: batch timings from the children's DEBUG logs, servers' CPU time."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sandbox import cpu_seconds

# worker/apply.py's DEBUG line for every committed batch.
_BATCH = re.compile(
    r"batch of (\d+) records: read and locked in ([\d.]+) ms, own rows written in ([\d.]+) ms, "
    r"shared counters held ([\d.]+) ms"
)
# worker/consume.py's DEBUG line: how long the worker sat waiting for messages before the batch.
_WAITED = re.compile(r"after (\d+) ms waiting for messages")


@dataclass
class Batches:
    """Sums over every committed batch of a variant (milliseconds)."""

    count: int = 0
    records: int = 0
    read: float = 0.0
    write: float = 0.0
    shared: float = 0.0
    waited: float = 0.0

    @property
    def serial_fraction(self) -> float:
        """Time holding the shared counter rows' locks (first counter update to end of commit) over batch time."""
        total = self.read + self.write + self.shared
        return self.shared / total if total else 0.0

    def describe(self) -> str:
        if not self.count:
            return "no batch timings (run the children at DEBUG)"
        per = 1.0 / self.count
        return (f"{self.count} batches of {self.records * per:.0f}: read+lock {self.read * per:.0f} ms, "
                f"own rows {self.write * per:.0f} ms, shared counters to commit {self.shared * per:.0f} ms "
                f"-> serial fraction {self.serial_fraction:.1%}; waited for messages {self.waited * per:.0f} ms")


def batch_timings(logs: list[Path]) -> Batches:
    """Add up the per-batch DEBUG lines of these logs."""
    total = Batches()
    for path in logs:
        text = path.read_text(errors="replace")
        for match in _BATCH.finditer(text):
            total.count += 1
            total.records += int(match[1])
            total.read += float(match[2])
            total.write += float(match[3])
            total.shared += float(match[4])
        total.waited += sum(float(m) for m in _WAITED.findall(text))
    return total


class ServerCpu:
    """CPU seconds MariaDB and RabbitMQ spent between start() and stop(): whole servers, so anything else
    running on them (other users' tests) counts too."""

    SERVERS = {"mariadb": "mariadbd", "rabbitmq": "beam.smp"}

    def __init__(self) -> None:
        self.pids = {name: _pids(process) for name, process in self.SERVERS.items()}
        self.started = self._now()

    def _now(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in self.pids.items()}

    def stop(self) -> dict[str, float]:
        now = self._now()
        return {name: now[name] - self.started[name] for name in now}


def _pids(name: str) -> list[int]:
    found = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]
