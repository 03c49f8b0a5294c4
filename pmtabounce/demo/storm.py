"""A false-bounce storm for generated worlds: one domain's hard bounces jump in one window of bounce time.

As on 14 December 2020 at Gmail: `550 5.1.1 ... does not exist` for good
addresses, categorised bad-mailbox, many times the domain's usual rate, among
ordinary traffic for every other domain. Part of the world generator
(pmtabounce/demo/world.py); used to show the domain guard, `undo` and their tests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .accounting_rows import Row

STORM_DIAG = ("smtp;550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n"
              "550 5.1.1 double-checking the recipient's email address for typos.")
STORM_STATUS = "5.1.1 (bad destination mailbox address)"


@dataclass(frozen=True)
class Storm:
    """`size` hard bounces of `domain` in one `window` of bounce time, `usual` in each earlier window.

    Every address of the domain bounces once and only in these records, so
    what they do never depends on the order they are applied in.
    """

    domain: str = "storm.example"
    size: int = 150
    usual: int = 3
    window: int = 600


def add_storm(rng: random.Random, storm: Storm, people, by_list: dict, rows: list[Row]) -> tuple[list[Row], int]:
    """`rows` with the storm's records put among them; its addresses join `people` (a world._People).

    Each storm record takes the time of the row it follows, so the records sit in the windows the
    traffic around them is in. Returns (rows, the storm window's start in Unix seconds).
    """
    time_at = {i: row.time for i, row in enumerate(rows) if isinstance(row.time, int)}  # not the malformed ones
    times = list(time_at.values())
    start = times[len(times) * 2 // 3]
    start -= start % storm.window
    if start < times[0] or not any(start + storm.window <= t for t in times):
        raise ValueError("the traffic spans too few windows for a storm: give the world more records")
    after: dict[int, list[Row]] = {}
    inside = [i for i, t in time_at.items() if start <= t < start + storm.window]
    for index in sorted(rng.choices(inside, k=storm.size)):
        after.setdefault(index, []).append(_bounce(rng, storm, people, by_list, time_at[index]))
    for window in range(start - storm.window, times[0] - 1, -storm.window):
        earlier = [i for i, t in time_at.items() if window <= t < window + storm.window]
        for index in rng.sample(earlier, min(storm.usual, len(earlier))) if len(earlier) > 1 else ():
            after.setdefault(index, []).append(_bounce(rng, storm, people, by_list, time_at[index]))
    result = []
    for index, row in enumerate(rows):
        result.append(row)
        result += after.get(index, ())
    return result, start


def _bounce(rng: random.Random, storm: Storm, people, by_list: dict, time: int) -> Row:
    """A new subscriber of the storm domain on one list, and its hard bounce from a campaign sent to that list."""
    listid = rng.choice(sorted(by_list))
    campaign = rng.choice(by_list[listid])
    address = people.add(f"good{len(people.addresses)}@{storm.domain}", listid, time)
    lists = ",".join(map(str, campaign.list_ids))
    return Row("b", time, address, "failed", STORM_STATUS, STORM_DIAG, "bad-mailbox", lists, str(campaign.statid),
               "vmta-1", str(campaign.statid))
