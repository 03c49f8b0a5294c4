"""IEM's tables as a fixture: for tests, the demo and the benchmark, never a real install."""

from __future__ import annotations

from importlib import resources

from ..store.db import Tables


def iem_schema(tables: Tables) -> list[str]:
    """The CREATE TABLE statements of the fixture, under the configured prefix."""
    text = resources.files(__package__).joinpath("iem_fixture.sql").read_text()
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    return [
        statement.strip().replace("TABLE IF NOT EXISTS email_", f"TABLE IF NOT EXISTS {tables.prefix}")
        for statement in body.split(";")
        if statement.strip()
    ]


def create_iem_tables(connection, tables: Tables) -> None:
    with connection.cursor() as cursor:
        for statement in iem_schema(tables):
            cursor.execute(statement)
    connection.commit()
