"""A full `pmtabounce process` run over a generated world must give exactly the model's database."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from iem_model import BounceModel, IemState, differences, load_world, state_of

from pmtabounce.demo.world import World

OUTCOME_KEYS = {"applied": "applied", "disabled": "disabled", "not_found": "not_found",
                "already_bounced": "already_bounced", "unroutable": "unroutable", "duplicate": "duplicates"}
COMPLAINT_KEYS = {"unsubscribed": "unsubscribed", "not_found": "complaints_not_found",
                  "unroutable": "complaints_unroutable", "ignored": "complaints_ignored",
                  "duplicate": "complaint_duplicates"}


def process_command(db, directory: Path, **env: str) -> tuple[list[str], dict[str, str]]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PMTABOUNCE_")}
    clean.update(PMTABOUNCE_MYSQL_URL=db.url, PMTABOUNCE_TABLE_PREFIX=db.tables.prefix, **env)
    return [sys.executable, "-m", "pmtabounce", "process", "--json", str(directory)], clean


def run_process(db, directory: Path, **env: str) -> dict:
    command, environ = process_command(db, directory, **env)
    done = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def build(db, tmp_path: Path, world: World) -> tuple[IemState, BounceModel, Path]:
    """The world in the database and on disk, and the model's expected state after every file."""
    directory = tmp_path / "bounces"
    expected = load_world(db, world, directory)
    model = BounceModel(expected)
    model.apply_directory(directory)
    return expected, model, directory



def test_the_database_holds_what_the_world_describes(iem_db):
    world = World.generate(3, subscribers=300, records=200, files=2)
    connection = iem_db.connect()
    try:
        world.create_database(connection.cursor(), iem_db.tables)
        connection.commit()
    finally:
        connection.close()
    assert not differences(IemState.from_world(world), state_of(iem_db))


def test_process_gives_the_model_database_and_a_second_run_changes_nothing(iem_db, tmp_path):
    world = World.generate(11, subscribers=1500, records=4000, files=6)
    expected, model, directory = build(iem_db, tmp_path, world)
    assert_every_branch_is_exercised(IemState.from_world(world), expected, model)

    summary = run_process(iem_db, directory)

    assert {OUTCOME_KEYS[o]: summary[OUTCOME_KEYS[o]] for o in OUTCOME_KEYS} == {
        OUTCOME_KEYS[o]: model.outcomes[o] for o in OUTCOME_KEYS}
    assert {COMPLAINT_KEYS[o]: summary[COMPLAINT_KEYS[o]] for o in COMPLAINT_KEYS} == {
        COMPLAINT_KEYS[o]: model.complaint_outcomes[o] for o in COMPLAINT_KEYS}
    assert summary["rejected"] == model.rejected
    problems = differences(expected, state_of(iem_db), seen_counts=True)
    assert not problems, "\n".join(problems)

    for done in directory.glob("*.csv.done"):
        done.rename(done.with_suffix(""))
    again = run_process(iem_db, directory)

    assert again["duplicates"] == sum(model.outcomes.values())
    assert again["complaint_duplicates"] == sum(model.complaint_outcomes.values())
    assert again["applied"] == again["disabled"] == again["not_found"] == 0
    expected.seen = {where: 2 * count for where, count in expected.seen.items()}
    problems = differences(expected, state_of(iem_db), seen_counts=True)
    assert not problems, "\n".join(problems)


def test_small_batches_read_ahead_give_the_model_database(iem_db, tmp_path):
    """Batches of 7: each batch's lock-free reads were made on the reader thread while up to three batches
    before it were applied (worker/apply.py Ahead); the database is still exactly the model's."""
    world = World.generate(29, subscribers=400, records=1500, files=3, edge_files=False)
    expected, model, directory = build(iem_db, tmp_path, world)
    command, environ = process_command(iem_db, directory, PMTABOUNCE_BATCH_SIZE="7", PMTABOUNCE_LOG_LEVEL="DEBUG")
    done = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    last = [line for line in done.stderr.splitlines() if "batches read ahead so far" in line][-1]
    used, refused = map(int, re.search(r"so far: (\d+) used, (\d+) refused", last).groups())
    records = sum(model.outcomes.values()) + sum(model.complaint_outcomes.values())
    # a batch whose records the applier waited for (each file's first) reads for itself; most read ahead
    assert used >= records // 7 // 4 and refused == 0, last
    assert model.outcomes["duplicate"] + model.outcomes["already_bounced"] > 0  # repeats across batches
    problems = differences(expected, state_of(iem_db), seen_counts=True)
    assert not problems, "\n".join(problems)


def test_each_file_s_first_batch_is_read_while_the_file_before_is_applied(iem_db, tmp_path):
    """The reader of the next file starts once the file before is read through (inline.py _Readers): its
    first batch is parsed and read ahead while the last batches of that file are applied. Only the run's
    very first batch may read for itself; files are still applied one after the other, exactly."""
    world = World.generate(31, subscribers=300, records=1500, files=5, edge_files=False)
    expected, model, directory = build(iem_db, tmp_path, world)
    command, environ = process_command(iem_db, directory, PMTABOUNCE_BATCH_SIZE="60", PMTABOUNCE_LOG_LEVEL="DEBUG")
    done = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    batches = sum(1 for line in done.stderr.splitlines() if "pmtabounce.worker: batch of" in line)
    files = [line for line in done.stderr.splitlines() if "batches read ahead so far" in line]
    assert len(files) == len(list(directory.glob("*.done"))) >= 4
    used, refused = map(int, re.search(r"so far: (\d+) used, (\d+) refused", files[-1]).groups())
    # the run's first batch too, when the reader had parsed it before the applier came to wait for it
    assert refused == 0 and used in (batches - 1, batches), (batches, files)
    problems = differences(expected, state_of(iem_db), seen_counts=True)
    assert not problems, "\n".join(problems)


def test_process_killed_mid_file_then_run_again_gives_the_model_database(iem_db, tmp_path):
    world = World.generate(23, subscribers=800, records=2400, files=3, edge_files=False)
    expected, model, directory = build(iem_db, tmp_path, world)
    first_file = world.files[0].name
    in_first = sum(1 for where in expected.ledger if where[0] == first_file)
    in_second = sum(1 for where in expected.ledger if where[0] == world.files[1].name)
    target = in_first + int(in_second * random.Random(5).uniform(0.2, 0.7))  # somewhere inside the second file

    command, environ = process_command(iem_db, directory, PMTABOUNCE_BATCH_SIZE="10")
    with open(tmp_path / "killed-run.log", "wb") as log:
        child = subprocess.Popen(command, env=environ, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_ledger_rows(iem_db, target, child)
        assert child.poll() is None, "the run finished before it could be killed"
    finally:
        child.kill()  # SIGKILL: no chance to finish the batch or the file
        child.wait(timeout=30)
    committed = state_of(iem_db)
    assert (directory / world.files[1].name).exists(), "the killed file must not be marked done"
    assert any(where[0] == world.files[1].name for where in committed.ledger), "the kill was not mid-file"

    run_process(iem_db, directory)

    problems = differences(expected, state_of(iem_db))
    assert not problems, "\n".join(problems)
    assert not list(directory.glob("*.csv"))


def assert_every_branch_is_exercised(before: IemState, after: IemState, model: BounceModel) -> None:
    """The world must reach every branch of the spec, or the comparison proves less than it claims."""
    assert all(model.outcomes[o] > 0 for o in OUTCOME_KEYS), model.outcomes
    new_rows = after.bounces - before.bounces
    assert any(row[1] == 0 for row in new_rows), "no bounce row with statid 0"
    assert after.autoresponders != before.autoresponders and after.newsletters != before.newsletters
    disabled = [sid for sid, row in after.subscribers.items() if row.bounced != before.subscribers[sid].bounced]
    assert any(before.subscribers[sid].confirmed == "0" for sid in disabled), "no unconfirmed row disabled"
    soft = {e.subscriberid for e in after.ledger.values() if e.outcome == "disabled" and e.decision == "soft"}
    assert any(sum(1 for row in before.bounces if row[0] == sid) for sid in soft), "no threshold reached with history"
    assert all(model.complaint_outcomes[o] > 0 for o in COMPLAINT_KEYS), model.complaint_outcomes
    areas = Counter(rows[0][-1] for key, rows in after.unsubscribes.items() if rows != before.unsubscribes.get(key))
    assert areas["n"] and areas["a"] and areas["f"], f"not every unsubscribearea was written: {areas}"
    kept = [rows[0] for key, rows in after.unsubscribes.items() if rows[0][0] and before.unsubscribes.get(key)
            and before.unsubscribes[key][0][2]]
    assert kept and all(row[2] and row[3] for row in kept), "no pending request's time and IP kept"


def wait_for_ledger_rows(db, target: int, child: subprocess.Popen) -> None:
    """Poll the ledger until `target` records are committed (or the child has ended)."""
    connection = db.connect()
    try:
        with connection.cursor() as cursor:
            deadline = time.monotonic() + 240
            while child.poll() is None and time.monotonic() < deadline:
                cursor.execute(f"SELECT COUNT(*) FROM {db.tables.ledger}")
                connection.commit()
                if cursor.fetchone()[0] >= target:
                    return
                time.sleep(0.01)
    finally:
        connection.close()
