"""`pmtabounce explain ADDRESS`: everything we know about one address, for the support desk.

Every ledger record for it in bounce-time order (where it came from, what
PowerMTA said, what we decided and did, whether it was held or undone), and
its IEM rows now: per list active, bounced since or unsubscribed since, with
its bounce rows. The address matches case-insensitively, like IEM's lookup.
"""

from __future__ import annotations

from datetime import datetime, timezone

import click
import orjson
from rich.console import Console
from rich.table import Table

from ..cli import run_command
from ..common.config import Settings
from ..worker import guard_store, iem, ledger
from ..worker.db import Tables, connect
from ..worker.guard import domain_of


def gather(settings: Settings, address: str) -> dict:
    """{'address', 'records': [ledger rows], 'lists': [IEM rows with their bounce rows], 'guard': trip or None}."""
    tables = Tables(settings.table_prefix)
    connection = connect(settings.mysql)
    try:
        with connection.cursor() as cursor:
            records = ledger.history(cursor, tables, address)
            rows = iem.rows_of_address(cursor, tables, address)
            bounces = iem.bounce_rows_of(cursor, tables, [row[0] for row in rows])
            trips = guard_store.tripped(cursor, tables, domain_of(address)) if domain_of(address) else []
        connection.commit()
    finally:
        connection.close()
    return {
        "address": address.strip(),
        "records": [_record(entry) for entry in records],
        "lists": [_list_row(row, bounces) for row in rows],
        "guard": _trip(trips[0]) if trips else None,
    }


def _record(entry: dict) -> dict:
    entry = dict(entry)
    entry["time"] = iso(entry["time_logged"])
    entry["undone"] = entry["undo_run"] is not None
    entry["undone_at"] = iso(entry["undone_at"])
    entry["held"] = entry["outcome"] == "held"
    return entry


def _list_row(row: tuple, bounces: list[tuple]) -> dict:
    subscriberid, listid, bounced, unsubscribed, confirmed = row
    if unsubscribed:
        state = f"unsubscribed since {iso(unsubscribed)}"
    elif bounced:
        state = f"bounced since {iso(bounced)}"
    else:
        state = "active"
    return {
        "subscriberid": subscriberid, "listid": listid, "state": state, "confirmed": confirmed == "1",
        "bounced": bounced or 0, "unsubscribed": unsubscribed or 0,
        "bounce_rows": [{"bounceid": b[0], "statid": b[2], "listid": b[3], "time": iso(b[4]), "type": b[5],
                         "rule": b[6]} for b in bounces if b[1] == subscriberid],
    }


def _trip(trip: guard_store.TripRow) -> dict:
    return {"domain": trip.domain, "tripped_at": iso(trip.tripped_at), "tripped_by": trip.tripped_by,
            "held": trip.held}


def iso(moment: float | None) -> str | None:
    """Unix seconds as ISO 8601 UTC (None stays None)."""
    if not moment:
        return None
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def render(report: dict, console: Console) -> None:
    """Two tables: the ledger's records, then the IEM rows with their bounce rows."""
    records = Table(title=f"{report['address']}: ledger records")
    for column in ("time", "source", "type", "category", "DSN", "decision", "outcome", "subscriber/list", "note"):
        records.add_column(column)
    for r in report["records"]:
        note = f"undone by run {r['undo_run']} ({r['undone_by']}, {r['undone_at']})" if r["undone"] else ""
        note = note or ("held by the domain guard" if r["held"] else "")
        where = f"{r['subscriberid']}/{r['listid']}" if r["subscriberid"] else "-"
        records.add_row(r["time"], f"{r['source_file']}:{r['source_line']}", r["record_type"], r["category"],
                        f"{r['dsn_status']}\n{r['dsn_diag']}", r["decision"], r["outcome"], where, note)
    console.print(records if report["records"] else "no ledger records for this address")
    lists = Table(title=f"{report['address']}: IEM now")
    for column in ("list", "subscriber", "state", "bounce rows"):
        lists.add_column(column)
    for row in report["lists"]:
        rows = "\n".join(f"{b['time']} {b['type']} {b['rule']} (statid {b['statid']})" for b in row["bounce_rows"])
        lists.add_row(str(row["listid"]), str(row["subscriberid"]), row["state"], rows or "-")
    console.print(lists if report["lists"] else "no subscriber rows for this address in IEM")
    if report["guard"]:
        g = report["guard"]
        console.print(f"the domain guard holds {g['domain']}'s hard bounces since {g['tripped_at']} "
                      f"({g['held']} held; see `pmtabounce guard status`)")


@click.command()
@click.argument("address")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@run_command
def explain(settings: Settings, address: str, as_json: bool) -> None:
    """Everything we know about ADDRESS: its ledger records and its IEM rows now."""
    report = gather(settings, address)
    if as_json:
        click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        render(report, Console())
