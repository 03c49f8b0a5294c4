"""`pmtabounce explain ADDRESS`: everything we know about one address, for the support desk.

Every ledger record for it in bounce-time order (where it came from, what
PowerMTA said, what we decided and did, whether it was held and which
release or discard ended the hold, whether it was undone), and
its IEM rows now: per list active, bounced since or unsubscribed since, with
its bounce rows. The address matches case-insensitively, like IEM's lookup.
"""

from __future__ import annotations

from datetime import datetime, timezone

import click
import orjson

from ..common.config import Settings
from ..common.guard import domain_of
from ..runner import run_command
from ..store import guard_store, iem, ledger, outbox
from ..store.db import Cursor
from ..store.undo import unsubscribed_rows
from . import in_transaction


def gather(settings: Settings, address: str) -> dict:
    """{'address', 'records': [ledger rows], 'lists': [IEM rows with their bounce rows], 'guard': trip or None}."""
    def work(cursor: Cursor, tables):
        rows = iem.rows_of_address(cursor, tables, address)
        trips = guard_store.tripped(cursor, tables, domain_of(address)) if domain_of(address) else []
        history = ledger.history(cursor, tables, address)
        return (history, rows, iem.bounce_rows_of(cursor, tables, [row[0] for row in rows]), trips,
                outbox.of_records(cursor, tables, [entry["fingerprint"] for entry in history]))

    records, rows, bounces, trips, events = in_transaction(settings, work)
    return {
        "address": address.strip(),
        "records": [_record(entry, events.get(entry["fingerprint"], [])) for entry in records],
        "lists": [_list_row(row, bounces) for row in rows],
        "guard": _trip(trips[0]) if trips else None,
    }


def _record(entry: dict, events: list[dict]) -> dict:
    entry = dict(entry)
    entry["events"] = [_event(e) for e in events]
    entry["time"] = iso(entry["time_logged"])
    entry["undone"] = entry["undo_run"] is not None
    entry["undone_at"] = iso(entry["undone_at"])
    entry["held"] = entry["outcome"] == "held"
    entry["was_held"] = entry["held"] or entry["guard_run"] is not None
    entry["hold_ended_at"] = iso(entry["hold_ended_at"])
    effects = entry.pop("effects", None)
    if entry["record_type"] == "f":  # a complaint: its ARF fields and the rows it unsubscribed
        entry["complaint"] = {
            "feedback_type": entry["feedback_type"], "format": entry["feedback_format"],
            "user_agent": entry["user_agent"], "reporting_mta": entry["reporting_mta"],
            "unsubscribed": [{"subscriberid": r.subscriberid, "listid": r.listid, "time": iso(r.unsubscribetime),
                              "statid": r.statid, "area": r.area, "campaign_counted": r.campaign_counted,
                              "kept_request_time": iso(r.kept_request_time), "kept_request_ip": r.kept_request_ip}
                             for r in unsubscribed_rows(effects)],
        }
    for name in ("feedback_type", "feedback_format", "user_agent", "reporting_mta"):
        del entry[name]
    return entry


def _event(e: dict) -> dict:
    """One outbox row of a record (docs/events.md): a stream event or a webhook call with its tries."""
    return {"target": e["target"], "event": e["event"], "event_id": e["event_id"], "url": e["url"],
            "state": e["state"], "attempts": e["attempts"], "sent_at": iso(e["sent_at"]),
            "tries": [{"at": iso(t["at"]), "status": t["status"], "answer": t["answer"],
                       "seconds": round(t["seconds"], 3)} for t in e["tries"]]}


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


def _details(r: dict) -> list[str]:
    """The lines under a record: what PowerMTA said (a bounce's DSN, a complaint's report and what it unsubscribed)."""
    if "complaint" not in r:
        return [f"      {r['dsn_status']}: {' '.join(r['dsn_diag'].split())}"]
    c = r["complaint"]
    lines = [f"      complaint: feedback type {c['feedback_type'] or '(none given)'}, format {c['format'] or '-'}, "
             f"user agent {c['user_agent'] or '-'}, reporting MTA {c['reporting_mta'] or '-'}"]
    lines += [f"      unsubscribed subscriber {u['subscriberid']} on list {u['listid']} at {u['time']} "
              f"(statid {u['statid']}, area {u['area']}"
              + (f", kept request {u['kept_request_time']} from {u['kept_request_ip'] or '-'}"
                 if u["kept_request_time"] else "") + ")" for u in c["unsubscribed"]]
    return lines


def _trip(trip: guard_store.TripRow) -> dict:
    return {"domain": trip.domain, "tripped_at": iso(trip.tripped_at), "tripped_by": trip.tripped_by,
            "held": trip.held}


def iso(moment: float | None) -> str | None:
    """Unix seconds as ISO 8601 UTC (None stays None)."""
    if not moment:
        return None
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_NOT_WRITTEN = {
    "held": "nothing written to IEM: held by the domain guard until `pmtabounce guard release` applies it "
            "or `guard discard` drops it",
    "discarded": "nothing written to IEM: discarded by `pmtabounce guard discard` (kept as evidence)",
}


def render(report: dict) -> str:
    """The report for people: one block per ledger record, then one per IEM row (no table: diagnostics are long)."""
    lines = [f"{report['address']}: {len(report['records'])} ledger records"]
    for r in report["records"]:
        where = (f"subscriber {r['subscriberid']} on list {r['listid']}" if r["subscriberid"]
                 else _NOT_WRITTEN.get(r["outcome"], "no subscriber"))
        kind = r["category"] or ("complaint" if "complaint" in r else "(no category)")
        lines.append(f"  {r['time']}  {r['source_file']}:{r['source_line']}  {r['record_type']}  "
                     f"{kind}: {r['decision']} -> {r['outcome']}, {where}")
        lines += _details(r)
        if r["guard_run"] is not None:
            ended = "released" if r["hold_ended_action"] == "guard release" else "discarded"
            lines.append(f"      held by the domain guard; {ended} by run {r['guard_run']} "
                         f"(`{r['hold_ended_action']}` by {r['hold_ended_by']}, {r['hold_ended_at']})")
        if r["undone"]:
            lines.append(f"      undone by run {r['undo_run']} ({r['undone_by']}, {r['undone_at']})")
        if r["seen_count"] > 1:
            lines.append(f"      met {r['seen_count']} times (the later ones were duplicates)")
        lines += _event_lines(r["events"])
    lines.append(f"IEM now: {len(report['lists'])} subscriber rows")
    for row in report["lists"]:
        lines.append(f"  list {row['listid']}: subscriber {row['subscriberid']}, {row['state']}")
        lines += [f"      bounce row {b['time']} {b['type']} {b['rule']} (statid {b['statid']})"
                  for b in row["bounce_rows"]]
    if report["guard"]:
        g = report["guard"]
        lines.append(f"the domain guard holds {g['domain']}'s hard bounces since {g['tripped_at']} "
                     f"({g['held']} held; see `pmtabounce guard status`)")
    return "\n".join(lines)


def _event_lines(events: list[dict]) -> list[str]:
    """What a record caused downstream: each stream event and webhook call, and each call's tries."""
    lines = []
    for e in events:
        to = "decision stream" if e["target"] == "stream" else f"webhook {e['url']}"
        lines.append(f"      event {e['event']} -> {to}: {e['state']}"
                     + (f" {e['sent_at']}" if e["sent_at"] else "") + f" after {e['attempts']} tries")
        lines += [f"        try at {t['at']}: " + (f"HTTP {t['status']}" if t["status"] is not None else "no answer")
                  + (f" {t['answer']!r}" if t["answer"] else "") + f" in {t['seconds']} s" for t in e["tries"]]
    return lines


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
        click.echo(render(report))
