"""What the storm tests share: a world with a false-bounce storm, the model's expectations, the commands."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

from iem_model import BounceModel, IemState, LedgerEntry, load_world
from pmtabounce.common.record import BounceRecord
from worker_fleet import records_of

from pmtabounce.demo.storm import Storm
from pmtabounce.demo.world import World

STORM = Storm(size=150, usual=3)  # 50 x the usual rate, in one window
GUARD_MIN, GUARD_FACTOR = 100, 3  # the defaults
BAR = max(GUARD_MIN, GUARD_FACTOR * STORM.usual)  # issue 12: the count that trips the domain


def storm_world(seed: int, *, independent: bool = False) -> World:
    return World.generate(seed, subscribers=1200, records=4000, files=4, storm=STORM, independent=independent)


def load(db, world: World, directory: Path) -> tuple[IemState, list[BounceRecord]]:
    """The world in `db` and on disk; returns the state before any bounce and the records in file order."""
    return load_world(db, world, directory), records_of(directory)


def storm_records(world: World, records: list[BounceRecord]) -> list[BounceRecord]:
    """The storm window's records of the storm domain, in file order."""
    end = world.storm_start + STORM.window
    return [r for r in records
            if r.rcpt.lower().endswith("@" + STORM.domain) and world.storm_start <= r.time_logged < end]


def expected(before: IemState, records: list[BounceRecord], skipped: set[str] = frozenset(),
             skipped_outcome: str | None = None) -> IemState:
    """The model's database after `records` in order, those in `skipped` (fingerprints) left out; with
    `skipped_outcome` they are in the ledger with it (held, discarded) and changed nothing else."""
    state = copy.deepcopy(before)
    model = BounceModel(state)
    for record in records:
        if record.fingerprint not in skipped:
            model.apply(record)
        elif skipped_outcome:
            where = (record.source_file, record.source_line)
            state.ledger[where] = LedgerEntry(skipped_outcome, "hard", None, None, record.rcpt, record.statid,
                                              record.category, record.time_logged, record.dsn_status,
                                              record.dsn_diag)
            state.seen[where] = 1
    return state



def command(db, *args: str, **env: str) -> tuple[list[str], dict[str, str]]:
    """argv and environment of `pmtabounce ARGS` against `db`, with PMTABOUNCE_* only from `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PMTABOUNCE_")}
    clean.update(PMTABOUNCE_MYSQL_URL=db.url, PMTABOUNCE_TABLE_PREFIX=db.tables.prefix)
    clean.update({f"PMTABOUNCE_{k.upper()}": str(v) for k, v in env.items()})
    return [sys.executable, "-m", "pmtabounce", *args], clean


def pmtabounce(db, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    """Run `pmtabounce ARGS` against `db`; unless `check` is False it must exit 0."""
    argv, clean = command(db, *args, **env)
    done = subprocess.run(argv, env=clean, capture_output=True, text=True, timeout=600)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def json_of(done: subprocess.CompletedProcess) -> dict:
    return json.loads(done.stdout)


def held_fingerprints(db) -> set[str]:
    return {row[0] for row in db.query("SELECT fingerprint FROM {t.ledger} WHERE outcome = 'held'")}


def guard_rows(db) -> list[tuple]:
    return db.query("SELECT domain, tripped_at IS NOT NULL, trip_count, trip_threshold, held, trips "
                    "FROM {t.guard_domains} WHERE trips > 0")
