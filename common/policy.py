"""Which PowerMTA bounce categories disable a subscriber, and when."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Decision = Literal["hard", "soft", "ignore"]

DEFAULT_HARD = frozenset({"bad-mailbox", "inactive-mailbox", "bad-domain"})
DEFAULT_SOFT = frozenset({"quota-issues", "no-answer-from-host", "relaying-issues", "routing-errors"})
DEFAULT_SOFT_THRESHOLD = 5  # IEM hard-codes 5


@dataclass(frozen=True)
class Policy:
    """The classification map and the soft-bounce threshold."""

    hard: frozenset[str] = DEFAULT_HARD
    soft: frozenset[str] = DEFAULT_SOFT
    soft_threshold: int = DEFAULT_SOFT_THRESHOLD

    def __post_init__(self) -> None:
        # classify() compares lower case: a map written `Bad-Mailbox` must still match.
        object.__setattr__(self, "hard", frozenset(c.strip().lower() for c in self.hard))
        object.__setattr__(self, "soft", frozenset(c.strip().lower() for c in self.soft))
        overlap = self.hard & self.soft
        if overlap:
            raise ValueError(f"categories both hard and soft: {', '.join(sorted(overlap))}")
        if self.soft_threshold < 1:
            raise ValueError("the soft-bounce threshold must be at least 1")

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
