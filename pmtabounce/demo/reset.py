"""What `pmtabounce demo` may wipe: only a database and a directory it made itself, each marked when made.

`--database X` drops and makes X anew and `--directory D` empties D's bounce
and log folders: pointed at a real IEM database or a real PowerMTA folder by
mistake, that would lose a customer's data. So the demo marks what it makes (a
table in the database, a file in the directory) and refuses anything unmarked.
"""

from __future__ import annotations

from pathlib import Path

from ..common.config import MySQLTarget
from ..common.errors import FatalError
from ..store.fixture import reset_marked_database

MARK_TABLE = "pmtabounce_demo_made_this"
MARK_FILE = ".pmtabounce-demo"


def reset_database(target: MySQLTarget) -> None:
    """DROP and CREATE the demo database and mark it; FatalError, dropping nothing, if it exists unmarked
    (store/fixture.py holds the statements)."""
    reset_marked_database(target, MARK_TABLE)


def claim_directory(directory: Path) -> None:
    """Make `directory` the demo's (marked), or accept it if it is already; FatalError if it holds anything else."""
    mark = directory / MARK_FILE
    if directory.is_dir() and not mark.exists() and any(directory.iterdir()):
        raise FatalError(
            f"{directory} is not empty and was not made by `pmtabounce demo` (no {MARK_FILE} file in it); the demo "
            "empties only folders it made: choose another --directory, or remove this one yourself if it is an "
            "old demo folder")
    directory.mkdir(parents=True, exist_ok=True)
    mark.touch()
