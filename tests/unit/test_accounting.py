"""The streaming accounting-file parser, on the project's sample files and on hand-made trouble."""

from pathlib import Path

import pytest
from pmtabounce.common.accounting import AccountingFile, RejectedRow, record_cells
from pmtabounce.common.record import BounceRecord

SAMPLES = Path(__file__).parent.parent / "data" / "samples"
HEADER = "type,timeLogged,rcpt,dsnAction,dsnStatus,dsnDiag,bounceCat,header_X-Mailer-LID,header_X-Mailer-SID"
ROW = "b,1732010733,john@example.com,failed,5.1.1 (bad destination mailbox address),smtp;550 gone,bad-mailbox,3,42"


def parse(tmp_path: Path, data: bytes | str, name: str = "bounces-test.csv"):
    """Write `data` as a file and parse it the way the processor does (from disk)."""
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    source = AccountingFile(path)
    items = list(source)
    records = [i for i in items if isinstance(i, BounceRecord)]
    rejected = [i for i in items if isinstance(i, RejectedRow)]
    assert len(records) + len(rejected) == len(items)
    return source, records, rejected


def brief(record: BounceRecord) -> tuple:
    return (record.source_line, record.type, record.rcpt, record.time_logged, record.list_ids,
            record.statid, record.category)


# (line, type, rcpt, time, list ids, statid, category) of every record, then (line, reason) of every rejection.
SAMPLE_CASES = {
    "bounces-2024-11-19-1000.csv": (
        [
            (2, "b", "john@example.com", 1732010733, (3,), 42, "bad-mailbox"),
            (3, "rb", "mary@example.net", 1732010790, (7, 8, 13), 42, "quota-issues"),
            (4, "b", "jo@example.org", 1732010801, (3,), 0, "policy-related"),
            # line 5 is a `d` record: skipped
            (6, "b", "Pieter.Jansen@Example.NL", 1732010810, (3,), 42, "bad-domain"),
            (7, "b", "anne@example.com", 1732010811, (3,), 42, "message-expired"),
        ],
        [],
    ),
    "bounces-2024-11-19-1005.csv": (
        [
            (2, "b", "kees@example.com", 1732011033, (5,), 43, "bad-mailbox"),
            (3, "b", "lisa@example.com", 1732011040, (5,), 43, "quota-issues"),
        ],
        [],
    ),
    "bounces-2024-11-19-1010.csv": (
        [
            (2, "b", "tom@example.com", 1732007523, (2,), 44, "bad-mailbox"),  # 10:12:03+0100
            (3, "rb", "eva@example.com", 1732007529, (2,), 44, "routing-errors"),
        ],
        [],
    ),
    "bounces-2024-11-19-1015.csv": ([], []),
    "bounces-2024-11-19-1020.csv": ([], []),
    "bounces-2024-11-19-1025.csv": (
        [
            (2, "b", "bad.bytes@example.com", 1732012001, (4,), 45, "bad-mailbox"),
            (3, "b", "short@example.com", 1732012002, (), 0, ""),  # its missing cells are empty
            (5, "b", "spaces@example.com", 1732012004, (4, 6), 45, "bad-mailbox"),
            (6, "b", "nolist@example.com", 1732012005, (), 45, "bad-mailbox"),
            (7, "b", "newcat@example.com", 1732012006, (4,), 45, "some-new-category"),
            (8, "b", "multi@example.com", 1732012007, (4,), 45, "bad-mailbox"),
        ],
        [(4, "rcpt is empty"), (10, "cut short")],
    ),
    # its `f` rows: tests/unit/test_accounting_complaints.py
    "complaints-2024-11-19-1030.csv": ([(2, "b", "ann@example.com", 1732011000, (3,), 42, "bad-mailbox")], []),
}


def test_every_sample_file_has_a_case():
    assert sorted(p.name for p in SAMPLES.glob("*.csv")) == sorted(SAMPLE_CASES)


@pytest.mark.parametrize("name", sorted(SAMPLE_CASES))
def test_sample_file(name):
    expected_records, expected_rejected = SAMPLE_CASES[name]
    source = AccountingFile(SAMPLES / name)
    items = list(source)
    records = [i for i in items if isinstance(i, BounceRecord)]
    rejected = [i for i in items if isinstance(i, RejectedRow)]
    assert [brief(r) for r in records] == expected_records
    assert [r.source_line for r in rejected] == [line for line, _ in expected_rejected]
    for row, (_, reason) in zip(rejected, expected_rejected, strict=True):
        assert reason in row.reason and row.source_file == name
    assert all(r.source_file == name for r in records)
    assert source.counts.bounces == len(records)
    assert source.counts.rejected == len(rejected)


def test_usual_sample_details():
    source = AccountingFile(SAMPLES / "bounces-2024-11-19-1000.csv")
    records = list(source)
    assert records[0].dsn_diag == "smtp;550 5.1.1 <john@example.com>: Recipient address rejected: User unknown"
    assert records[1].dsn_diag == 'smtp;552 5.2.2 Mailbox full, "quota exceeded"'  # doubled quote undone
    assert records[1].dsn_status == "5.2.2 (mailbox full)"
    assert source.counts.skipped == 1 and source.counts.by_type == {"b": 4, "rb": 1, "d": 1}
    assert source.header[0] == "type" and len(source.header) == 9


def test_trouble_sample_details():
    items = list(AccountingFile(SAMPLES / "bounces-2024-11-19-1025.csv"))
    by_line = {i.source_line: i for i in items}
    assert by_line[2].dsn_diag == "smtp;550 5.1.1 Benutzer unbekannt \ufffd\ufffd"  # bad bytes replaced
    assert by_line[8].dsn_diag == "smtp;550 5.1.1 line one\nline two of the same diagnostic"
    assert (by_line[3].dsn_status, by_line[3].dsn_diag, by_line[3].category) == ("", "", "")
    assert by_line[10].cells[-1] == "5.1.1 (bad destination mai"  # kept for the operator


@pytest.mark.parametrize("name", ["bounces-2024-11-19-1015.csv", "bounces-2024-11-19-1020.csv"])
def test_empty_and_header_only_files_give_nothing(name):
    source = AccountingFile(SAMPLES / name)
    assert list(source) == []
    assert source.counts.rows == 0
    assert source.header is None if name.endswith("1015.csv") else source.header[0] == "type"


@pytest.mark.parametrize("ending", ["\n", "\r\n"])
def test_lf_and_crlf_give_the_same_records_and_lines(tmp_path, ending):
    lines = [HEADER, ROW, 'b,1732010734,a@example.com,failed,5.1.1,"one' + ending + 'two",bad-mailbox,3,42', ROW[:13]]
    _, records, rejected = parse(tmp_path, ending.join(lines) + ending)
    assert [(r.source_line, r.rcpt) for r in records] == [(2, "john@example.com"), (3, "a@example.com")]
    assert records[1].dsn_diag == "one" + ending + "two"
    assert [r.source_line for r in rejected] == [5]


# Hand-made files: (data, [(line, rcpt, list ids, statid)] of records, [(line, reason)] of rejected rows).
CASES = {
    "bom": ("\ufeff" + HEADER + "\r\n" + ROW + "\r\n", [(2, "john@example.com", (3,), 42)], []),
    "lower-case custom headers": (
        HEADER.lower() + "\n" + ROW + "\n", [(2, "john@example.com", (3,), 42)], []),
    "upper-case custom headers": (
        HEADER.replace("header_X-Mailer", "HEADER_X-MAILER") + "\n" + ROW + "\n",
        [(2, "john@example.com", (3,), 42)], []),
    "patched IEM header names": (
        "type,timeLogged,rcpt,dsnStatus,dsnDiag,bounceCat,header_x-list-id,header_X-MAILING-ID\n"
        "b,1732010733,a@example.com,5.1.1,gone,bad-mailbox,\"7, 8\",43\n",
        [(2, "a@example.com", (7, 8), 43)], []),
    "both header variants: X-Mailer wins, X-List fills in when empty": (
        "type,timeLogged,rcpt,bounceCat,header_X-Mailer-LID,header_X-Mailer-SID,header_X-List-ID,header_X-Mailing-ID\n"
        "b,1732010733,a@example.com,bad-mailbox,3,42,9,99\n"
        "b,1732010734,b@example.com,bad-mailbox,,,9,99\n",
        [(2, "a@example.com", (3,), 42), (3, "b@example.com", (9,), 99)], []),
    "columns in another order": (
        "type,header_X-Mailer-SID,bounceCat,rcpt,dsnDiag,header_X-Mailer-LID,timeLogged,dsnStatus\n"
        "rb,42,quota-issues,a@example.com,full,\"3,4\",1732010733,5.2.2\n",
        [(2, "a@example.com", (3, 4), 42)], []),
    "type is not the first column": (
        "timeLogged,rcpt,type,bounceCat,header_X-Mailer-LID,header_X-Mailer-SID\n"
        "1732010733,a@example.com,b,bad-mailbox,3,42\n"
        "1732010734,d@example.com,d,,3,42\n",
        [(2, "a@example.com", (3,), 42)], []),
    "a row with more cells keeps its known columns": (
        HEADER + "\n" + ROW + ",extra,cells\n", [(2, "john@example.com", (3,), 42)], []),
    "a row shorter than the header has its missing cells empty": (
        HEADER + "\nb,1732010733,a@example.com\n", [(2, "a@example.com", (), 0)], []),
    "a row without its trailing SID has statid 0": (
        HEADER + "\n" + ROW.rsplit(",", 1)[0] + "\n" + ROW + "\n",
        [(2, "john@example.com", (3,), 0), (3, "john@example.com", (3,), 42)], []),
    "a short row without rcpt is rejected": (HEADER + "\nb,1732010733\n", [], [(2, "rcpt is empty")]),
    "a short row without time is rejected": (HEADER + "\nb,,a@example.com\n", [], [(2, "timeLogged is empty")]),
    "a short last line with its line ending is a row": (
        HEADER + "\n" + ROW + "\n" + ROW[:40] + "\r\n",
        [(2, "john@example.com", (3,), 42), (3, "john@example.com", (), 0)], []),
    "a short last line without a line ending is a file cut short": (
        HEADER + "\n" + ROW + "\n" + ROW[:40], [(2, "john@example.com", (3,), 42)], [(3, "cut short")]),
    "a short last line with an unclosed quote is a file cut short": (
        HEADER + "\n" + ROW + "\n" + ROW[:40] + ',"5.1.1 (bad\n', [(2, "john@example.com", (3,), 42)],
        [(3, "cut short")]),
    "a cut-short last line of another type is skipped": (
        HEADER + "\n" + ROW + "\nd,17320", [(2, "john@example.com", (3,), 42)], []),
    "a row that only lacks unused trailing columns is kept": (
        "type,timeLogged,rcpt,bounceCat,header_X-Mailer-LID,header_X-Mailer-SID,jobId\n"
        "b,1732010733,a@example.com,bad-mailbox,3,42\n",
        [(2, "a@example.com", (3,), 42)], []),
    "unparseable time": (HEADER + "\n" + ROW.replace("1732010733", "soon") + "\n", [], [(2, "timeLogged")]),
    "ISO time without offset": (
        HEADER + "\n" + ROW.replace("1732010733", "2024-11-19 10:05:33") + "\n", [], [(2, "offset")]),
    "empty rcpt of spaces": (HEADER + "\n" + ROW.replace("john@example.com", "  ") + "\n", [], [(2, "rcpt")]),
    "rcpt is trimmed": (HEADER + "\n" + ROW.replace("john@example.com", " j@example.com ") + "\n",
                        [(2, "j@example.com", (3,), 42)], []),
    "rcpt longer than IEM can hold": (
        HEADER + "\n" + ROW.replace("john@example.com", "x" * 250 + "@example.com") + "\n", [], [(2, "255")]),
    "non-bounce types are skipped (f is a complaint: test_accounting_complaints.py)": (
        HEADER + "\n" + "\n".join(ROW.replace("b,", t + ",", 1) for t in ("d", "t", "tq", "r", "rs")) + "\n",
        [], []),
    "type is matched case-insensitively": (HEADER + "\n" + "RB" + ROW[1:] + "\n",
                                           [(2, "john@example.com", (3,), 42)], []),
    "blank lines are ignored but counted as lines": (
        HEADER + "\n\n" + ROW + "\n\n\n" + ROW.replace("john", "jane") + "\n",
        [(3, "john@example.com", (3,), 42), (6, "jane@example.com", (3,), 42)], []),
    "quoted address": (HEADER + "\n" + ROW.replace("john@example.com", '"john@example.com"') + "\n",
                       [(2, "john@example.com", (3,), 42)], []),
    "no list id and a non-numeric statid": (
        HEADER + "\n" + ROW.replace(",3,42", ",,abc") + "\n", [(2, "john@example.com", (), 0)], []),
    "last line without a line end": (HEADER + "\n" + ROW, [(2, "john@example.com", (3,), 42)], []),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hand_made_file(tmp_path, case):
    data, expected_records, expected_rejected = CASES[case]
    _, records, rejected = parse(tmp_path, data)
    assert [(r.source_line, r.rcpt, r.list_ids, r.statid) for r in records] == expected_records
    assert [r.source_line for r in rejected] == [line for line, _ in expected_rejected]
    for row, (_, reason) in zip(rejected, expected_rejected, strict=True):
        assert reason in row.reason


def test_bad_bytes_are_replaced_never_fatal(tmp_path):
    row = b'b,1732010733,a@example.com,failed,5.1.1,"\xff\xfe\xc3(\x80 bad",bad-mailbox,3,42\n'
    data = (HEADER + "\n").encode() + row
    _, records, rejected = parse(tmp_path, data)
    assert not rejected
    assert records[0].dsn_diag.endswith(" bad") and "\ufffd" in records[0].dsn_diag


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x00\x00\x00",
        b"\x00" * 100 + b"\n" + b"\x00,\x00\n",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00",
        b"this is not a csv file\nit is a log\n2024-11-19 error: something\n",
        b'"' * 7,
        b"\n\n\n\r\n\r\n",
        b",,,,\n,,,,\n",
    ],
)
def test_garbage_never_raises(tmp_path, garbage):
    source, records, _ = parse(tmp_path, garbage)
    assert records == []


def test_nul_bytes_inside_a_bounce_row_keep_the_row(tmp_path):
    _, records, rejected = parse(tmp_path, HEADER + "\n" + ROW.replace("gone", "go\x00ne") + "\n" + ROW + "\n")
    assert [r.source_line for r in records] == [2, 3] and not rejected
    assert records[0].dsn_diag == "smtp;550 go\x00ne"


def test_a_nul_inside_a_quoted_diagnostic_is_kept_on_every_python(tmp_path):
    """Python 3.10's csv refuses NUL anywhere in a line; the record must read as it does on 3.11+."""
    diag = ',"smtp;550 5.1.1 \x00bad, \x00\x00 mailbox",'
    row = ROW.replace(",smtp;550 gone,", diag)
    _, records, rejected = parse(tmp_path, HEADER + "\n" + row + "\n")
    assert not rejected and records[0].dsn_diag == "smtp;550 5.1.1 \x00bad, \x00\x00 mailbox"
    assert records[0].category == "bad-mailbox" and records[0].statid == 42


def test_a_rejected_row_with_a_nul_keeps_its_cells(tmp_path):
    row = ROW.replace("john@example.com", "").replace("gone", "go\x00ne")
    _, _, rejected = parse(tmp_path, HEADER + "\n" + row + "\n")
    assert rejected[0].cells[5] == "smtp;550 go\x00ne" and "rcpt" in rejected[0].reason


def test_a_runaway_quote_keeps_what_it_swallowed_for_the_operator(tmp_path):
    """An unclosed quote makes one field of the rest of the file: that row is rejected with its cells."""
    data = HEADER + "\n" + ROW + "\n" + 'b,1732010734,a@example.com,failed,5.1.1,"never closed\n' + ROW + "\n"
    _, records, rejected = parse(tmp_path, data)
    assert [r.source_line for r in records] == [2]
    assert [r.source_line for r in rejected] == [3]
    assert "john@example.com" in rejected[0].cells[-1]  # the swallowed row is not silently lost


def test_a_huge_runaway_field_is_cut_and_the_file_goes_on(tmp_path):
    filler = ("x" * 1000 + "\n") * 1100  # more than the 1 MiB field limit
    data = HEADER + "\n" + 'b,1732010734,a@example.com,failed,5.1.1,"never closed\n' + filler + ROW + "\n"
    source, records, rejected = parse(tmp_path, data)
    assert rejected and rejected[0].source_line == 2 and "CSV" in rejected[0].reason
    assert [r.rcpt for r in records] == ["john@example.com"]
    assert records[0].source_line == 1103


def test_type_counts_stay_small_on_a_garbage_file(tmp_path):
    """Counting by the first cell must not keep every distinct line of a 1 GB garbage file in memory."""
    lines = "\n".join(f"garbage line {n}, with a comma" for n in range(5000))
    source, records, _ = parse(tmp_path, HEADER + "\n" + lines + "\n")
    assert records == [] and source.counts.skipped == 5000
    assert len(source.counts.by_type) <= 10


def test_a_file_without_header_loses_no_bounce_silently(tmp_path):
    """The first line is taken as the header: if it is a bounce instead, it is rejected, not swallowed."""
    _, records, rejected = parse(tmp_path, ROW + "\n" + ROW.replace("john", "jane") + "\n")
    assert records == []
    assert [r.source_line for r in rejected] == [1, 2]
    assert "header" in rejected[0].reason and rejected[0].cells[2] == "john@example.com"
    assert "header" in rejected[1].reason


def test_the_parser_streams():
    """An item comes out before the next line is read: a 1 GB file is never held whole."""

    def lines():
        yield HEADER + "\r\n"
        yield ROW + "\r\n"
        raise AssertionError("the parser read ahead of the record it gave")

    first = next(AccountingFile("stream.csv").read(lines()))
    assert first.source_line == 2 and first.rcpt == "john@example.com"


def test_record_cells_puts_a_record_back_under_its_header():
    record = BounceRecord("rb", 1732010733, "a@example.com", "5.2.2", 'full, "really"', "quota-issues",
                          (3, 7), 42, "f.csv", 9)
    header = ["type", "timeLogged", "rcpt", "dsnAction", "dsnStatus", "dsnDiag", "bounceCat",
              "header_x-list-id", "HEADER_X-MAILING-ID", "jobId"]
    assert record_cells(record, header) == (
        "rb", "1732010733", "a@example.com", "", "5.2.2", 'full, "really"', "quota-issues", "3,7", "42", "")


def test_record_cells_round_trips_through_the_parser(tmp_path):
    import csv
    import io

    record = BounceRecord("b", 1732010733, "a@example.com", "5.1.1", 'line\nbreak, "quote"', "bad-mailbox",
                          (3, 7), 42, "bounces-test.csv", 2)
    header = HEADER.split(",")
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([header, record_cells(record, header)])
    _, records, _ = parse(tmp_path, out.getvalue())
    assert records == [record] and records[0].fingerprint == record.fingerprint


def test_skip_through_reads_past_lines_without_making_records(tmp_path):
    path = tmp_path / "b.csv"
    path.write_bytes(
        b"type,timeLogged,rcpt,bounceCat\r\n"
        b'b,1732010733,a@x.com,"two\r\nlines"\r\n'  # lines 2-3
        b"b,yesterday,b@x.com,bad-mailbox\r\n"  # line 4: rejected when read
        b"b,1732010735,c@x.com,bad-mailbox\r\n"  # line 5
    )
    everything = list(AccountingFile(path))
    assert [(type(i).__name__, i.source_line) for i in everything] == [
        ("BounceRecord", 2), ("RejectedRow", 4), ("BounceRecord", 5)]
    resumed = AccountingFile(path, skip_through=4)
    assert [(i.rcpt, i.source_line) for i in resumed] == [("c@x.com", 5)]
    assert (resumed.counts.bounces, resumed.counts.rejected) == (1, 0)
    assert list(AccountingFile(path, skip_through=3))[0].source_line == 4


def test_a_row_too_big_for_a_queue_message_is_rejected_with_its_cells(tmp_path):
    """The worker refuses bodies over MAX_BODY: the parser refuses such a record itself, so inline and fleet agree."""
    big = ROW.replace("smtp;550", "smtp;550 " + "x" * 300_000)
    source, records, rejected = parse(tmp_path, HEADER + "\n" + big + "\n" + ROW + "\n")
    assert [r.source_line for r in records] == [3] and [r.source_line for r in rejected] == [2]
    assert "more than the 262144-byte limit" in rejected[0].reason and len(rejected[0].cells[5]) > 300_000
    assert (source.counts.bounces, source.counts.rejected) == (1, 1)
