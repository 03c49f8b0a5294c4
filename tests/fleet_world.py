"""A generated world run twice, inline and through the fleet, and the two databases compared (every IEM
table a bounce touches, and the ledger): what the fleet and cluster tests judge a run by."""

from __future__ import annotations

from pathlib import Path

from iem_model import IemState, differences
from worker_fleet import records_of

from pmtabounce.demo.world import World
from pmtabounce.inline import process_directory


def build(world: World, fleet_db, inline_db, tmp_path: Path) -> tuple[Path, int]:
    """The world in both databases and its files in two directories; the inline copy is then processed.

    Returns the fleet's directory and how many distinct records it holds.
    """
    for db in (fleet_db, inline_db):
        connection = db.connect()
        world.create_database(connection.cursor(), db.tables)
        connection.commit()
        connection.close()
    fleet_dir, inline_dir = tmp_path / "fleet-bounces", tmp_path / "inline-bounces"
    world.write_files(fleet_dir)
    world.write_files(inline_dir)
    process_directory(inline_db.settings(), inline_dir)
    return fleet_dir, len({record.fingerprint for record in records_of(fleet_dir)})


def assert_same_database(fleet_db, inline_db) -> None:
    states = []
    for db in (inline_db, fleet_db):
        connection = db.connect()
        states.append(IemState.from_database(connection, db.tables))
        connection.close()
    problems = differences(*states)
    assert not problems, "the fleet's database differs from the inline one:\n" + "\n".join(problems)
