"""BounceRecord's field parsers and its content fingerprint."""

import hashlib
import json
from dataclasses import replace

import pytest
from pmtabounce.common.record import BounceRecord, content_hash, iso_time, parse_list_ids, parse_statid, parse_time


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("3", (3,)),
        ("7,8,13", (7, 8, 13)),
        ("7, 8,13", (7, 8, 13)),
        (" 4 , 6 ", (4, 6)),
        ("13,7,7,8", (7, 8, 13)),  # sorted, each once: the lowest list is found the same way
        ("", ()),
        ("   ", ()),
        (",,", ()),
        ("7,abc,8", (7, 8)),  # entries that are not all digits are dropped
        ("7x", ()),
        ("-3", ()),
        ("+3", ()),
        ("3.5", ()),
        ("0", ()),  # IEM list ids start at 1
        ("99999999999", ()),  # beyond int(11): names no list
        ("١٢", ()),  # Arabic-Indic digits are digits to Python, not to IEM
        ("7;8", ()),
    ],
)
def test_parse_list_ids(raw, expected):
    assert parse_list_ids(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("42", 42),
        ("12abc", 12),  # IEM's intval(): leading digits count
        (" 42 ", 42),
        ("", 0),
        ("abc", 0),
        ("abc12", 0),
        ("0", 0),
        ("-5", 0),
        ("99999999999", 0),  # beyond int(11): no campaign
        ("٤٢", 0),
    ],
)
def test_parse_statid(raw, expected):
    assert parse_statid(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1732010733", 1732010733),
        (" 1732010733 ", 1732010733),
        # iso-times yes: 10:12:03 at +0100 is 09:12:03 UTC, never the year 2024
        ("2024-11-19 10:12:03+0100", 1732007523),
        ("2024-11-19 10:12:03+01:00", 1732007523),
        ("2024-11-19T09:12:03Z", 1732007523),
        ("2024-11-19 09:12:03+0000", 1732007523),
        ("2024-11-19 04:12:03-0500", 1732007523),
        ("2017-08-18 15:45:02+0400", 1503056702),  # Python 3.10's fromisoformat refuses +HHMM
        ("2024-11-19T10:12:03.25+0100", 1732007523),
        ("2024-11-19 10:12:03.250000+01:00", 1732007523),
    ],
)
def test_parse_time(raw, expected):
    assert parse_time(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "yesterday",
        "2024-11-19",  # a date with no offset is ambiguous
        "2024-11-19 10:12:03",  # no UTC offset
        "2024-11-19 10:12:03.5",
        "2024-11-19 10:12:03 +0100 trailing",
        "2024-13-45 10:12:03+0100",
        "-1732010733",
        "1.7e9",
        "0",
        "99999999999",  # beyond IEM's int(11) time columns
    ],
)
def test_parse_time_refuses_with_a_reason(raw):
    with pytest.raises(ValueError, match="timeLogged"):
        parse_time(raw)


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-11-19T09:12:03z", 1732007523),  # RFC 3339 allows a lower-case z
    ("2024-11-19 01:12:03-08", 1732007523),  # an offset of whole hours
    ("2024-11-19 10:12+0100", 1732007520),  # no seconds
    ("2024-11-19T10:12:03.123+01:00", 1732007523),
])
def test_iso_times_read_alike_on_every_python(text, expected):
    assert parse_time(text) == expected
    assert iso_time(text) is not None


@pytest.mark.parametrize("text", [
    # Python 3.11's fromisoformat takes these, 3.10's does not: a file must not be read one way by one worker
    # and another way by the next, nor --since mean something else after an upgrade of Python.
    "2024-11-19 10:12:03 +0100",
    "20241119T101203+0100",
    "2024-W47-2T10:12:03+0100",
    "2024-11-19T10+01:00",
    "2024-11-19T10:12:03.1234567+01:00",
    "2024-11-19T10:12:03+01:00:30",
    "2024-11-19T10:12:03+24:00",
    "2024-11-19T10:12:03+01:75",
    "２０２４-11-19 10:12:03+0100",  # digits, but not ASCII ones
])
def test_what_one_python_reads_and_another_does_not_is_no_time(text):
    assert iso_time(text) is None


BASE = BounceRecord(
    type="b",
    time_logged=1732010733,
    rcpt="john@example.com",
    dsn_status="5.1.1 (bad destination mailbox address)",
    dsn_diag="smtp;550 5.1.1 User unknown",
    category="bad-mailbox",
    list_ids=(3, 7),
    statid=42,
    source_file="bounces-2024-11-19-1000.csv",
    source_line=2,
)


@pytest.mark.parametrize(
    "changes",
    [
        {"source_line": 99},
        {"source_file": "bounces-2024-11-20-0000.csv"},
        {"source_file": "bounces-2024-11-19-1000.csv.rejected", "source_line": 7},
        {"rcpt": "John@Example.COM"},  # MySQL matches the address case-insensitively too
    ],
)
def test_fingerprint_is_the_same_for_the_same_content_anywhere(changes):
    assert replace(BASE, **changes).fingerprint == BASE.fingerprint


@pytest.mark.parametrize(
    "changes",
    [
        {"type": "rb"},
        {"time_logged": 1732010734},
        {"rcpt": "jon@example.com"},
        {"dsn_status": "5.1.2 (bad destination system address)"},
        {"dsn_diag": "smtp;550 5.1.1 user unknown"},
        {"category": "bad-domain"},
        {"list_ids": (3,)},
        {"list_ids": (3, 8)},
        {"statid": 43},
        {"statid": 0},
    ],
)
def test_fingerprint_differs_when_any_content_field_differs(changes):
    assert replace(BASE, **changes).fingerprint != BASE.fingerprint


@pytest.mark.parametrize("separator", ["\x1f", "|", ",", "\x00", "\n"])
def test_fingerprint_cannot_be_forged_by_moving_a_separator_between_fields(separator):
    """Remote servers write any bytes into dsnDiag: a separator inside it must not merge two bounces."""
    one = replace(BASE, dsn_status="5.1.1", dsn_diag=f"smtp;550{separator}gone")
    two = replace(BASE, dsn_status=f"5.1.1{separator}smtp;550", dsn_diag="gone")
    assert one.fingerprint != two.fingerprint


def test_fingerprint_is_stable_across_processes():
    """The ledger keeps fingerprints forever: they must not depend on Python's hash seed."""
    assert BASE.fingerprint == replace(BASE).fingerprint
    assert len(BASE.fingerprint) == 32 and int(BASE.fingerprint, 16) >= 0


def test_fingerprint_is_not_part_of_equality_but_follows_content():
    other = replace(BASE, source_line=3)
    assert other != BASE  # position is part of the record ...
    assert other.fingerprint == BASE.fingerprint  # ... but not of its identity as a bounce


@pytest.mark.parametrize("parts", [
    ("b", "1732000000", "john@example.com", "5.1.1", 'smtp;550 "no", \\ such\x00user', "bad-mailbox", "3,7", "42"),
    ("rb", "1", "ünïcødé@例え.jp", "", "\ud800 lone surrogate \u2028 😀 \x7f \uffff", "", "", "0"),
    ("", "", "", "", "", "", "", ""),
])
def test_content_hash_keeps_the_bytes_of_json_dumps(parts):
    """Fingerprints already in ledgers were hashed over json.dumps(parts): a faster encoding must give those bytes."""
    assert content_hash(*parts) == hashlib.blake2b(json.dumps(parts).encode(), digest_size=16).hexdigest()
