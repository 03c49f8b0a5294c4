"""`f` (feedback-loop) rows: the spec's cases of iem-complaints.md "How PowerMTA writes complaints"."""

from pathlib import Path

import pytest
from pmtabounce.common.accounting import AccountingFile, RejectedRow, record_cells
from pmtabounce.common.complaint import ComplaintRecord, UnsubscribeLink, confirms, unsubscribe_link

SAMPLES = Path(__file__).parent.parent / "data" / "samples"
HEADER = ("type,timeLogged,feedbackType,format,userAgent,rcpt,reportingMta,header_X-Mailer-LID,header_X-Mailer-SID,"
          "header_List-Unsubscribe")
LINK = "<https://iem.example.com/unsubscribe.php?M=802&C=6f1c0e5a&L=12&N=42>"


def complaints(tmp_path: Path, text: str) -> tuple[list[ComplaintRecord], list[RejectedRow], AccountingFile]:
    path = tmp_path / "complaints.csv"
    path.write_text(text, encoding="utf-8")
    source = AccountingFile(path)
    items = list(source)
    return ([i for i in items if isinstance(i, ComplaintRecord)], [i for i in items if isinstance(i, RejectedRow)],
            source)


def brief(r: ComplaintRecord) -> tuple:
    return (r.source_line, r.rcpt, r.feedback_type, r.format, r.list_ids, r.statid, r.link)


def test_the_sample_file():
    source = AccountingFile(SAMPLES / "complaints-2024-11-19-1030.csv")
    found = [brief(r) for r in source if isinstance(r, ComplaintRecord)]
    assert found == [
        (3, "jane.doe@example.net", "abuse", "arf", (3, 12), 42,
         UnsubscribeLink(802, "6f1c0e5a9b2d4e7f8a1b2c3d4e5f6a7b", 12, 42, "n")),
        (4, "", "abuse", "arf", (3, 12), 42, UnsubscribeLink(803, "0a9b8c7d6e5f40312233445566778899", 3, 42, "n")),
        (5, "carol@example.com", "", "jmrp", (7,), 4107,
         UnsubscribeLink(901, "11aa22bb33cc44dd55ee66ff77889900", 7, 4107, "a")),
        (6, "dave@example.net", "not-spam", "arf", (3, 12), 42,
         UnsubscribeLink(804, "99887766554433221100ffeeddccbbaa", 12, 42, "n")),
        (7, "", "abuse", "arf", (), 0, None),
    ]
    assert (source.counts.bounces, source.counts.complaints, source.counts.rejected) == (1, 5, 0)
    assert source.counts.by_type == {"b": 1, "f": 5}


# (row after the type, [(rcpt, feedbackType, list ids, statid, link)] or the rejection reason)
ROW_CASES = {
    "rcpt plain": ("1732011060,abuse,arf,UA,ann@example.com,mta,3,42," + LINK,
                   ("ann@example.com", "abuse", (3,), 42, UnsubscribeLink(802, "6f1c0e5a", 12, 42, "n"))),
    "rcpt in angle brackets": ("1732011060,abuse,arf,UA, <ann@example.com> ,mta,3,42,",
                               ("ann@example.com", "abuse", (3,), 42, None)),
    "empty rcpt is kept, not rejected": ("1732011060,abuse,arf,UA,,mta,3,42," + LINK,
                                         ("", "abuse", (3,), 42, UnsubscribeLink(802, "6f1c0e5a", 12, 42, "n"))),
    "JMRP: no feedback type": ("1732011060,,jmrp,,ann@example.com,,,,", ("ann@example.com", "", (), 0, None)),
    "feedback type in capitals": ("1732011060,Not-Spam,arf,UA,a@b.c,mta,3,42,", ("a@b.c", "not-spam", (3,), 42, None)),
    "ISO time": ("2024-11-19T10:11:00+00:00,abuse,arf,UA,a@b.c,mta,3,42,", ("a@b.c", "abuse", (3,), 42, None)),
    "no time": (",abuse,arf,UA,a@b.c,mta,3,42,", "timeLogged is empty"),
    "a short row: the missing cells are empty": ("1732011060,abuse,arf", ("", "abuse", (), 0, None)),
}


@pytest.mark.parametrize("case", sorted(ROW_CASES))
def test_a_complaint_row(tmp_path, case):
    row, expected = ROW_CASES[case]
    found, rejected, _ = complaints(tmp_path, f"{HEADER}\nf,{row}\n")
    if isinstance(expected, str):
        assert found == [] and len(rejected) == 1 and expected in rejected[0].reason
    else:
        assert rejected == [] and [(r.rcpt, r.feedback_type, r.list_ids, r.statid, r.link) for r in found] == [
            expected]


def test_a_complaint_row_the_end_of_the_file_cut_short_is_rejected(tmp_path):
    found, rejected, _ = complaints(tmp_path, f"{HEADER}\nf,1732011060,abuse,arf,UA,ann@example.com")
    assert found == [] and len(rejected) == 1 and "cut short" in rejected[0].reason


def test_the_patched_iem_header_names_and_a_complaints_only_file(tmp_path):
    header = "type,timeLogged,feedbackType,rcpt,header_X-List-ID,header_X-Mailing-ID"
    found, rejected, source = complaints(tmp_path, f"{header}\nf,1732011060,abuse,a@b.c,\"7, 8\",43\n")
    assert [(r.list_ids, r.statid) for r in found] == [((7, 8), 43)] and rejected == []
    assert source.counts.bounces == 0 and source.counts.complaints == 1


def test_duplicate_columns_differing_in_case_take_the_first_non_empty(tmp_path):
    header = "type,timeLogged,feedbackType,rcpt,header_List-Unsubscribe,header_list-unsubscribe,header_X-Mailer-LID"
    found, _, _ = complaints(tmp_path, f"{header}\nf,1732011060,abuse,,,{LINK},3\nf,1732011061,abuse,,{LINK},x,3\n")
    assert [r.list_unsubscribe for r in found] == [LINK, LINK]


def test_a_header_without_rcpt_reads_complaints_by_their_link_but_rejects_bounces(tmp_path):
    header = "type,timeLogged,feedbackType,bounceCat,header_List-Unsubscribe,header_X-Mailer-LID"
    path = tmp_path / "norcpt.csv"
    path.write_text(f"{header}\nf,1732011060,abuse,,{LINK},3\nb,1732011061,,bad-mailbox,,3\n")
    items = list(AccountingFile(path))
    assert [(type(i).__name__, i.source_line) for i in items] == [("ComplaintRecord", 2), ("RejectedRow", 3)]
    assert (items[0].rcpt, items[0].link.subscriberid) == ("", 802)
    assert items[1].reason == "the file's header has no rcpt column"


def test_a_mixed_file_gives_bounces_and_complaints_in_order(tmp_path):
    header = "type,timeLogged,rcpt,bounceCat,feedbackType,header_X-Mailer-LID"
    path = tmp_path / "mixed.csv"
    path.write_text(f"{header}\nb,1732011000,a@b.c,bad-mailbox,,3\nf,1732011001,a@b.c,,abuse,3\n"
                    "d,1732011002,a@b.c,,,3\nrb,1732011003,,quota-issues,,3\n")
    items = list(AccountingFile(path))
    assert [(type(i).__name__, i.source_line) for i in items] == [
        ("BounceRecord", 2), ("ComplaintRecord", 3), ("RejectedRow", 5)]  # a bounce still needs its rcpt


LINK_CASES = [
    ("", None),
    ("<mailto:unsub@example.com>", None),
    ("<https://x/unsubscribe.php?M=5&C=abc&L=3&N=9>", UnsubscribeLink(5, "abc", 3, 9, "n")),
    ("<https://x/unsubscribe.php?M=5&C=abc&L=3&A=9>", UnsubscribeLink(5, "abc", 3, 9, "a")),
    ("<https://x/unsubscribe.php?M=5&L=3>", UnsubscribeLink(5, None, 3, 0, "")),  # no C: not checked
    ("<https://x/unsubscribe.php?M=5&C=&L=3>", UnsubscribeLink(5, "", 3, 0, "")),  # an empty C is a C
    ("<https://x/unsubscribe.php?M=5&C=" + "a" * 32 + "X&L=3>", UnsubscribeLink(5, "a" * 32 + "X", 3, 0, "")),
    ("<https://x/unsubscribe.php?M=5&C=%20abc%20>", UnsubscribeLink(5, " abc ", 0, 0, "")),  # kept as sent
    ("<https://x/unsubscribe.php?M=%205&L=3%20>", UnsubscribeLink(5, None, 3, 0, "")),
    ("<mailto:u@x?subject=unsubscribe>, <https://x/unsubscribe.php?M=5&C=c&L=3&N=9>",
     UnsubscribeLink(5, "c", 3, 9, "n")),
    ("https://x/unsubscribe.php?m=5&c=c&l=3&n=9", UnsubscribeLink(5, "c", 3, 9, "n")),  # bare, lower-case keys
    ("<https://x/unsubscribe.php?M=abc&C=c>", None),  # M not a subscriberid
    ("<https://x/unsubscribe.php?M=0&C=c>", None),
    ("<https://x/unsubscribe.php?M=5&L=x&N=-1>", UnsubscribeLink(5, None, 0, 0, "")),
    ("<https://other.example/list?id=7>", None),
]


@pytest.mark.parametrize(("header", "expected"), LINK_CASES)
def test_iems_list_unsubscribe_link(header, expected):
    assert unsubscribe_link(header) == expected


CODE = "6f1c0e5a9b2d4e7f8a1b2c3d4e5f6a7b"


@pytest.mark.parametrize(
    ("link_code", "row_code", "expected"),
    [
        (None, CODE, True),  # no C: not checked
        (CODE, CODE, True),
        (CODE + "x", CODE, False),  # longer than 32: never cut to fit
        (CODE[:31], CODE, False),
        ("", CODE, False),  # an empty C proves nothing about a real confirmcode
        ("", "", True),  # a row with no confirmcode: IEM's own link to it carries C=
        (" " + CODE, CODE, False),
    ],
)
def test_a_links_c_must_equal_the_rows_confirmcode(link_code, row_code, expected):
    assert confirms(UnsubscribeLink(5, link_code), row_code) is expected


def test_record_cells_puts_a_complaint_back_under_its_header(tmp_path):
    source = AccountingFile(SAMPLES / "complaints-2024-11-19-1030.csv")
    records = [r for r in source if isinstance(r, ComplaintRecord)]
    path = tmp_path / "again.csv"
    lines = [",".join(source.header)] + [",".join(f'"{c}"' for c in record_cells(r, source.header)) for r in records]
    path.write_text("\n".join(lines) + "\n")
    back = [r for r in AccountingFile(path) if isinstance(r, ComplaintRecord)]
    assert [r.fingerprint for r in back] == [r.fingerprint for r in records]


def test_the_fingerprint_is_the_content_not_the_place():
    a = ComplaintRecord("f", 1, "a@b.c", "abuse", "arf", "UA", "mta", (3,), 42, LINK, "one.csv", 2)
    b = ComplaintRecord("f", 1, "A@B.C", "abuse", "arf", "other UA", "mta", (3,), 42, LINK, "two.csv", 9)
    c = ComplaintRecord("f", 1, "a@b.c", "abuse", "arf", "UA", "mta", (3,), 42, LINK + " ", "one.csv", 2)
    assert a.fingerprint == b.fingerprint != c.fingerprint
