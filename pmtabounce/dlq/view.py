"""How dead letters look: rich tables for people, JSON for scripts. Nothing here talks to RabbitMQ."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone

import orjson
from rich.console import Console
from rich.markup import escape
from rich.progress import MofNCompleteColumn, Progress
from rich.table import Table

from .export_file import amqp_to_json
from .message import DeadLetterMessage
from .replay import ReplayPlan

ID_WIDTH = 16
SHOW_ROWS = 50  # rows a replay or purge prints of what it works on; the counts cover the rest
PROGRESS_FROM = 20  # messages: below this a run is over before a bar could say anything


def console() -> Console:
    """stdout; when piped, wide enough that a row stays on one line for grep."""
    out = Console()
    return out if out.is_terminal else Console(width=200)


def when_text(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "-"
    return f"{moment:%Y-%m-%d %H:%M:%S} ({age_text(now - moment)} ago)"


def age_text(delta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def letters_table(letters: Sequence[DeadLetterMessage], title: str, rows: int | None = None,
                  now: datetime | None = None) -> Table:
    """One row per letter (the first `rows` of them, the rest counted in the caption)."""
    now = now or datetime.now(timezone.utc)
    hidden = max(0, len(letters) - rows) if rows is not None else 0
    table = Table(title=title, title_justify="left", caption=f"... and {hidden} more" if hidden else None)
    for name, options in (
        ("id", {"no_wrap": True}), ("when (UTC)", {"no_wrap": True}), ("why", {"no_wrap": True}),
        ("reason", {"overflow": "fold", "max_width": 70}), ("source", {}), ("recipient", {}),
        ("category", {}), ("replays", {"justify": "right"}),
    ):
        table.add_column(name, **options)
    for letter in letters[: len(letters) - hidden]:
        table.add_row(
            letter.id[:ID_WIDTH], when_text(letter.died_at, now), letter.reason, escape(letter.reason_text),
            escape(letter.source or "-"), escape(letter.rcpt or "-"), escape(letter.category or "-"),
            str(letter.replays),
        )
    return table


def counts_table(letters: Sequence[DeadLetterMessage]) -> Table:
    table = Table(title="per reason", title_justify="left")
    table.add_column("why")
    table.add_column("messages", justify="right")
    for reason, count in reason_counts(letters).most_common():
        table.add_row(reason, str(count))
    return table


def print_plan(plan: ReplayPlan, title: str, limit: int) -> None:
    """What a replay will do (or would, with --dry-run), and what the loop guard holds back."""
    out = console()
    out.print(letters_table(plan.replay, f"{title}: {len(plan.replay)} messages", rows=SHOW_ROWS))
    if plan.refused:
        out.print(letters_table(
            plan.refused,
            f"refused by the loop guard: {len(plan.refused)} messages replayed {limit} times already "
            "(--force replays them anyway)",
            rows=SHOW_ROWS,
        ))


def reason_counts(letters: Sequence[DeadLetterMessage]) -> Counter:
    return Counter(letter.reason for letter in letters)


def summary(letter: DeadLetterMessage) -> dict:
    """One dead letter as a JSON-ready dict (for `list --json`)."""
    return {
        "id": letter.id,
        "when": letter.died_at.isoformat() if letter.died_at else None,
        "why": letter.reason,
        "reason": letter.reason_text,
        "file": letter.source_file or None,
        "line": letter.source_line,
        "rcpt": letter.rcpt or None,
        "category": letter.category or None,
        "replays": letter.replays,
        "deaths": [
            {"by": d.by, "why": d.reason, "reason": d.text, "at": d.at.isoformat() if d.at else None,
             "where": d.where, "count": d.count}
            for d in letter.deaths
        ],
    }


def listing_json(queue: str, depth: int, seen: int, chosen: Sequence[DeadLetterMessage],
                 shown: Sequence[DeadLetterMessage]) -> str:
    return orjson.dumps(
        {
            "queue": queue,
            "in_queue": depth,
            "seen": seen,
            "matching": len(chosen),
            "counts": dict(reason_counts(chosen).most_common()),
            "messages": [summary(letter) for letter in shown],
        },
        option=orjson.OPT_INDENT_2,
    ).decode()


def print_letter(out: Console, letter: DeadLetterMessage, now: datetime | None = None) -> None:
    """`dlq show`: everything about one message."""
    now = now or datetime.now(timezone.utc)
    out.print(f"[bold]{escape(letter.id)}[/bold]  {letter.reason}: {escape(letter.reason_text)}")
    out.print(f"source {escape(letter.source or '-')}, recipient {escape(letter.rcpt or '-')}, "
              f"category {escape(letter.category or '-')}, replayed {letter.replays} times, "
              f"handed back by browsing {letter.returned} times")
    out.print(_deaths_table(letter, now))
    out.print(_pairs_table("properties", {k: v for k, v in letter.properties.items() if k != "headers"}))
    out.print(_pairs_table("headers", letter.headers))
    out.print("[bold]body[/bold]")
    out.print(body_text(letter.body), markup=False, highlight=False, soft_wrap=True)


def _deaths_table(letter: DeadLetterMessage, now: datetime) -> Table:
    table = Table(title="death history (newest first)", title_justify="left")
    for name in ("when (UTC)", "by", "why", "where", "count", "reason"):
        table.add_column(name, overflow="fold")
    for d in letter.deaths:
        table.add_row(when_text(d.at, now), d.by, d.reason, escape(d.where), str(d.count), escape(d.text))
    for entry in letter.history:
        dead_at = entry.get("dead-at")
        when = when_text(datetime.fromtimestamp(dead_at, timezone.utc), now) if isinstance(dead_at, int) else "-"
        table.add_row(when, f"replayed by {escape(str(entry.get('replayed-by', '?')))}",
                      escape(str(entry.get("error", "?"))), escape(str(entry.get("worker", ""))), "1",
                      escape(str(entry.get("reason", ""))))
    return table


def _pairs_table(title: str, values: dict) -> Table:
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("name", no_wrap=True)
    table.add_column("value", overflow="fold")
    for name, value in values.items():
        table.add_row(escape(str(name)), escape(orjson.dumps(amqp_to_json(value)).decode()))
    return table


def body_text(body: bytes) -> str:
    """JSON pretty-printed; other UTF-8 text as it is; anything else as a hex dump."""
    try:
        return orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        pass
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return f"({len(body)} bytes, not UTF-8)\n" + body.hex("\n", 32)


@contextmanager
def progress_bar(total: int, description: str) -> Iterator[Callable[[], None]]:
    """A rich progress bar on stderr for long runs at a terminal; elsewhere, nothing."""
    err = Console(stderr=True)
    if not err.is_terminal or total < PROGRESS_FROM:
        yield lambda: None
        return
    with Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=err) as progress:
        task = progress.add_task(description, total=total)
        yield lambda: progress.advance(task)
