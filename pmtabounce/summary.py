"""Counting what a run did, and saying it in one table."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .worker.plan import Outcome


@dataclass
class Summary:
    files: int = 0
    records: int = 0
    rejected: int = 0
    failed: int = 0
    decisions: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)

    def add(self, outcomes: list[Outcome]) -> None:
        for o in outcomes:
            self.outcomes[o.outcome] += 1
            if o.outcome != "duplicate":
                self.decisions[o.decision] += 1

    def rows(self) -> list[tuple[str, int]]:
        o, d = self.outcomes, self.decisions
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
            ("duplicates", o["duplicate"]),
            ("rejected", self.rejected + self.failed),
        ]

    def as_dict(self) -> dict[str, int]:
        return {name.replace(" ", "_"): value for name, value in self.rows()}
