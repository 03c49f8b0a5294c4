"""The dlq filters: ages, reasons, files, text, ids and limits."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from pmtabounce.common.topology import H_DEAD_AT, H_ERROR, H_REASON, H_SOURCE_FILE

from pmtabounce.dlq.message import DeadLetterMessage
from pmtabounce.dlq.selection import Selection, only_confirmed, parse_age

NOW = datetime(2024, 11, 20, 12, 0, tzinfo=timezone.utc)


def letter(error: str = "database_refused", reason: str = "MySQL error 1644: refused", age: timedelta | None = None,
           file: str = "/var/pmta/bounces-2024-11-19-1000.csv", message_id: str = "a" * 32) -> DeadLetterMessage:
    headers = {H_ERROR: error, H_REASON: reason, H_SOURCE_FILE: file}
    if age is not None:
        headers[H_DEAD_AT] = int((NOW - age).timestamp())
    return DeadLetterMessage(b"{}", {"message_id": message_id, "headers": headers})


@pytest.mark.parametrize("text, seconds", [
    ("30s", 30), ("15m", 900), ("1h", 3600), ("2d", 172800), ("1w", 604800), ("1.5h", 5400), (" 2D ", 172800),
])
def test_ages(text, seconds):
    assert parse_age(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "1", "h", "1y", "-1h", "1 h 2m"])
def test_bad_ages_say_what_is_expected(text):
    with pytest.raises(ValueError, match="30s, 15m, 1h"):
        parse_age(text)


def test_reason_is_a_class_or_its_start_in_any_spelling():
    refused = letter("database_refused")
    limit = DeadLetterMessage(b"", {"headers": {"x-death": [{"reason": "delivery_limit"}]}})
    assert Selection(reasons=("database",)).matches(refused, NOW)
    assert Selection(reasons=("Delivery-Limit",)).matches(limit, NOW)
    assert not Selection(reasons=("invalid",)).matches(refused, NOW)
    assert Selection(reasons=("invalid", "database_refused")).matches(refused, NOW)


def test_age_filters_and_messages_with_no_time():
    two_hours = letter(age=timedelta(hours=2))
    assert Selection(older_than=timedelta(hours=1)).matches(two_hours, NOW)
    assert not Selection(older_than=timedelta(hours=3)).matches(two_hours, NOW)
    assert Selection(newer_than=timedelta(hours=3)).matches(two_hours, NOW)
    assert not Selection(newer_than=timedelta(hours=1)).matches(two_hours, NOW)
    timeless = letter()
    assert Selection().matches(timeless, NOW)
    assert not Selection(older_than=timedelta(0)).matches(timeless, NOW)
    assert not Selection(newer_than=timedelta(days=999)).matches(timeless, NOW)


def test_file_matches_the_name_or_the_whole_path_with_globs():
    one = letter()
    assert Selection(files=("bounces-2024-11-19-1000.csv",)).matches(one, NOW)
    assert Selection(files=("bounces-2024-11-*",)).matches(one, NOW)
    assert Selection(files=("/var/pmta/*",)).matches(one, NOW)
    assert not Selection(files=("bounces-2024-12-*",)).matches(one, NOW)


def test_grep_looks_in_the_reason_ignoring_case():
    assert Selection(grep="ERROR 1644").matches(letter(), NOW)
    assert not Selection(grep="deadlock").matches(letter(), NOW)


def test_ids_match_whole_or_by_a_long_enough_prefix():
    one = letter(message_id="0123456789abcdef")
    assert Selection(ids=("01234567",)).matches(one, NOW)
    assert not Selection(ids=("01234568",)).matches(one, NOW)
    with pytest.raises(ValueError, match="too short"):
        Selection(ids=("0123",))


def test_pick_keeps_queue_order_and_applies_the_limit_last():
    letters = [letter("invalid_message", message_id=f"{n:032d}") if n % 2 else letter(message_id=f"{n:032d}")
               for n in range(6)]
    picked = Selection(reasons=("database_refused",), limit=2).pick(letters, NOW)
    assert [p.id for p in picked] == [f"{0:032d}", f"{2:032d}"]


def test_describe_gives_the_options_back():
    selection = Selection(reasons=("rejected",), older_than=timedelta(hours=2), newer_than=timedelta(seconds=90),
                          files=("a.csv",), grep="1644", ids=("abcdefgh",), limit=5)
    assert selection.describe() == (
        "--reason rejected --older-than 2h --newer-than 90s --file a.csv --grep '1644' --id abcdefgh --limit 5"
    )
    assert Selection().describe() == "everything"


def test_only_what_the_operator_confirmed_counting_copies():
    a, b, c = letter(message_id="a" * 32), letter(message_id="b" * 32), letter(message_id="c" * 32)
    confirmed = Counter([a.identity, b.identity])
    assert only_confirmed([a, c, a, b], confirmed) == [a, b]  # one copy of a was shown, so one goes
    assert only_confirmed([a, c], None) == [a, c]
