"""`pmtabounce process` as an operator runs it: a subprocess against the real MariaDB."""

from __future__ import annotations

import csv
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from iem_seed import T0, Seed, bounce, ledger_rows, rejected_rows, snapshot, write_file, write_oversized
from pmtabounce.store.db import Tables
from tcp_proxy import TcpProxy

SAMPLES = Path(__file__).parent.parent / "data" / "samples"


def cli_env(db=None, **settings: str) -> dict[str, str]:
    """The runner's environment without any PMTABOUNCE_* of its own, plus these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMTABOUNCE_")}
    if db is not None:
        env["PMTABOUNCE_MYSQL_URL"] = db.url
    env.update({f"PMTABOUNCE_{name.upper()}": value for name, value in settings.items()})
    return env


def run_process(directory: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pmtabounce", "process", str(directory), *args], env=env,
                          capture_output=True, text=True, timeout=180)


def process_json(directory: Path, env: dict[str, str]) -> dict[str, int]:
    result = run_process(directory, env, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def seed_samples(seed: Seed) -> dict[str, int]:
    """Subscribers for the sample files' addresses; returns name -> subscriberid."""
    seed.lists(2, 3, 4, 5, 6, 8, 13)
    for statid in (42, 43, 44):
        seed.newsletter(statid)
    seed.autoresponder(45)
    rows = [("john", "john@example.com", 3), ("mary", "mary@example.net", 8), ("mary13", "mary@example.net", 13),
            ("jo", "jo@example.org", 3), ("pieter", "pieter.jansen@example.nl", 3), ("kees", "kees@example.com", 5),
            ("tom", "tom@example.com", 2), ("eva", "eva@example.com", 2), ("bad", "bad.bytes@example.com", 4),
            ("spaces", "spaces@example.com", 6), ("newcat", "newcat@example.com", 4)]
    ids = {name: seed.subscriber(email, listid) for name, email, listid in rows}
    ids["multi"] = seed.subscriber("multi@example.com", 4, unsubscribed=T0)
    return ids


SAMPLE_SUMMARY = {
    "files": 6, "records": 15, "hard": 8, "soft": 3, "ignored": 4, "applied": 4, "disabled": 6, "not_found": 3,
    "already_bounced": 0, "unroutable": 2, "held": 0, "duplicates": 0, "complaints": 0, "unsubscribed": 0,
    "complaints_not_found": 0, "complaints_unroutable": 0, "complaints_ignored": 0, "complaint_duplicates": 0,
    "rejected": 2,
}


@pytest.fixture
def samples(tmp_path) -> Path:
    directory = tmp_path / "bounces"
    shutil.copytree(SAMPLES, directory, ignore=shutil.ignore_patterns("*.md", "complaints-*"))
    return directory


def test_process_the_sample_files(iem_db, samples):
    ids = seed_samples(Seed(iem_db))
    assert process_json(samples, cli_env(iem_db)) == SAMPLE_SUMMARY
    names = sorted(p.name for p in samples.iterdir())
    assert names == sorted([p.name + ".done" for p in SAMPLES.glob("bounces-*.csv")]
                           + ["bounces-2024-11-19-1025.csv.rejected", ".pmtabounce.lock"])
    bounced = dict(iem_db.query("SELECT subscriberid, bounced FROM {t.subscribers}"))
    disabled = {name for name, sid in ids.items() if bounced[sid]}
    assert disabled == {"john", "pieter", "kees", "tom", "bad", "spaces"}
    assert bounced[ids["tom"]] == 1732007523  # 2024-11-19 10:12:03+0100, not the year
    assert bounced[ids["multi"]] == 0
    by_outcome = {}
    for row in ledger_rows(iem_db):
        by_outcome.setdefault(row["outcome"], set()).add(row["email"])
    assert by_outcome == {
        "disabled": {"john@example.com", "Pieter.Jansen@Example.NL", "kees@example.com", "tom@example.com",
                     "bad.bytes@example.com", "spaces@example.com"},
        "applied": {"mary@example.net", "jo@example.org", "eva@example.com", "newcat@example.com"},
        "not_found": {"anne@example.com", "lisa@example.com", "multi@example.com"},
        "unroutable": {"nolist@example.com", "short@example.com"},  # a short row: no list id cell
    }
    assert iem_db.query("SELECT listid FROM {t.bounces} WHERE subscriberid = %s", (ids["mary"],)) == [(8,)]
    rejected = list(csv.reader(open(samples / "bounces-2024-11-19-1025.csv.rejected", newline="")))
    assert rejected[0][0] == "pmtabounce_reject_reason"
    assert [row[0].split(":")[0] for row in rejected[1:]] == ["line 4", "line 10"]
    assert rejected[2][1:] == ["b", "1732012008", "trunc@example.com", "failed", "5.1.1 (bad destination mai"]


def test_process_the_complaints_sample(iem_db, tmp_path):
    """A mixed file: its bounce, complaints by rcpt and by IEM's link, JMRP, not-spam, and one naming nobody."""
    seed = Seed(iem_db)
    seed.lists(2, 3, 7, 12)
    seed.newsletter(42)
    seed.autoresponder(4107)
    # The links' subscriberids first: the rows after them take the next ids.
    mike = seed.subscriber("mike@example.org", 3, subscriberid=803, confirmcode="0a9b8c7d6e5f40312233445566778899")
    dave = seed.subscriber("dave@example.net", 12, subscriberid=804)
    carol = seed.subscriber("Carol@Example.com", 7, subscriberid=901)
    jane = [seed.subscriber("jane.doe@example.net", 12, subscriberid=802), seed.subscriber("jane.doe@example.net", 3),
            seed.subscriber("jane.doe@example.net", 2)]
    directory = tmp_path / "bounces"
    directory.mkdir()
    shutil.copy(SAMPLES / "complaints-2024-11-19-1030.csv", directory)
    summary = process_json(directory, cli_env(iem_db))
    assert {k: summary[k] for k in ("records", "not_found", "complaints", "unsubscribed", "complaints_not_found",
                                    "complaints_unroutable", "complaints_ignored", "complaint_duplicates")} == {
        "records": 6, "not_found": 1, "complaints": 5, "unsubscribed": 3, "complaints_not_found": 0,
        "complaints_unroutable": 1, "complaints_ignored": 1, "complaint_duplicates": 0}
    rows = iem_db.query("SELECT subscriberid, listid, unsubscribetime, statid, unsubscribearea "
                        "FROM {t.unsubscribes} ORDER BY subscriberid")
    assert sorted(rows) == sorted([(jane[0], 12, 1732011060, 42, "n"), (jane[1], 3, 1732011060, 42, "n"),
                                   (jane[2], 2, 1732011060, 0, "f"), (mike, 3, 1732011120, 42, "n"),
                                   (carol, 7, 1732011180, 4107, "a")])
    assert iem_db.query("SELECT unsubscribed FROM {t.subscribers} WHERE subscriberid = %s", (dave,)) == [(0,)]
    assert iem_db.query("SELECT unsubscribecount FROM {t.stats_newsletters}") == [(3,)]
    assert iem_db.query("SELECT unsubscribecount FROM {t.stats_autoresponders}") == [(1,)]
    by_line = {row["source_line"]: (row["outcome"], row["email"]) for row in ledger_rows(iem_db)}
    assert by_line == {2: ("not_found", "ann@example.com"), 3: ("unsubscribed", "jane.doe@example.net"),
                       4: ("unsubscribed", "mike@example.org"), 5: ("unsubscribed", "carol@example.com"),
                       6: ("ignored", "dave@example.net"), 7: ("unroutable", "")}


def test_files_processed_again_change_nothing(iem_db, samples):
    seed_samples(Seed(iem_db))
    process_json(samples, cli_env(iem_db))
    after_first = snapshot(iem_db)
    for done in samples.glob("*.done"):  # an operator copies everything back
        done.rename(done.with_suffix(""))
    summary = process_json(samples, cli_env(iem_db))
    assert summary["duplicates"] == 15 and summary["applied"] == summary["disabled"] == summary["not_found"] == 0
    assert snapshot(iem_db) == after_first
    assert {row["seen_count"] for row in ledger_rows(iem_db)} == {2}


def test_the_same_record_in_another_file_counts_once(iem_db, tmp_path):
    seed = Seed(iem_db)
    seed.lists(3)
    seed.newsletter(42)
    seed.newsletter(43)
    seed.subscriber("ann@example.com", 3)
    records = [bounce("soft", statid=42), bounce("ignore", statid=43, time=T0 + 1)]
    directory = tmp_path / "bounces"
    directory.mkdir()
    write_file(directory / "bounces-1.csv", records)
    write_file(directory / "bounces-2.csv", [bounce("hard", "bob@example.com")] + records[::-1])
    summary = process_json(directory, cli_env(iem_db))
    assert (summary["records"], summary["applied"], summary["duplicates"]) == (5, 2, 2)
    assert iem_db.query("SELECT bouncecount_soft, bouncecount_unknown FROM {t.stats_newsletters}") == [
        (11, 30), (10, 31)]
    assert [(r["source_file"], r["seen_count"]) for r in ledger_rows(iem_db)] == [
        ("bounces-1.csv", 2), ("bounces-1.csv", 2), ("bounces-2.csv", 1)]


def test_done_action_delete(iem_db, samples):
    seed_samples(Seed(iem_db))
    assert process_json(samples, cli_env(iem_db, done_action="delete"))["files"] == 6
    assert sorted(p.name for p in samples.iterdir()) == [".pmtabounce.lock", "bounces-2024-11-19-1025.csv.rejected"]


def test_the_rejected_file_can_be_fixed_and_fed_back(iem_db, samples):
    ids = seed_samples(Seed(iem_db))
    Seed(iem_db).subscriber("short@example.com", 4)
    Seed(iem_db).subscriber("trunc@example.com", 4)
    process_json(samples, cli_env(iem_db))
    rejected = samples / "bounces-2024-11-19-1025.csv.rejected"
    rows = list(csv.reader(open(rejected, newline="")))
    fixes = {"line 4": ["b", "1732012003", "newcat@example.com", "failed", "5.1.1", "gone", "bad-mailbox", "4", "45"],
             "line 10": ["b", "1732012008", "trunc@example.com", "failed", "5.1.1", "gone", "bad-mailbox", "4", "45"]}
    fixed = [rows[0]] + [[row[0]] + fixes[row[0].split(":")[0]] for row in rows[1:]]
    with open(samples / "bounces-2024-11-19-1025-fixed.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(fixed)
    rejected.unlink()
    summary = process_json(samples, cli_env(iem_db))
    assert (summary["files"], summary["records"], summary["rejected"]) == (1, 2, 0)
    assert (summary["applied"], summary["disabled"]) == (0, 2)
    assert not list(samples.glob("*.rejected"))
    stats = iem_db.query("SELECT bouncecount_soft, bouncecount_hard, bouncecount_unknown FROM {t.stats_autoresponders}")
    assert stats == [(1, 6, 4)]  # from 1/2/3: the first run's 2 hard, 1 unknown; then 2 hard
    assert dict(iem_db.query("SELECT subscriberid, bounced FROM {t.subscribers}"))[ids["newcat"]] == 1732012003


def test_a_record_too_big_for_a_queue_message_is_rejected_with_its_cells_as_the_producer_does(iem_db, tmp_path):
    """Inline must refuse what a worker would refuse (a body over 256 KiB), or the two modes disagree."""
    seed = Seed(iem_db)
    seed.lists(3)
    seed.newsletter(42)
    seed.subscriber("ann@example.com", 3)
    seed.subscriber("big@example.com", 3)
    directory = tmp_path / "bounces"
    directory.mkdir()
    big_cells = write_oversized(directory / "bounces-1.csv")
    summary = process_json(directory, cli_env(iem_db))
    assert (summary["disabled"], summary["complaints"], summary["rejected"]) == (1, 0, 2)
    rejected = rejected_rows(directory / "bounces-1.csv")
    assert [cells for _, cells in rejected] == big_cells
    assert all("262144-byte limit" in reason for reason, _ in rejected), rejected[0][0][:200]
    assert [reason.split(":")[0] for reason, _ in rejected] == ["line 3", "line 4"]


def test_a_row_without_its_trailing_sid_disables_with_statid_0(iem_db, tmp_path):
    """pmta-accounting.md: a row's missing cells are empty; a hard bounce with rcpt and time still applies."""
    seed = Seed(iem_db)
    seed.lists(3)
    seed.newsletter(42)
    ann = seed.subscriber("ann@example.com", 3)
    directory = tmp_path / "bounces"
    directory.mkdir()
    short_row = ["b", str(T0), "ann@example.com", "failed", "5.1.1", "smtp;550 gone", "bad-mailbox", "3"]
    write_file(directory / "bounces-1.csv", [], extra_rows=[short_row])
    summary = process_json(directory, cli_env(iem_db))
    assert (summary["records"], summary["disabled"], summary["rejected"]) == (1, 1, 0)
    assert iem_db.query("SELECT bounced FROM {t.subscribers} WHERE subscriberid = %s", (ann,)) == [(T0,)]
    assert iem_db.query("SELECT statid, listid, bouncetype FROM {t.bounces}") == [(0, 3, "hard")]
    assert iem_db.query("SELECT bouncecount_hard FROM {t.stats_newsletters}") == [(20,)]


def test_an_empty_or_header_only_directory_is_done(iem_db, tmp_path):
    directory = tmp_path / "bounces"
    directory.mkdir()
    (directory / "bounces-1.csv").write_bytes(b"")
    (directory / "bounces-2.csv").write_text("type,timeLogged,rcpt,bounceCat\r\n")
    (directory / "bounces-3.csv").write_text("type,timeLogged,rcpt,bounceCat\r\nd,1732010733,a@example.com,\r\n")
    summary = process_json(directory, cli_env(iem_db))
    assert (summary["files"], summary["records"], summary["rejected"]) == (3, 0, 0)
    assert sorted(p.name for p in directory.glob("*.done")) == ["bounces-1.csv.done", "bounces-2.csv.done",
                                                                 "bounces-3.csv.done"]
    assert process_json(directory, cli_env(iem_db))["files"] == 0


def test_the_summary_for_people_names_every_count(iem_db, samples):
    seed_samples(Seed(iem_db))
    result = run_process(samples, cli_env(iem_db))
    assert result.returncode == 0, result.stderr
    for words in ("files", "records", "hard", "soft", "ignored", "disabled", "not found", "already bounced",
                  "duplicates", "rejected"):
        assert words in result.stdout
    assert "line 4" in result.stderr and "rejected" in result.stderr  # the operator is told where


def test_the_bounce_dir_variable_is_the_default_directory(iem_db, samples):
    seed_samples(Seed(iem_db))
    result = subprocess.run([sys.executable, "-m", "pmtabounce", "process", "--json"], capture_output=True,
                            text=True, timeout=120, env=cli_env(iem_db, bounce_dir=str(samples)))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["files"] == 6


def test_a_table_prefix_from_the_environment(iem_db, samples):
    prefixed = Seed(iem_db, Tables("iem2_")).create_tables()
    seed_samples(prefixed)
    untouched = snapshot(iem_db)
    assert process_json(samples, cli_env(iem_db, table_prefix="iem2_")) == SAMPLE_SUMMARY
    assert snapshot(iem_db) == untouched
    assert len(ledger_rows(iem_db, prefixed.t)) == SAMPLE_SUMMARY["records"]


@pytest.mark.parametrize(
    ("settings", "named", "code"),
    [
        ({"mysql_url": None}, "PMTABOUNCE_MYSQL_URL is not set", 2),
        ({"mysql_url": "postgres://root@127.0.0.1/x"}, "PMTABOUNCE_MYSQL_URL", 2),
        ({"mysql_url": "mysql://root@127.0.0.1:3306/"}, "PMTABOUNCE_MYSQL_URL", 2),
        ({"mysql_url": "mysql://root@127.0.0.1:3306/pmtt_no_such_database"}, "PMTABOUNCE_MYSQL_URL", 1),
        ({"mysql_url": "mysql://pmtt_nobody:secret@127.0.0.1:3306/test"}, "PMTABOUNCE_MYSQL_URL", 1),
        ({"table_prefix": "x`; DROP TABLE email_lists; --"}, "PMTABOUNCE_TABLE_PREFIX", 2),
        ({"table_prefix": "nosuch_"}, "PMTABOUNCE_TABLE_PREFIX", 1),
        ({"done_action": "archive"}, "PMTABOUNCE_DONE_ACTION", 2),
    ],
)
def test_a_missing_or_bad_setting_stops_with_its_name_and_keeps_the_files(iem_db, samples, settings, named, code):
    env = cli_env(iem_db, **{name: value for name, value in settings.items() if value is not None})
    if settings.get("mysql_url", "") is None:
        del env["PMTABOUNCE_MYSQL_URL"]
    before = sorted(p.name for p in samples.iterdir())
    result = run_process(samples, env)
    assert result.returncode == code
    assert named in result.stderr
    assert "secret" not in result.stderr + result.stdout
    assert sorted(p.name for p in samples.iterdir() if p.name != ".pmtabounce.lock") == before  # nothing done
    assert "Traceback" not in result.stderr


def test_a_missing_directory_is_named(iem_db, tmp_path):
    result = run_process(tmp_path / "nowhere", cli_env(iem_db))
    assert result.returncode != 0 and "nowhere" in result.stderr


def test_give_up_after_stops_when_the_database_stays_away_and_leaves_the_file(iem_db, samples):
    proxy = TcpProxy(iem_db.target.host, iem_db.target.port)
    try:
        proxy.cut()
        env = cli_env(retry_max_wait="0.5", mysql_url=proxy.url_for(iem_db.url))
        result = run_process(samples, env, "--give-up-after", "2")
    finally:
        proxy.close()
    assert result.returncode == 1
    assert re.search(r"gave up after 2\.\d s without the database", result.stderr), result.stderr
    assert "no file was touched and the next run takes them up" in result.stderr  # found at start
    assert (samples / "bounces-2024-11-19-1000.csv").exists()
    assert not list(samples.glob("*.done"))


@pytest.mark.parametrize("give_up_after", [3, 8])
def test_give_up_after_holds_during_a_partition_and_says_the_time_it_waited(iem_db, samples, give_up_after):
    """A partition: the socket stays open and nothing answers (the 60 s read timeout must not win)."""
    proxy = TcpProxy(iem_db.target.host, iem_db.target.port)
    try:
        proxy.black_hole()
        env = cli_env(retry_max_wait="0.5", mysql_url=proxy.url_for(iem_db.url))
        started = time.monotonic()
        result = run_process(samples, env, "--give-up-after", str(give_up_after))
        elapsed = time.monotonic() - started
    finally:
        proxy.close()
    assert result.returncode == 1, result.stderr
    said = re.search(r"gave up after (\d+\.\d) s without the database", result.stderr)
    assert said, result.stderr
    assert give_up_after <= float(said.group(1)) < give_up_after + 1.0
    assert elapsed < give_up_after + 4.0  # the interpreter's start and the imports included
    assert not list(samples.glob("*.done"))


# --- a run killed mid-file, then run again, against one clean run -------------------------------------------------

BATCH = 20
HELD = "held@example.com"  # its first record is the 51st of the second file: that batch waits on the test's lock


def crash_world(seed: Seed) -> None:
    seed.lists(1, 2, 3)
    for statid in (41, 42, 43):
        seed.newsletter(statid)
    seed.autoresponder(77)
    for n in range(30):
        for listid in (1, 2, 3)[: 1 + n % 3]:
            seed.subscriber(f"s{n}@example.com", listid, subscriberid=100 * listid + n)
    seed.subscriber(HELD, 1, subscriberid=999)
    seed.bounce_row(101, 41, 1, "hard")


def crash_files(directory: Path) -> tuple[list, list]:
    """Two files of random bounces (repeats included) for 30 addresses on 1-3 lists, and a few bad rows."""
    rng = random.Random(3)
    kinds = ["soft", "soft", "soft", "hard", "ignore"]

    def some(count, emails):
        return [bounce(rng.choice(kinds), rng.choice(emails), rng.sample([1, 2, 3], rng.randint(1, 3)),
                       rng.choice([0, 41, 42, 43, 77]), T0 + rng.randint(0, 50), line=n) for n in range(count)]

    everyone = [f"s{n}@example.com" for n in range(30)]
    first = some(150, everyone)
    second = some(50, everyone) + [bounce("soft", HELD, (1,), 42)] + some(200, everyone + [HELD] * 10)
    write_file(directory / "bounces-1.csv", first, extra_rows=[["b", "soon", "x@example.com"]])
    write_file(directory / "bounces-2.csv", second,
               extra_rows=[["b", "1732010733", ""], ["rb", "yesterday", "y@example.com", "failed"]])
    return first, second


def wait_for(condition, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def wait_for_the_held_batch(db, runner, before_held: set[str]) -> None:
    """Wait until the run committed exactly the batches before the one that needs the held row, then give it
    time to reach that row and wait on it (its lock wait lasts 20 s). Polling information_schema for the
    waiting transaction missed it intermittently on a loaded server; the ledger is exact."""
    wait_for(lambda: {row["fingerprint"] for row in ledger_rows(db)} == before_held or runner.poll() is not None,
             "the run to commit the batches before the held one")
    assert runner.poll() is None, "the run ended instead of waiting on the held row"
    time.sleep(2)


def test_a_run_killed_mid_file_then_run_again_equals_one_clean_run(iem_db, tmp_path):
    clean = Seed(iem_db, Tables("clean_")).create_tables()
    crashed = Seed(iem_db)
    for seed in (clean, crashed):
        crash_world(seed)
    clean_dir, crash_dir = tmp_path / "clean", tmp_path / "crash"
    for directory in (clean_dir, crash_dir):
        directory.mkdir()
        first, second = crash_files(directory)
    clean_summary = process_json(clean_dir, cli_env(iem_db, table_prefix="clean_", batch_size=str(BATCH)))
    assert clean_summary["records"] == 401 and clean_summary["rejected"] == 3

    holder = iem_db.connect()
    with holder.cursor() as cursor:  # hold the subscriber row that the third batch of the second file needs
        cursor.execute(f"SELECT subscriberid FROM {iem_db.tables.subscribers} WHERE emailaddress = %s FOR UPDATE",
                       (HELD,))
    runner = subprocess.Popen([sys.executable, "-m", "pmtabounce", "process", str(crash_dir)],
                              env=cli_env(iem_db, batch_size=str(BATCH)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_the_held_batch(iem_db, runner, {r.fingerprint for r in first + second[:2 * BATCH]})
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        holder.rollback()
        holder.close()
    committed = {r.fingerprint for r in first + second[:2 * BATCH]}  # the third batch was rolled back whole
    assert {row["fingerprint"] for row in ledger_rows(iem_db)} == committed
    assert (crash_dir / "bounces-1.csv.done").exists() and (crash_dir / "bounces-2.csv").exists()

    summary = process_json(crash_dir, cli_env(iem_db, batch_size=str(BATCH)))
    seen, repeats = set(committed), 0
    for record in second:
        repeats += record.fingerprint in seen
        seen.add(record.fingerprint)
    assert (summary["files"], summary["records"], summary["duplicates"], summary["rejected"]) == (1, 251, repeats, 2)
    assert snapshot(iem_db) == snapshot(iem_db, clean.t)
    for name in ("bounces-1.csv.rejected", "bounces-2.csv.rejected"):
        assert (crash_dir / name).read_text() == (clean_dir / name).read_text()
    assert sorted(p.name for p in crash_dir.iterdir()) == sorted(p.name for p in clean_dir.iterdir())


# --- SIGTERM: a clean stop between batches -----------------------------------------------------------------------

def stop_world(db, directory: Path) -> tuple[list, list, object]:
    """crash_world and crash_files, and a connection holding HELD's row: the second file's third batch waits."""
    crash_world(Seed(db))
    directory.mkdir()
    first, second = crash_files(directory)
    holder = db.connect()
    with holder.cursor() as cursor:
        cursor.execute(f"SELECT subscriberid FROM {db.tables.subscribers} WHERE emailaddress = %s FOR UPDATE",
                       (HELD,))
    return first, second, holder


def signalled_run(db, directory: Path, holder, before_held: set[str], *signals: int) -> tuple[int, str]:
    """Start `process`, send `signals` while its batch waits on the held row, let the row go; (rc, stderr)."""
    try:
        with running_process(directory, cli_env(db, batch_size=str(BATCH))) as runner:
            wait_for_the_held_batch(db, runner, before_held)
            for each in signals:
                runner.send_signal(each)
                time.sleep(0.3)
            holder.rollback()
            _, stderr = runner.communicate(timeout=30)
    finally:
        holder.close()
    return runner.returncode, stderr


@contextmanager
def running_process(directory: Path, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """`process DIRECTORY` started (stderr piped, as text) and killed if still running at the end."""
    runner = subprocess.Popen([sys.executable, "-m", "pmtabounce", "process", str(directory)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        yield runner
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()


def test_sigterm_finishes_the_batch_in_hand_and_leaves_the_file_for_the_next_run(iem_db, tmp_path):
    directory = tmp_path / "bounces"
    first, second, holder = stop_world(iem_db, directory)
    rc, stderr = signalled_run(iem_db, directory, holder, {r.fingerprint for r in first + second[:2 * BATCH]},
                               signal.SIGTERM)
    assert rc == 0, stderr
    assert "SIGTERM received: finishing the batch in hand" in stderr
    assert "stopped on request after 1 files; every batch read from bounces-2.csv is committed; it is not marked " \
           "done" in stderr
    committed = {r.fingerprint for r in first + second[:3 * BATCH]}  # the batch in hand committed, then stop
    assert {row["fingerprint"] for row in ledger_rows(iem_db)} == committed
    assert (directory / "bounces-1.csv.done").exists() and (directory / "bounces-2.csv").exists()
    assert process_json(directory, cli_env(iem_db, batch_size=str(BATCH)))["files"] == 1


def test_a_second_signal_stops_process_at_once(iem_db, tmp_path):
    directory = tmp_path / "bounces"
    first, second, holder = stop_world(iem_db, directory)
    rc, _ = signalled_run(iem_db, directory, holder, {r.fingerprint for r in first + second[:2 * BATCH]},
                          signal.SIGTERM, signal.SIGINT)
    assert rc == -signal.SIGINT
    committed = {r.fingerprint for r in first + second[:2 * BATCH]}  # the batch in hand rolled back
    assert {row["fingerprint"] for row in ledger_rows(iem_db)} == committed
    assert (directory / "bounces-2.csv").exists()


def test_sigterm_stops_process_stuck_on_a_silent_database_within_seconds(iem_db, samples):
    proxy = TcpProxy(iem_db.target.host, iem_db.target.port)
    proxy.black_hole()
    try:
        with running_process(samples, cli_env(mysql_url=proxy.url_for(iem_db.url))) as runner:
            time.sleep(3)  # the start-up check's first statement waits for an answer that never comes
            runner.send_signal(signal.SIGTERM)
            started = time.monotonic()
            _, stderr = runner.communicate(timeout=30)
    finally:
        proxy.close()
    assert runner.returncode == 0, stderr
    assert time.monotonic() - started < 8, "SIGTERM waited on the silent database"
    assert "a database call that did not answer was abandoned" in stderr
    assert not list(samples.glob("*.done"))


def test_a_symbolic_link_named_csv_is_skipped_with_a_warning_and_left_alone(iem_db, samples, tmp_path):
    secret = tmp_path / "pmtabounce.env"
    secret.write_text("PMTABOUNCE_MYSQL_URL=mysql://iem:s3cret@db/iem\n")
    (samples / "bounces-2024-11-19-0000.csv").symlink_to(secret)
    result = run_process(samples, cli_env(iem_db), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["files"] == SAMPLE_SUMMARY["files"]
    assert "bounces-2024-11-19-0000.csv" in result.stderr and "symbolic link" in result.stderr
    assert (samples / "bounces-2024-11-19-0000.csv").is_symlink()
    assert not list(samples.glob("bounces-2024-11-19-0000.csv.*"))
    assert not any("s3cret" in path.read_text(errors="replace") for path in samples.iterdir()
                   if path.is_file() and not path.is_symlink())
