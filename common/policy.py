"""Which PowerMTA bounce categories disable a subscriber, and when; which complaints unsubscribe whom."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

Decision = Literal["hard", "soft", "ignore"]

DEFAULT_HARD = frozenset({"bad-mailbox", "inactive-mailbox", "bad-domain"})
DEFAULT_SOFT = frozenset({"quota-issues", "no-answer-from-host", "relaying-issues", "routing-errors"})
# pmta-accounting.md "PowerMTA bounce categories": what PowerMTA itself assigns.
POWERMTA_CATEGORIES = ("bad-mailbox", "bad-domain", "inactive-mailbox", "quota-issues", "no-answer-from-host",
                       "relaying-issues", "routing-errors", "bad-connection", "bad-configuration", "content-related",
                       "invalid-sender", "message-expired", "policy-related", "protocol-errors", "spam-related",
                       "virus-related", "other")
DEFAULT_SOFT_THRESHOLD = 5  # IEM hard-codes 5
# iem-complaints.md "Which complaints act": ARF abuse, and JMRP's empty Feedback-Type.
DEFAULT_COMPLAINT_TYPES = frozenset({"abuse", ""})
COMPLAINT_SCOPES = ("all", "campaign", "row")
EMPTY_TYPE = "empty"  # how the empty Feedback-Type is written in PMTABOUNCE_COMPLAINT_TYPES
NO_TYPE = "none"  # PMTABOUNCE_COMPLAINT_TYPES=none: no complaint unsubscribes, said on purpose


@dataclass(frozen=True)
class Policy:
    """The classification map and the soft-bounce threshold; the complaint types that act and their scope.

    `complaint_scope` (iem-complaints.md "Which rows are unsubscribed"): `all`
    active rows of the address, those on the `campaign`'s lists, or the one `row`.
    """

    hard: frozenset[str] = DEFAULT_HARD
    soft: frozenset[str] = DEFAULT_SOFT
    soft_threshold: int = DEFAULT_SOFT_THRESHOLD
    complaint_types: frozenset[str] = DEFAULT_COMPLAINT_TYPES
    complaint_scope: str = "all"

    def __post_init__(self) -> None:
        # classify() compares lower case: a map written `Bad-Mailbox` must still match.
        object.__setattr__(self, "hard", frozenset(c.strip().lower() for c in self.hard))
        object.__setattr__(self, "soft", frozenset(c.strip().lower() for c in self.soft))
        overlap = self.hard & self.soft
        if overlap:
            raise ValueError(f"categories both hard and soft: {', '.join(sorted(overlap))}")
        if self.soft_threshold < 1:
            raise ValueError("the soft-bounce threshold must be at least 1")
        object.__setattr__(self, "complaint_types", frozenset(c.strip().lower() for c in self.complaint_types))
        if self.complaint_scope not in COMPLAINT_SCOPES:
            raise ValueError(f"complaint scope {self.complaint_scope!r}: must be one of {', '.join(COMPLAINT_SCOPES)}")

    def complaint_acts(self, feedback_type: str) -> bool:
        """Whether a complaint of this Feedback-Type unsubscribes (else it is only recorded, `ignored`)."""
        return feedback_type.strip().lower() in self.complaint_types

    def classify(self, category: str) -> Decision:
        """hard, soft, or ignore for anything not listed (unknown and empty included)."""
        key = category.strip().lower()
        if key in self.hard:
            return "hard"
        if key in self.soft:
            return "soft"
        return "ignore"

    def disables(self, decision: Decision, bounce_rows: int) -> bool:
        """Step 5: hard at once; soft once the subscriber has `soft_threshold` bounce rows."""
        return decision == "hard" or (decision == "soft" and bounce_rows >= self.soft_threshold)


def bounce_rule(category: str) -> str:
    """IEM's bouncerule column: the category with `-` replaced by `_`."""
    return category.strip().lower().replace("-", "_")


def parse_categories(text: str) -> frozenset[str]:
    """`bad-mailbox, hardbnc` -> {'bad-mailbox', 'hardbnc'}."""
    return frozenset(part.strip().lower() for part in text.split(",") if part.strip())


def unknown_categories(policy: Policy) -> list[tuple[str, str | None]]:
    """(category, nearest PowerMTA category or None) for each hard/soft category PowerMTA does not assign.

    Not an error: operators may define their own (pmta-accounting.md), but a
    misspelt `bad-mialbox` would never match a record, so it deserves a warning.
    """
    unknown = sorted((policy.hard | policy.soft) - set(POWERMTA_CATEGORIES))
    return [(c, next(iter(difflib.get_close_matches(c, POWERMTA_CATEGORIES, n=1, cutoff=0.6)), None))
            for c in unknown]


def parse_complaint_types(text: str) -> frozenset[str]:
    """`abuse, empty` -> {'abuse', ''}: `empty` stands for the empty Feedback-Type (JMRP reports)."""
    return frozenset("" if part == EMPTY_TYPE else part for part in parse_categories(text))
