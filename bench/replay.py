"""The limit of a variant: what MariaDB alone takes for the same statements, without our Python.

    python bench/replay.py record FILE -- process DIR   (run by the bench as a child)

`record` runs a pmtabounce command in this process with every statement sent
to MySQL (queries, COMMIT, ROLLBACK: PyMySQL's COM_QUERY) appended to FILE as
it goes. `replay` sends FILE to a database in the same starting state through
MariaDB's own command-line client (C, one connection, one statement at a
time, as we send them): the time it takes is the database's share, round trips
included, with no Python on the client side.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from pmtabounce.common.config import parse_mysql_url


def record(path: Path, argv: list[str]) -> int:
    """Run `pmtabounce argv` here, every COM_QUERY written to `path`, ';'-terminated.

    Each connection's statements are kept apart: the first connection's (the one that applies the batches)
    in order, after those of any other (`process`'s read-ahead: reads only, each ending in ROLLBACK), so
    that one session replaying the file one statement at a time does all of the run's database work and
    ends with the same tables."""
    import pymysql.connections
    from pymysql.constants import COMMAND

    main = open(path, "wb")  # noqa: SIM115 - open for the command's whole life
    others_path = path.with_name(path.name + ".others")
    others = open(others_path, "wb")  # noqa: SIM115
    first: list[int] = []
    original = pymysql.connections.Connection._execute_command

    def execute_command(self, command, sql):
        if command == COMMAND.COM_QUERY:
            first[:] = first or [id(self)]
            out = main if id(self) == first[0] else others
            out.write((sql.encode("utf-8", "surrogateescape") if isinstance(sql, str) else sql) + b";\n")
        return original(self, command, sql)

    pymysql.connections.Connection._execute_command = execute_command
    from pmtabounce.cli import main as pmtabounce

    try:
        pmtabounce(argv, prog_name="pmtabounce")  # exits with the command's status
    finally:
        main.close()
        others.close()
        path.write_bytes(others_path.read_bytes() + path.read_bytes())
        others_path.unlink()
    return 0


def replay(path: Path, url: str) -> tuple[float, dict[str, int]]:
    """Seconds the `mariadb` client takes to send every statement of `path` to the database of `url`, and the
    session's handler counts afterwards (SHOW SESSION STATUS: Handler_read_key is an index lookup,
    Handler_read_next a step along an index, Handler_write a row inserted...)."""
    target = parse_mysql_url(url)
    client = ["mariadb", "--binary-mode", "--batch", "--silent", f"--host={target.host}", f"--port={target.port}",
              f"--user={target.user}", target.database]
    env = {"MYSQL_PWD": target.password} if target.password else {}
    with open(path, "ab") as statements:
        statements.write(b"SELECT '--handlers--';\nSHOW SESSION STATUS LIKE 'Handler%';\n")
    with open(path, "rb") as statements:
        started = time.perf_counter()
        done = subprocess.run(client, stdin=statements, capture_output=True, env={"PATH": "/usr/bin:/bin", **env})
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"replaying {path} failed: {done.stderr.decode(errors='replace').strip()}")
    handlers = done.stdout.decode(errors="replace").rsplit("--handlers--", 1)[1]
    counts = {name: int(value) for name, value in (line.split("\t") for line in handlers.split("\n") if "\t" in line)}
    return seconds, counts


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[1] != "record" or sys.argv[3] != "--":
        sys.exit(__doc__)
    sys.exit(record(Path(sys.argv[2]), sys.argv[4:]))
