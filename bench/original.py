"""The original PHP addon's way of applying bounces, kept as the benchmark's baseline.

One bounce at a time through IEM's API: about eight round trips each, every
statement committed on its own (autocommit), no ledger. It is faithful to the
query pattern, not to the bugs: on a world without duplicates it reaches the
same tables as the spec.
"""

from __future__ import annotations

from pathlib import Path

from iem_model import BounceModel, IemState  # bench.py puts tests/ on sys.path
from pmtabounce.common.accounting import AccountingFile
from pmtabounce.common.bouncedir import pending_files
from pmtabounce.common.policy import Policy, bounce_rule
from pmtabounce.common.record import BounceRecord
from pmtabounce.store.db import Tables

_STAT_COLUMN = {"hard": "bouncecount_hard", "soft": "bouncecount_soft", "ignore": "bouncecount_unknown"}


class OriginalAddon:
    """IEM's API calls as the addon makes them, one statement per round trip."""

    def __init__(self, connection, tables: Tables, policy: Policy) -> None:
        connection.autocommit(True)
        self.cursor = connection.cursor()
        self.t = tables
        self.policy = policy
        self.round_trips = 0

    def _query(self, sql: str, params: tuple):
        self.round_trips += 1
        self.cursor.execute(sql, params)
        return self.cursor.fetchone()

    def apply(self, record: BounceRecord) -> None:
        if not record.list_ids:
            return
        t, decision = self.t, self.policy.classify(record.category)
        marks = ", ".join(["%s"] * len(record.list_ids))
        found = self._query(  # Subscribers_API::IsSubscriberOnList, lowest list first
            f"SELECT subscriberid, listid FROM {t.subscribers} WHERE emailaddress = %s AND listid IN ({marks}) "
            "AND unsubscribed = 0 AND bounced = 0 ORDER BY listid LIMIT 1",
            (record.rcpt, *record.list_ids),
        )
        if found is None:
            return
        subscriberid, listid = found
        if self._query(  # Subscribers_API::AlreadyBounced
            f"SELECT bounceid FROM {t.bounces} WHERE subscriberid = %s AND statid = %s AND listid = %s LIMIT 1",
            (subscriberid, record.statid, listid),
        ):
            return
        self._count_in_statistics(record.statid, decision)
        if decision == "ignore":
            return
        self._query(  # Subscribers_API::RecordBounceInfo
            f"INSERT INTO {t.bounces} (subscriberid, statid, listid, bouncetime, bouncetype, bouncerule, "
            "bouncemessage) VALUES (%s, %s, %s, %s, %s, %s, '')",
            (subscriberid, record.statid, listid, record.time_logged, decision, bounce_rule(record.category)),
        )
        (rows,) = self._query(f"SELECT COUNT(*) FROM {t.bounces} WHERE subscriberid = %s", (subscriberid,))
        if self.policy.disables(decision, rows):  # Subscribers_API::BounceSubscriber
            self._query(f"UPDATE {t.subscribers} SET bounced = %s WHERE subscriberid = %s",
                        (record.time_logged, subscriberid))
            self._query(f"UPDATE {t.lists} SET bouncecount = bouncecount + 1, subscribecount = subscribecount - 1 "
                        "WHERE listid = %s", (listid,))

    def _count_in_statistics(self, statid: int, decision: str) -> None:
        """Stats_API: the statid is looked up among autoresponders, then newsletters."""
        column = _STAT_COLUMN[decision]
        for table in (self.t.stats_autoresponders, self.t.stats_newsletters):
            if self._query(f"SELECT statid FROM {table} WHERE statid = %s", (statid,)):
                self._query(f"UPDATE {table} SET {column} = {column} + 1 WHERE statid = %s", (statid,))
                return


def expected_state(world, directory: Path) -> IemState:
    """What the original makes of `world`: the spec's tables for its bounces alone (no complaints, no ledger)."""
    state = IemState.from_world(world)
    model = BounceModel(state)
    for path in pending_files(directory):
        for item in AccountingFile(path):
            if isinstance(item, BounceRecord):
                model.apply(item)
    return state


def process_directory(connection, tables: Tables, directory: Path, policy: Policy) -> tuple[int, int]:
    """Every bounce of every file of `directory` in order, one by one; (bounces, round trips)."""
    addon = OriginalAddon(connection, tables, policy)
    records = 0
    for path in pending_files(directory):
        for item in AccountingFile(path):
            if isinstance(item, BounceRecord):  # the addon knew no complaints (`f` rows)
                addon.apply(item)
                records += 1
    return records, addon.round_trips
