"""Counting what a run did, and saying it in one table."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import orjson
from rich.console import Console
from rich.table import Table

from .common.complaint import ComplaintRecord
from .worker.plan import Outcome


@dataclass
class Summary:
    """What `process` (or a test driving inline mode) did: files, records, bounces by decision and outcome,
    complaints by outcome, by count."""

    files: int = 0
    records: int = 0
    rejected: int = 0
    failed: int = 0
    decisions: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)
    complaints: Counter = field(default_factory=Counter)  # complaint outcome -> records
    stopped: bool = False  # a signal ended the run before every file was done

    def add(self, outcomes: list[Outcome]) -> None:
        for o in outcomes:
            if isinstance(o.record, ComplaintRecord):
                self.complaints[o.outcome] += 1
                continue
            self.outcomes[o.outcome] += 1
            if o.outcome != "duplicate":
                self.decisions[o.decision] += 1

    def rows(self) -> list[tuple[str, int]]:
        o, d, c = self.outcomes, self.decisions, self.complaints
        return [
            ("files", self.files),
            ("records", self.records),
            ("hard", d["hard"]),
            ("soft", d["soft"]),
            ("ignored", d["ignore"]),
            ("applied", o["applied"]),
            ("disabled", o["disabled"]),
            ("not found", o["not_found"]),
            ("already bounced", o["already_bounced"]),
            ("unroutable", o["unroutable"]),
            ("held", o["held"]),
            ("duplicates", o["duplicate"]),
            ("complaints", sum(c.values())),
            ("unsubscribed", c["unsubscribed"]),
            ("complaints not found", c["not_found"]),
            ("complaints unroutable", c["unroutable"]),
            ("complaints ignored", c["ignored"]),
            ("complaint duplicates", c["duplicate"]),
            ("rejected", self.rejected + self.failed),
        ]

    def as_dict(self) -> dict[str, int]:
        return {name.replace(" ", "_"): value for name, value in self.rows()}


def print_summary(summary: Summary, *, as_json: bool = False, title: str = "pmtabounce process") -> None:
    """On stdout: a rich table for people, or with `as_json` one JSON object (names with _ for spaces)."""
    if as_json:
        print(orjson.dumps(summary.as_dict(), option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(title=title)
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, value in summary.rows():
        table.add_row(name, str(value))
    Console().print(table)
