"""Which ledger records an `undo` selects (issue 12): its filters as one WHERE clause on our ledger."""

from __future__ import annotations

import fnmatch
import posixpath
from dataclasses import dataclass

from . import guard_store

CHANGED_IEM = ("applied", "disabled", "unsubscribed")  # the outcomes that wrote to IEM


@dataclass(frozen=True)
class UndoFilter:
    """Which ledger records an undo selects; every given part must hold, at least one must be given.

    Times are the records' times (`timeLogged` of a bounce or complaint, Unix seconds, inclusive); `files` are
    globs on the source file; `diag` is found in the diagnostic case-insensitively; domains and the address
    match case-insensitively.
    `categories` are PowerMTA bounce categories (`bounceCat`), so they select bounces only; `feedback_types` are
    ARF Feedback-Types (`empty`: none given, as in PMTABOUNCE_COMPLAINT_TYPES), so they select complaints only.
    `ledger_ids` name records exactly (the ledger's ids, as `guard release` prints the record that overtook a
    held one).
    """

    since: int | None = None
    until: int | None = None
    domains: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    diag: str | None = None
    files: tuple[str, ...] = ()
    email: str | None = None
    outcomes: tuple[str, ...] = ()
    feedback_types: tuple[str, ...] = ()
    ledger_ids: tuple[int, ...] = ()

    @property
    def empty(self) -> bool:
        return not any((self.since is not None, self.until is not None, self.domains, self.categories, self.diag,
                        self.files, self.email, self.outcomes, self.feedback_types, self.ledger_ids))

    def clause(self) -> tuple[str, list]:
        """A WHERE clause on the ledger and its parameters: the filter, not undone yet, and wrote to IEM."""
        parts: list[str] = ["undo_run IS NULL"]
        params: list = []
        wanted = [o for o in CHANGED_IEM if not self.outcomes or o in self.outcomes]
        parts.append(f"outcome IN ({', '.join(['%s'] * len(wanted))})" if wanted else "FALSE")
        params += wanted
        for sql, value in (("time_logged >= %s", self.since), ("time_logged <= %s", self.until),
                           ("email = %s", self.email), ("dsn_diag LIKE %s", _contains(self.diag))):
            if value is not None:
                parts.append(sql)
                params.append(value)
        for column, test, values in (
            ("email", "LIKE", [p for d in self.domains for p in guard_store.domain_patterns(d)]),
            ("source_file", "REGEXP", [_regexp_of_glob(g) for g in self.files]),
        ):
            if values:
                parts.append("(" + " OR ".join([f"{column} {test} %s"] * len(values)) + ")")
                params += values
        if self.categories:
            parts.append(f"category IN ({', '.join(['%s'] * len(self.categories))})")
            params += list(self.categories)
        if self.feedback_types:
            types = ["" if f == "empty" else f for f in self.feedback_types]
            parts.append(f"record_type = 'f' AND feedback_type IN ({', '.join(['%s'] * len(types))})")
            params += types
        if self.ledger_ids:
            parts.append(f"id IN ({', '.join(['%s'] * len(self.ledger_ids))})")
            params += list(self.ledger_ids)
        return " AND ".join(parts), params

    def describe(self) -> dict:
        """The filter as given, for the audit."""
        return {name: value for name, value in self.__dict__.items() if value not in (None, ())}


def _contains(text: str | None) -> str | None:
    return None if text is None else f"%{guard_store.escape_like(text)}%"


def _regexp_of_glob(glob: str) -> str:
    """A shell glob (`bounces-2020-12-14*.csv`, `*-000[45].csv`) as a pattern for MariaDB's REGEXP (PCRE).

    The ledger keeps a file's base name, so a path given is matched by its base name. fnmatch's
    translation is anchored at the end only (Python's re.match anchors the start), hence the `^`.
    """
    return "^" + fnmatch.translate(posixpath.basename(glob.strip()))
