"""`pmtabounce undo` (issue 12): after a guard-off run through a storm, undo of the storm window gives
exactly the database of a run without those records, except rows changed since, which it reports."""

from __future__ import annotations

import subprocess
import time

import pytest
from iem_model import differences, state_of
from iem_seed import T0, Seed, bounce
from pmtabounce.common.guard import iso
from pmtabounce.common.policy import Policy
from pmtabounce.worker.apply import BatchApplier
from storm_world import STORM, command, expected, json_of, load, pmtabounce, storm_records, storm_world
from worker_fleet import Fleet, ledger_count, produce_once, wait_for, worker_env

SAME = ("records", "bounce_rows_removed", "subscribers_reenabled", "reenabled_per_list", "campaign_counters",
        "skipped")


def storm_run(db, tmp_path, seed: int):
    """A guard-off `process` through a storm world: (state before, records, the storm window's records, filter)."""
    world = storm_world(seed)
    before, records = load(db, world, tmp_path / "bounces")
    pmtabounce(db, "process", str(tmp_path / "bounces"), guard="off")
    window = ["--domain", STORM.domain.upper(), "--since", iso(world.storm_start),
              "--until", str(world.storm_start + STORM.window - 1)]
    return before, records, storm_records(world, records), window


def undone(db) -> dict[str, int]:
    return dict(db.query("SELECT fingerprint, undo_run FROM {t.ledger} WHERE undo_run IS NOT NULL"))


def test_undo_of_the_storm_window_gives_the_database_without_it_and_reports_what_changed_since(iem_db, tmp_path):
    before, records, storm, window = storm_run(iem_db, tmp_path, 41)
    full = expected(before, records)
    victim = full.ledger[(storm[0].source_file, storm[0].source_line)]
    assert victim.outcome == "disabled"
    # Re-activated by hand since, as IEM does it: undo must leave that row alone and say so.
    iem_db.query("UPDATE {t.subscribers} SET bounced = 0 WHERE subscriberid = %s", (victim.subscriberid,))
    iem_db.query("UPDATE {t.lists} SET bouncecount = bouncecount - 1, subscribecount = subscribecount + 1 "
                 "WHERE listid = %s", (victim.listid,))
    untouched = state_of(iem_db)

    dry = json_of(pmtabounce(iem_db, "undo", *window, "--dry-run", "--json"))

    assert not differences(untouched, state_of(iem_db), seen_counts=True), "a dry run changed something"
    assert dry["records"] == len(storm) == dry["bounce_rows_removed"]
    assert dry["subscribers_reenabled"] == len(storm) - 1
    assert [(s["email"], s["why"]) for s in dry["skipped"]] == [(storm[0].rcpt, "re-activated since")]

    done = json_of(pmtabounce(iem_db, "undo", *window, "--yes", "--json"))

    assert {k: done[k] for k in SAME} == {k: dry[k] for k in SAME}
    now = state_of(iem_db)
    problems = differences(expected(before, records, {r.fingerprint for r in storm}), now, ledger=False)
    assert not problems, "\n".join(problems)
    assert now.ledger == full.ledger  # undone records keep their evidence and outcome
    assert undone(iem_db) == {r.fingerprint: done["run"] for r in storm}
    audit = iem_db.query("SELECT id, action, operator, finished_at IS NOT NULL FROM {t.audit}")
    assert [(a[0], a[1], a[3]) for a in audit] == [(done["run"], "undo", 1)] and "@" in audit[0][2]

    again = json_of(pmtabounce(iem_db, "undo", *window, "--yes", "--json"))
    assert again["records"] == 0
    assert not differences(now, state_of(iem_db), seen_counts=True)


def test_undo_killed_mid_run_then_run_again_is_undo_once(iem_db, tmp_path):
    before, records, storm, window = storm_run(iem_db, tmp_path, 42)
    argv, env = command(iem_db, "undo", *window, "--yes", batch_size="2")
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(undone(iem_db)) < 30 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        child.kill()  # SIGKILL: mid-batch, no clean-up
        child.wait(timeout=30)
    assert 0 < len(undone(iem_db)) < len(storm), "the kill did not land mid-run"

    pmtabounce(iem_db, "undo", *window, "--yes")

    problems = differences(expected(before, records, {r.fingerprint for r in storm}), state_of(iem_db), ledger=False)
    assert not problems, "\n".join(problems)
    assert set(undone(iem_db)) == {r.fingerprint for r in storm} and len(set(undone(iem_db).values())) == 2


def test_undo_wants_a_filter_and_matches_nothing_else(iem_db, tmp_path):
    result = pmtabounce(iem_db, "undo", "--yes", check=False)
    assert result.returncode == 2 and "at least one filter" in result.stderr


@pytest.mark.parametrize("argv", [(), ("--yes",), ("--yes", "--json")])
def test_undo_with_nothing_matching_says_so_asks_nothing_and_audits_nothing(iem_db, argv):
    # Issue 16 item 12: no question (stdin is empty: a question would abort, exit 1), no audit row, exit 0.
    result = pmtabounce(iem_db, "undo", "--domain", "nowhere.example", *argv, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nothing matches" in (result.stdout if "--json" not in argv else result.stderr)
    assert "undo these?" not in result.stderr
    assert iem_db.query("SELECT COUNT(*) FROM {t.audit}") == [(0,)]


def test_an_undo_the_database_refuses_names_the_url_and_the_operator_grants(iem_db):
    # Issue 16 item 12: as the other commands do, the URL (no password) and what to apply.
    user = f"pmtt_{iem_db.name[-8:]}"
    iem_db.query(f"CREATE USER '{user}'@'%%' IDENTIFIED BY 'pw-not-shown'")
    try:
        iem_db.query(f"GRANT SELECT ON {iem_db.name}.* TO '{user}'@'%%'")
        url = f"mysql://{user}:pw-not-shown@127.0.0.1:3306/{iem_db.name}"
        iem_db.query("INSERT INTO {t.ledger} (fingerprint, record_type, time_logged, email, dsn_diag, decision, "
                     "outcome) VALUES ('f1', 'b', 1, 'a@nowhere.example', '', 'ignore', 'applied')")
        failed = pmtabounce(iem_db, "undo", "--domain", "nowhere.example", "--yes", check=False, mysql_url=url)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert f"mysql://{user}@127.0.0.1:3306/{iem_db.name}" in failed.stderr
        assert "deploy/mysql/grants-operator.sql" in failed.stderr and "pw-not-shown" not in failed.stderr
        assert "Traceback" not in failed.stderr
    finally:
        iem_db.query(f"DROP USER '{user}'@'%%'")


def test_undo_while_workers_apply_the_rest_gives_the_same_database(iem_db, vhost, tmp_path):
    world = storm_world(43, independent=True)
    before, records = load(iem_db, world, tmp_path / "bounces")
    storm = {r.fingerprint for r in storm_records(world, records)}
    distinct = len({r.fingerprint for r in records})
    window = ["--domain", STORM.domain, "--since", str(world.storm_start),
              "--until", str(world.storm_start + STORM.window - 1)]
    env = worker_env(iem_db.url, vhost.url, batch_size=5, guard="off")
    produce_once(env, tmp_path / "bounces", tmp_path / "producer.log")

    def storm_applied() -> bool:
        return storm <= {row[0] for row in iem_db.query("SELECT fingerprint FROM {t.ledger}")}

    with Fleet(env, tmp_path) as fleet:
        workers = [fleet.start() for _ in range(2)]
        wait_for(storm_applied, "the storm's records applied", 180)
        assert ledger_count(iem_db) < distinct, "the workers finished before undo could run beside them"
        done = json_of(pmtabounce(iem_db, "undo", *window, "--yes", "--json"))
        wait_for(lambda: ledger_count(iem_db) == distinct, "every record in the ledger", 180)
        assert [fleet.terminate(process) for process in workers] == [0, 0], fleet.log()

    assert done["records"] == len(storm) and done["skipped"] == []
    problems = differences(expected(before, records, storm), state_of(iem_db), ledger=False)
    assert not problems, "\n".join(problems)


def test_each_filter_selects_on_the_database_as_documented(iem_db):
    seed = Seed(iem_db)
    seed.lists(3)
    seed.newsletter(42)
    records = [
        bounce("hard", "a@gmail.example", file="bounces-2020-12-14-1000.csv", diag="smtp;550 5.1.1 does NOT exist"),
        bounce("hard", "b@Gmail.Example", file="bounces-2020-12-14-1010.csv", diag="smtp;550 100% gone", time=T0 + 5),
        bounce("soft", "c@yahoo.example", file="bounces-2020-12-15-1000.csv", diag="smtp;452 mailbox full",
               time=T0 + 10),
        bounce("policy-related", "d_x@yahoo.example", file="other_2020.csv", diag="blocked", time=T0 + 20),
    ]
    for record in records:
        seed.subscriber(record.rcpt.lower(), 3)
    applier = BatchApplier(iem_db.target, iem_db.tables, Policy())
    try:
        assert [o.outcome for o in applier.apply(records).outcomes] == ["disabled", "disabled", "applied", "applied"]
    finally:
        applier.close()

    def matched(*filters: str) -> int:
        return json_of(pmtabounce(iem_db, "undo", *filters, "--dry-run", "--json"))["records"]

    assert matched("--domain", "GMAIL.example") == 2
    assert matched("--domain", "gmail.example", "--domain", "yahoo.example") == 4
    assert matched("--diag", "does not exist") == 1
    assert matched("--diag", "100%") == 1  # % is a character here, not a wildcard
    assert matched("--file", "bounces-2020-12-14-*.csv") == 2
    assert matched("--file", "other_2020.csv") == 1
    assert matched("--file", "bounces-2020-12-1[45]-1000.csv") == 2  # a glob's [] class, as the shell has it
    assert matched("--file", "/var/log/pmta/bounces/bounces-2020-12-15-1000.csv") == 1  # the ledger keeps the name
    assert matched("--file", "other_2020") == 0 and matched("--file", "x_other_2020.csv") == 0  # whole name only
    nothing = pmtabounce(iem_db, "undo", "--category", "bad-mailbx", "--dry-run", "--json")
    assert "nothing matches {'categories': ('bad-mailbx',)}: no record that changed IEM" in nothing.stderr
    backwards = pmtabounce(iem_db, "undo", "--since", str(T0 + 10), "--until", str(T0 + 5), "--dry-run", check=False)
    assert backwards.returncode == 2 and "--since is later than --until" in backwards.stderr
    assert matched("--category", "bad-mailbox") == 2 and matched("--category", "POLICY-RELATED") == 1
    assert matched("--email", "B@GMAIL.EXAMPLE") == 1
    assert matched("--outcome", "disabled") == 2
    assert matched("--since", str(T0 + 5), "--until", str(T0 + 10)) == 2
    assert matched("--domain", "yahoo.example", "--outcome", "disabled") == 0
