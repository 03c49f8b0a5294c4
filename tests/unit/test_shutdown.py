"""common/shutdown.py in a real process: the first SIGTERM/SIGINT is a clean stop, a second of either kind
ends the process at once. Each case runs a child interpreter, since signals are per process."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

# The child stands for any role: it waits for a stop request, then "finishes what it holds" (a sleep long
# enough that only the second signal can end it in time), then leaves the block and exits 0.
ROLE = """
import sys, time
from pmtabounce.common.shutdown import stop_on_signals
finish = float(sys.argv[1])
with stop_on_signals() as stop:
    print("ready", flush=True)
    stop.wait()
    print("stopping", flush=True)
    time.sleep(finish)
print("stopped", flush=True)
"""


def start(finish_seconds: float) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", ROLE, str(finish_seconds)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "ready\n"
    return child


@pytest.mark.parametrize("first", [signal.SIGTERM, signal.SIGINT])
def test_one_signal_is_a_clean_stop_after_what_is_in_hand(first):
    child = start(finish_seconds=0.3)
    child.send_signal(first)
    out, _ = child.communicate(timeout=30)
    assert child.returncode == 0
    assert out == "stopping\nstopped\n"


@pytest.mark.parametrize(
    ("first", "second"),
    [(signal.SIGTERM, signal.SIGTERM), (signal.SIGINT, signal.SIGINT),
     (signal.SIGTERM, signal.SIGINT), (signal.SIGINT, signal.SIGTERM)],
)
def test_a_second_signal_of_either_kind_ends_the_process_at_once(first, second):
    child = start(finish_seconds=60)
    child.send_signal(first)
    assert child.stdout.readline() == "stopping\n"
    child.send_signal(second)
    try:
        child.wait(timeout=10)
    finally:
        child.kill()
    assert child.returncode == -second  # killed by that signal: exit status 128 + N in a shell
