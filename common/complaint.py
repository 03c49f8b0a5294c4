"""The complaint record: one PowerMTA `f` (feedback-loop) accounting row, as both sides see it.

The contract is the spec's iem-complaints.md. A complaint names its recipient
by `rcpt` (often redacted, then empty) or by IEM's per-recipient
List-Unsubscribe link, whose M, C, L and N/A parts `unsubscribe_link` reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import parse_qs, urlsplit

from .record import INT32_MAX, content_hash

COMPLAINT_TYPES = frozenset({"f"})
_URL = re.compile(r"<\s*(https?://[^>\s]+)\s*>|(https?://[^\s,<>]+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class UnsubscribeLink:
    """IEM's `unsubscribe.php?M=<subscriberid>&C=<confirmcode>&L=<listid>&N=<statid>` (A= for an autoresponder).

    `confirmcode` is None when the link has no C, else C exactly as sent ('' for `C=`);
    `listid` and `statid` 0 when absent; `area` is 'n' (N=), 'a' (A=) or '' (neither).
    """

    subscriberid: int
    confirmcode: str | None = None
    listid: int = 0
    statid: int = 0
    area: str = ""


@dataclass(frozen=True, slots=True)
class ComplaintRecord:
    """One complaint, with where it came from. `rcpt` is '' when the provider redacted it.

    `list_unsubscribe` is the raw header as logged (evidence, and the link's source);
    `fingerprint` identifies its content (the spec's "Exactly once" list of fields).
    """

    type: str
    time_logged: int
    rcpt: str
    feedback_type: str
    format: str
    user_agent: str
    reporting_mta: str
    list_ids: tuple[int, ...]
    statid: int
    list_unsubscribe: str
    source_file: str = ""
    source_line: int = 0
    fingerprint: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprint", complaint_fingerprint(self))

    @property
    def link(self) -> UnsubscribeLink | None:
        """The IEM link in List-Unsubscribe, or None when there is none."""
        return unsubscribe_link(self.list_unsubscribe)


def complaint_fingerprint(record: ComplaintRecord) -> str:
    """A hash of the complaint's content (not its file or line), JSON-encoded parts as for bounces.

    user_agent stays out: the spec's list of identifying fields does not name it.
    """
    return content_hash(
        record.type,
        str(record.time_logged),
        record.rcpt.lower(),
        record.feedback_type,
        record.format,
        record.reporting_mta,
        ",".join(map(str, record.list_ids)),
        str(record.statid),
        record.list_unsubscribe,
    )


def clean_rcpt(raw: str) -> str:
    """`<a@b>` or ` a@b ` -> `a@b` (ARF's Original-Rcpt-To keeps the angle brackets)."""
    text = raw.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    return text


@lru_cache(maxsize=4096)  # ComplaintRecord.link is read several times per complaint in a batch's walk
def unsubscribe_link(header: str) -> UnsubscribeLink | None:
    """The first http(s) URL of a List-Unsubscribe value that carries IEM's M parameter, or None.

    The header may also hold a `mailto:` (skipped). M must be a positive whole
    number; L, N and A count only when they are (IEM's own intval() reading).
    C is kept whole and untrimmed, and an empty `C=` is kept as '': iem-complaints.md
    step 1 wants the row's confirmcode to equal it exactly.
    """
    for match in _URL.finditer(header or ""):
        url = match.group(1) or match.group(2)
        query = {k.upper(): v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}
        subscriberid = _whole(query.get("M", ""))
        if not subscriberid:
            continue
        area, statid = "", 0
        for key, name in (("N", "n"), ("A", "a")):
            if _whole(query.get(key, "")):
                area, statid = name, _whole(query[key])
                break
        return UnsubscribeLink(subscriberid, query.get("C"), _whole(query.get("L", "")), statid, area)
    return None


def confirms(link: UnsubscribeLink, confirmcode: str) -> bool:
    """Whether a row whose confirmcode is `confirmcode` ('' for NULL) answers the link's C (iem-complaints.md step 1).

    No C: any row does. Otherwise exact equality, so `C=` matches only a row
    whose own confirmcode is empty (IEM builds the link from the row's own
    confirmcode, so such a row's genuine links carry `C=`).
    """
    return link.confirmcode is None or link.confirmcode == confirmcode


def _whole(text: str) -> int:
    text = text.strip()
    if text.isascii() and text.isdigit() and 0 < int(text) <= INT32_MAX:
        return int(text)
    return 0
