"""What the benchmark reads besides the clock: batch timings from the children's DEBUG logs, servers' CPU time."""

from __future__ import annotations

import io
import pstats
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from sandbox import cpu_seconds

# worker/apply.py's DEBUG line for every committed batch.
_BATCH = re.compile(
    r"batch of (\d+) records: read and locked in ([\d.]+) ms, own rows written in ([\d.]+) ms, "
    r"shared counters held ([\d.]+) ms"
)
# worker/consume.py's DEBUG line: how long the worker sat waiting for messages before the batch.
_WAITED = re.compile(r"after (\d+) ms waiting for messages")
# pmtabounce/inline.py's DEBUG line for every file: the overlap of its reader thread and the database side.
_READ_AHEAD = re.compile(r"read ahead: the database side waited (\d+) ms for records, the reader (\d+) ms for")


@dataclass
class Batches:
    """Sums over every committed batch of a variant (milliseconds)."""

    count: int = 0
    records: int = 0
    read: float = 0.0
    write: float = 0.0
    shared: float = 0.0
    waited: float = 0.0
    reader_waited: float = 0.0  # `process`: its reader thread waiting for room (the database side is the slower)
    files: int = 0  # `process`: files with a read-ahead line

    @property
    def serial_fraction(self) -> float:
        """Time holding the shared counter rows' locks (first counter update to end of commit) over batch time."""
        total = self.read + self.write + self.shared
        return self.shared / total if total else 0.0

    def describe(self) -> str:
        if not self.count:
            return "no batch timings (run the children at DEBUG)"
        per = 1.0 / self.count
        waited = f"waited for messages {self.waited * per:.0f} ms"
        if self.files:
            waited = (f"waited for the reader {self.waited * per:.0f} ms (reader waited for the database "
                      f"{self.reader_waited * per:.0f} ms)")
        return (f"{self.count} batches of {self.records * per:.0f}: read+lock {self.read * per:.0f} ms, "
                f"own rows {self.write * per:.0f} ms, shared counters to commit {self.shared * per:.0f} ms "
                f"-> serial fraction {self.serial_fraction:.1%}; {waited}")


@dataclass
class Result:
    name: str
    records: int
    seconds: float
    rss_kb: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    note: str = ""
    cpu: dict[str, float] = field(default_factory=dict)  # role -> CPU seconds (workers: all of them)
    servers: dict[str, float] = field(default_factory=dict)  # mariadb/rabbitmq -> CPU seconds
    batches: Batches = field(default_factory=Batches)
    handlers: dict[str, int] = field(default_factory=dict)  # (L): the replaying session's Handler_* counts

    def cpu_per_10k(self, role: str) -> float:
        return self.cpu[role] * 10000 / self.records if self.records else 0.0

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


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
        for match in _READ_AHEAD.finditer(text):
            total.files += 1
            total.waited += float(match[1])
            total.reader_waited += float(match[2])
    return total


class ServerCpu:
    """CPU seconds MariaDB and RabbitMQ spent between start() and stop(): the processes listening on the
    bench's ports (3306 and 5672 unless --mysql-url/--amqp-url say otherwise), so the default RabbitMQ
    node only, not the nodes test suites start on ports of their own; whole servers, so anything else
    running on them (other users' tests) counts too."""

    PORTS = {"mariadb": 3306, "rabbitmq": 5672}  # bench.py sets them from its URLs

    def __init__(self) -> None:
        self.pids = {name: _listening(port) for name, port in self.PORTS.items()}
        self.started = {pid: cpu_seconds(pid) for pids in self.pids.values() for pid in pids}

    def stop(self) -> dict[str, float]:
        """CPU seconds per server since start (a process that has gone since counts nothing)."""
        now = {pid: cpu_seconds(pid) for pid in self.started}
        return {name: sum(max(0.0, now[pid] - self.started[pid]) for pid in pids) for name, pids in self.pids.items()}


def _listening(port: int) -> list[int]:
    """The process(es) listening on this TCP port (`ss` names them to root)."""
    found = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True)
    return sorted({int(pid) for pid in re.findall(r"pid=(\d+)", found.stdout)})


def print_results(results: list[Result]) -> None:
    base = results[0].rate if results and results[0].name.startswith("(a)") else 0.0
    before = next((r.rate for r in results if r.name.startswith("(b0)")), 0.0)
    print(f"\n{'variant':<36}{'records':>9}{'seconds':>9}{'rows/s':>9}{'x (a)':>8}{'x (b0)':>8}  peak RSS")
    for r in results:
        ratio = f"{r.rate / base:7.1f}x" if base else "      -"
        ratio_b0 = f"{r.rate / before:7.2f}x" if before else "      -"
        rss = ", ".join(f"{k} {v / 1024:.0f} MB" for k, v in r.rss_kb.items())
        print(f"{r.name:<36}{r.records:>9}{r.seconds:>9.1f}{r.rate:>9.0f}{ratio:>8}{ratio_b0:>8}  {rss}  {r.note}")
    print("\nCPU seconds per 10,000 rows (children from /proc; servers are whole processes, shared with anything "
          "else running on them)")
    for r in results:
        if r.cpu or r.servers:
            own = ", ".join(f"{role} {r.cpu_per_10k(role):.2f}" for role in r.cpu)
            shared = ", ".join(f"{k} {v * 10000 / r.records:.2f}" for k, v in r.servers.items())
            print(f"  {r.name:<36}{own};  {shared}")
    print("\nper batch (Amdahl: a fleet on a database with cores of its own scales to at most 1 / serial fraction)")
    for r in results:
        if r.cpu and not r.name.startswith("(R)"):  # (R) has no batches
            print(f"  {r.name:<36}{r.batches.describe()}")
    limits = [r for r in results if r.name.startswith("(L)")]
    rates: dict[str, list[float]] = {}
    for r in results:
        rates.setdefault(r.name, []).append(r.rate)
    limit_rate = max((max(rates[r.name]) for r in limits), default=0.0)  # the fastest replay: the least loaded
    if limits:
        print("\nhow close (rows/s over every round; the limit: the fastest replay of our statements by MariaDB alone)")
        for name, found in rates.items():
            if name.startswith(("(b", "(L)")):
                low, high = min(found), max(found)
                print(f"  {name:<36}{low:>7.0f} - {high:>6.0f} rows/s = {low / limit_rate:.0%} - "
                      f"{high / limit_rate:.0%} of the limit")
    broker = max(rates.get("(R) RabbitMQ alone, same messages", [0.0]))
    if broker:
        print("\nhow close the fleet is to RabbitMQ alone (the fastest (R): publishing and consuming the same "
              "messages without our code)")
        for name, found in rates.items():
            if name.startswith(("(c", "(R)")):
                low, high = min(found), max(found)
                print(f"  {name:<36}{low:>7.0f} - {high:>6.0f} rows/s = {low / broker:.0%} - {high / broker:.0%}")
    fleets = sorted({name.split(", --baseline")[0].replace("(c0)", "(c)") for name in rates if name.startswith("(c0)")})
    for name in fleets:
        pairs = [b / a for a, b in zip(rates[name.replace("(c)", "(c0)") + ", --baseline"], rates[name], strict=False)]
        print(f"{name} / its --baseline round by round: {', '.join(f'{p:.2f}x' for p in pairs)}")
    before, ours = rates.get("(b0) inline, --baseline"), rates.get("(b) inline process")
    if before and ours:
        pairs = [b / a for a, b in zip(before, ours, strict=False)]
        print(f"\n(b) / (b0) round by round: {', '.join(f'{p:.2f}x' for p in pairs)}")
    if limits:
        names = sorted({k for r in limits for k, v in r.handlers.items() if v})
        print("\nMariaDB handler counts per 10,000 rows (SHOW SESSION STATUS of the replaying session)")
        print(f"  {'':<36}" + "".join(f"{n.removeprefix('Handler_'):>14}" for n in names))
        for r in limits:
            print(f"  {r.name:<36}" + "".join(f"{r.handlers.get(n, 0) * 10000 / r.records:>14.0f}" for n in names))
    scaled = {r.name.removesuffix(", at scale"): r for r in results if r.name.endswith(", at scale")}
    if scaled:
        print("\nat scale against an empty ledger and small IEM tables (same world, same run)")
        for r in results:
            if r.name in scaled:
                print(f"  {r.name:<36}{r.rate:>7.0f} -> {scaled[r.name].rate:>7.0f} rows/s: "
                      f"{scaled[r.name].rate / r.rate:.0%}")
    for r in results:
        status = "equals the expected-state model" if not r.problems else "DIFFERS from the model:"
        if r.name.startswith("(R)"):
            status = "every message confirmed, consumed and acked"
        print(f"{r.name}: {status}")
        for line in r.problems:
            print(f"    {line}")


def print_profiles(directory: Path, top: int = 15) -> None:
    """The functions each profiled child spent most of its own time in (cProfile's tottime)."""
    for path in sorted(directory.glob("*.prof")):
        out = io.StringIO()
        stats = pstats.Stats(str(path), stream=out)
        print(f"\nprofile {path.name}: {stats.total_tt:.2f} s in Python functions; top {top} by own time")
        stats.sort_stats("tottime").print_stats(top)
        lines = out.getvalue().splitlines()
        start = next((n for n, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
        print("\n".join(lines[start:start + top + 1]))
