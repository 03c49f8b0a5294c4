"""What providers do to a feedback-loop report, for the generated accounting files' `f` rows.

Part of the world generator: accounting_rows.RecordMaker makes a complaint
row naming a subscriber; this decides in which shape a provider sends it.
"""

from __future__ import annotations

import re


def complaint_variant(row, roll: float):
    """`row` (an accounting_rows.Row, ARF `abuse` with rcpt and IEM's link) as a provider sends it, by `roll`
    in [0, 1): rcpt redacted, the link's C dropped or wrong, JMRP, not `abuse`, nothing usable, no link."""
    if roll < 0.2:
        return row._replace(rcpt="")
    if roll < 0.25:
        return row._replace(rcpt="", list_unsubscribe=re.sub(r"&C=[0-9a-f]*", "", row.list_unsubscribe))
    if roll < 0.28:
        wrong = re.sub(r"C=[0-9a-f]*", "C=" + "0" * 32, row.list_unsubscribe)
        return row._replace(rcpt="", list_unsubscribe=wrong)
    if roll < 0.43:
        mailto = "<mailto:unsubscribe@iem.example.com>, "
        unsubscribe = mailto + row.list_unsubscribe if row.list_unsubscribe else ""
        return row._replace(rcpt=f"<{row.rcpt.strip()}>", feedback_type="", format="jmrp", user_agent="",
                            reporting_mta="", list_unsubscribe=unsubscribe)
    if roll < 0.5:
        return row._replace(feedback_type=("not-spam", "fraud", "virus", "other")[int(roll * 1000) % 4])
    if roll < 0.54:
        return row._replace(rcpt="", list_unsubscribe="", user_agent="AOL SComp")
    if roll < 0.6:
        return row._replace(list_unsubscribe="")
    return row
