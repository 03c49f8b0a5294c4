"""The bounce directory as an operator meets it: not writable, worked by another process, archives already there.

Unwritable is made with mode bits. Root ignores them (CAP_DAC_OVERRIDE), so each
command runs without that capability: `prctl(PR_CAPBSET_DROP)` before exec takes
it out of what the new program gets, as for any other user.
"""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from iem_seed import Seed, bounce, ledger_rows, write_file
from pmtabounce.common.bouncedir import DirectoryLock
from worker_fleet import worker_env

PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2


def _as_an_ordinary_user() -> None:
    """In the child before exec: mode bits apply to it even when the tests run as root (EPERM otherwise: fine)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0)


def cli_env(db=None, amqp_url: str = "", **settings: str) -> dict[str, str]:
    return worker_env(db.url if db else "", amqp_url, **settings)


def pmtabounce(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pmtabounce", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=_as_an_ordinary_user)


@pytest.fixture
def directory(tmp_path) -> Path:
    path = tmp_path / "bounces"
    path.mkdir()
    yield path
    path.chmod(0o755)  # so pytest can clean it up


def a_bounce_file(iem_db, directory: Path) -> Path:
    seed = Seed(iem_db)
    seed.lists(3)
    seed.newsletter(42)
    seed.subscriber("ann@example.com", 3)
    return write_file(directory / "bounces-1.csv", [bounce("hard")])


def assert_clear_refusal(result: subprocess.CompletedProcess, directory: Path) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{directory} is not writable by user root" in result.stderr


@pytest.mark.parametrize("lock_file_there", [False, True])
def test_process_refuses_an_unwritable_directory_before_committing_anything(iem_db, directory, lock_file_there):
    """With the lock file already there the lock is taken, so without the check the records were committed
    and the rename then failed with a traceback."""
    source = a_bounce_file(iem_db, directory)
    if lock_file_there:
        (directory / ".pmtabounce.lock").write_text("")
    directory.chmod(0o555)
    result = pmtabounce(cli_env(iem_db), "process", str(directory))
    assert_clear_refusal(result, directory)
    assert source.exists() and ledger_rows(iem_db) == []


def test_producer_refuses_an_unwritable_directory_at_start(iem_db, directory):
    a_bounce_file(iem_db, directory)
    directory.chmod(0o555)
    env = cli_env(iem_db, amqp_url="amqp://guest:guest@127.0.0.1:5672/pmtabounce-never-used")
    assert_clear_refusal(pmtabounce(env, "producer", "--once", str(directory)), directory)


def test_status_needs_only_to_read_the_directory(iem_db, directory):
    """compose mounts the directory read-only for status: that once always said down."""
    (directory / "bounces-1.csv").write_text("type,rcpt\r\n")
    directory.chmod(0o555)
    result = pmtabounce(cli_env(iem_db, bounce_dir=str(directory)), "status", "--json")
    part = json.loads(result.stdout)["bounce_dir"]
    assert result.returncode == 0, result.stdout
    assert (part["state"], part["pending_files"], part["writable"]) == ("ok", 1, False)
    text = pmtabounce({**cli_env(iem_db, bounce_dir=str(directory)), "COLUMNS": "250"}, "status").stdout
    assert "read-only for this user" in text
    directory.chmod(0o311)  # listing refused
    result = pmtabounce(cli_env(iem_db, bounce_dir=str(directory)), "status", "--json")
    part = json.loads(result.stdout)["bounce_dir"]
    assert result.returncode == 1 and part["state"] == "down"


def test_a_second_process_waits_for_the_first_then_gives_up_after_lock_wait(iem_db, directory):
    source = a_bounce_file(iem_db, directory)
    held = DirectoryLock(directory)
    assert held.acquire(wait=False)
    try:
        started = time.monotonic()
        result = pmtabounce(cli_env(iem_db), "process", "--lock-wait", "1.5", str(directory))
        waited = time.monotonic() - started
    finally:
        held.release()
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "still being worked by another process" in result.stderr and "--lock-wait" in result.stderr
    assert 1.5 <= waited < 10 and source.exists() and ledger_rows(iem_db) == []


def test_a_second_process_takes_over_when_the_first_ends(iem_db, directory):
    a_bounce_file(iem_db, directory)
    held = DirectoryLock(directory)
    assert held.acquire(wait=False)
    runner = subprocess.Popen([sys.executable, "-m", "pmtabounce", "process", "--json", str(directory)],
                              env=cli_env(iem_db), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    assert runner.poll() is None  # still waiting, not failed at once
    held.release()
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, err
    assert "waiting up to 60 s" in err and json.loads(out)["disabled"] == 1


def test_process_keeps_an_earlier_archive_of_the_same_name(iem_db, directory):
    a_bounce_file(iem_db, directory)
    (directory / "bounces-1.csv.done").write_bytes(b"the original, already applied\r\n")
    result = pmtabounce(cli_env(iem_db), "process", "--json", str(directory))
    assert result.returncode == 0, result.stderr
    assert (directory / "bounces-1.csv.done").read_bytes() == b"the original, already applied\r\n"
    assert "ann@example.com" in (directory / "bounces-1.csv.1.done").read_text()


def test_a_file_that_cannot_be_read_is_named_and_the_others_are_done(iem_db, directory):
    a_bounce_file(iem_db, directory)
    unreadable = write_file(directory / "bounces-0.csv", [bounce("hard", "bob@example.com")])
    unreadable.chmod(0)
    try:
        result = pmtabounce(cli_env(iem_db), "process", str(directory))
    finally:
        unreadable.chmod(0o644)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "bounces-0.csv could not be processed" in result.stderr and "Permission denied" in result.stderr
    assert f"could not process bounces-0.csv in {directory}" in result.stderr
    assert unreadable.exists() and (directory / "bounces-1.csv.done").exists()
    assert [row["email"] for row in ledger_rows(iem_db)] == ["ann@example.com"]
