"""The queue message: a round trip keeps everything, and untrusted bodies are refused with a reason."""

import orjson
import pytest
from pmtabounce.common.complaint import ComplaintRecord
from pmtabounce.common.errors import InvalidMessage, PermanentError
from pmtabounce.common.message import BOUNCE_VERSION, MAX_BODY, decode, encode, too_big
from pmtabounce.common.record import INT32_MAX, BounceRecord

RECORDS = [
    BounceRecord("b", 1732010733, "john@example.com", "5.1.1 (bad destination mailbox address)",
                 "smtp;550 5.1.1 <john@example.com>: User unknown", "bad-mailbox", (3,), 42,
                 "bounces-2024-11-19-1000.csv", 2),
    BounceRecord("rb", 1732010790, "mary@example.net", "5.2.2", 'Mailbox full, "quota exceeded"\nline two',
                 "quota-issues", (7, 8, 13), 0, "b.csv", 3),
    BounceRecord("b", INT32_MAX, "ünïcødé@exämple.com", "", "Benutzer unbekannt \ufffd\u0000", "", (), INT32_MAX),
    BounceRecord("b", 1, "a@b", "s", "d" * 100_000, "some-new-category", (INT32_MAX,), 12, "f" * 300, INT32_MAX),
]


@pytest.mark.parametrize("record", RECORDS, ids=range(len(RECORDS)))
def test_round_trip(record):
    back = decode(encode(record))
    assert back == record
    assert back.fingerprint == record.fingerprint
    assert (back.source_file, back.source_line) == (record.source_file, record.source_line)


def test_the_body_is_versioned_json():
    body = orjson.loads(encode(RECORDS[0]))
    assert body["v"] == BOUNCE_VERSION == 1  # a worker not yet upgraded still reads a bounce
    assert body["list_ids"] == [3] and body["statid"] == 42 and body["time"] == 1732010733


def body(record=None, **changes) -> bytes:
    """The body of `record` (the first bounce by default) with fields changed (`...`: removed)."""
    data = orjson.loads(encode(record or RECORDS[0]))
    for key, value in changes.items():
        if value is ...:
            del data[key]
        else:
            data[key] = value
    return orjson.dumps(data)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "not JSON"),
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"text"', "not a JSON object"),
        (b"null", "not a JSON object"),
        (b"x" * (MAX_BODY + 1), "bytes"),
        (body(v=...), "schema version"),
        (body(v=3), "schema version"),
        (body(v="1"), "schema version"),
        (body(v=True), "schema version"),  # JSON true == 1 in Python
        (body(v=1.0), "schema version"),
        (body(type="d"), "not a bounce"),
        (body(type=...), "'type'"),
        (body(type=1), "'type'"),
        (body(rcpt=""), "rcpt"),
        (body(rcpt="   "), "rcpt"),
        (body(rcpt="x" * 256), "rcpt"),
        (body(rcpt=None), "'rcpt'"),
        (body(list_ids=...), "'list_ids'"),
        (body(list_ids="3,4"), "'list_ids'"),
        (body(list_ids=[3, "4"]), "list_ids"),
        (body(list_ids=[0]), "list_ids"),
        (body(list_ids=[-3]), "list_ids"),
        (body(list_ids=[3.0]), "list_ids"),
        (body(list_ids=[True]), "list_ids"),
        (body(list_ids=[INT32_MAX + 1]), "list_ids"),
        (body(time=0), "'time'"),
        (body(time=-1), "'time'"),
        (body(time="1732010733"), "'time'"),
        (body(time=1732010733.5), "'time'"),
        (body(time=True), "'time'"),
        (body(time=INT32_MAX + 1), "'time'"),
        (body(statid=-1), "'statid'"),
        (body(statid=None), "'statid'"),
        (body(statid=...), "'statid'"),
        (body(status=5), "'status'"),
        (body(diag=None), "'diag'"),
        (body(category=["bad-mailbox"]), "'category'"),
        (body(file=None), "'file'"),
        (body(line=-1), "'line'"),
        (body(line="2"), "'line'"),
    ],
)
def test_every_invalid_body_is_refused_with_a_reason(raw, reason):
    with pytest.raises(InvalidMessage, match=reason) as caught:
        decode(raw)
    assert isinstance(caught.value, PermanentError)  # the worker dead-letters it, never retries


def test_unknown_extra_fields_are_ignored():
    data = orjson.loads(encode(RECORDS[0]))
    data["future_field"] = {"nested": True}
    assert decode(orjson.dumps(data)) == RECORDS[0]


def test_rcpt_is_trimmed_and_list_ids_normalised_on_the_way_in():
    record = decode(body(rcpt="  john@example.com ", list_ids=[13, 7, 7]))
    assert record.rcpt == "john@example.com" and record.list_ids == (7, 13)


COMPLAINTS = [
    ComplaintRecord("f", 1732011060, "jane.doe@example.net", "abuse", "arf", "Example-Feedback/2.0",
                    "feedback.example.net", (3, 12), 42,
                    "<https://iem.example.com/unsubscribe.php?M=802&C=6f1c&L=12&N=42>", "complaints.csv", 3),
    ComplaintRecord("f", 1732011300, "", "", "jmrp", "", "", (), 0, "", "", 0),  # redacted, nothing else
]


@pytest.mark.parametrize("record", COMPLAINTS, ids=range(len(COMPLAINTS)))
def test_a_complaint_round_trips_as_version_2(record):
    raw = encode(record)
    assert orjson.loads(raw)["v"] == 2
    back = decode(raw)
    assert back == record and back.fingerprint == record.fingerprint and back.link == record.link


def complaint_body(**changes) -> bytes:
    return body(COMPLAINTS[0], **changes)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (complaint_body(v=1), "not a bounce"),  # version 1 never carried a complaint
        (complaint_body(v=3), "unknown schema version 3"),
        (complaint_body(feedback_type=...), "'feedback_type'"),
        (complaint_body(format=None), "'format'"),
        (complaint_body(user_agent=1), "'user_agent'"),
        (complaint_body(reporting_mta=...), "'reporting_mta'"),
        (complaint_body(list_unsubscribe=...), "'list_unsubscribe'"),
        (complaint_body(rcpt=None), "'rcpt'"),
        (complaint_body(rcpt="x" * 256), "rcpt"),
        (complaint_body(list_ids=[0]), "list_ids"),
        (complaint_body(statid=-1), "'statid'"),
    ],
)
def test_an_invalid_complaint_body_is_refused_with_a_reason(raw, reason):
    with pytest.raises(InvalidMessage, match=reason):
        decode(raw)


def test_a_bounce_written_as_version_2_is_read_too():
    data = orjson.loads(encode(RECORDS[0]))
    data["v"] = 2
    assert decode(orjson.dumps(data)) == RECORDS[0]


def _bounce(diag: str, list_ids=(3,)) -> BounceRecord:
    return BounceRecord("b", 1732010733, "a@example.com", "5.1.1", diag, "bad-mailbox", list_ids, 42)


@pytest.mark.parametrize(
    ("record", "fits"),
    [
        (_bounce("x" * 40_000), True),
        (_bounce("x" * (MAX_BODY - 1000)), True),
        (_bounce("x" * MAX_BODY), False),
        (_bounce("\x01" * 50_000), False),  # 50,000 characters, 300,000 bytes as \u0001
        (_bounce("é" * 140_000), False),  # two bytes each in UTF-8
        (_bounce("", tuple(range(1, 60_000))), False),  # the list ids count too
        (ComplaintRecord("f", 1, "", "abuse", "arf", "", "", (), 0, "<mailto:" + "u" * MAX_BODY + ">"), False),
    ],
)
def test_too_big_says_whether_a_records_body_passes_what_a_worker_accepts(record, fits):
    reason = too_big(record)
    assert (reason is None) is fits and (len(encode(record)) <= MAX_BODY) is fits
    if not fits:
        assert f"{len(encode(record))} bytes" in reason and str(MAX_BODY) in reason
        with pytest.raises(InvalidMessage):
            decode(encode(record))
