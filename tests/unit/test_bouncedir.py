"""The move-to directory: which files are input and in what order, finishing a file, NAME.rejected."""

import time

import pytest
from pmtabounce.common.accounting import AccountingFile, RejectedRow
from pmtabounce.common.bouncedir import (
    REJECT_COLUMN,
    DirectoryLock,
    RejectFile,
    directory_problem,
    done_path,
    mark_done,
    natural_key,
    pending_files,
)
from pmtabounce.common.errors import FatalError
from pmtabounce.common.record import BounceRecord

HEADER = ["type", "timeLogged", "rcpt", "dsnStatus", "dsnDiag", "bounceCat", "header_X-Mailer-LID",
          "header_X-Mailer-SID"]


@pytest.mark.parametrize(
    ("names", "ordered"),
    [
        (["b-10.csv", "b-2.csv", "b-1.csv"], ["b-1.csv", "b-2.csv", "b-10.csv"]),
        (["bounces-2024-11-19-1005.csv", "bounces-2024-11-19-0000.csv", "bounces-2024-11-18-2355.csv",
          "bounces-2024-11-19-10000.csv"],
         ["bounces-2024-11-18-2355.csv", "bounces-2024-11-19-0000.csv", "bounces-2024-11-19-1005.csv",
          "bounces-2024-11-19-10000.csv"]),
        (["B.csv", "a.csv"], ["a.csv", "B.csv"]),
        (["10.csv", "9.csv", "x.csv"], ["9.csv", "10.csv", "x.csv"]),
        (["a²1.csv", "a1.csv", "²².csv"], ["a1.csv", "a²1.csv", "²².csv"]),  # digit-like, not digits
        (["b1²2.csv", "b1.csv", "b1x2.csv"], ["b1.csv", "b1x2.csv", "b1²2.csv"]),
        (["a٣.csv", "a2.csv"], ["a2.csv", "a٣.csv"]),
    ],
)
def test_natural_order(names, ordered):
    assert sorted(names, key=natural_key) == ordered


def test_pending_files_are_the_csv_files_in_natural_order(tmp_path):
    for name in ["b-10.csv", "b-9.csv", "b-1.CSV", "b-2.csv.done", "b-3.csv.rejected", ".b-4.csv", "b-5.tmp",
                 "b-6.csv.part", ".pmtabounce.lock"]:
        (tmp_path / name).write_text("")
    (tmp_path / "dir.csv").mkdir()
    assert [p.name for p in pending_files(tmp_path)] == ["b-1.CSV", "b-9.csv", "b-10.csv"]


def test_mark_done_renames(tmp_path):
    path = tmp_path / "b-1.csv"
    path.write_text("type\n")
    target = mark_done(path, "rename")
    assert target == tmp_path / "b-1.csv.done" and target.read_text() == "type\n"
    assert not path.exists() and pending_files(tmp_path) == []


def test_mark_done_never_overwrites_an_earlier_archive(tmp_path):
    """An operator feeds fixed rows back under the original name: the first archive stays."""
    (tmp_path / "b-1.csv.done").write_text("the original")
    (tmp_path / "b-1.csv.1.done").write_text("fixed rows, first try")
    path = tmp_path / "b-1.csv"
    path.write_text("fixed rows, second try")
    target = mark_done(path, "rename")
    assert target == tmp_path / "b-1.csv.2.done" and target.read_text() == "fixed rows, second try"
    assert (tmp_path / "b-1.csv.done").read_text() == "the original"
    assert (tmp_path / "b-1.csv.1.done").read_text() == "fixed rows, first try"
    assert pending_files(tmp_path) == []  # no archive name is taken for input again
    (tmp_path / "b-1.csv.1.done").unlink()
    assert done_path(path) == tmp_path / "b-1.csv.1.done"  # the first free name


def test_mark_done_deletes(tmp_path):
    path = tmp_path / "b-1.csv"
    path.write_text("type\n")
    assert mark_done(path, "delete") is None
    assert list(tmp_path.iterdir()) == []
    assert mark_done(path, "delete") is None  # already gone after a crash: still done


def test_reject_file_keeps_rows_with_reasons_and_can_be_fed_back(tmp_path):
    source = tmp_path / "b-1.csv"
    rejects = RejectFile(source, HEADER)
    rejects.add(RejectedRow("b-1.csv", 3, "the file ends inside this row (4 of 8 columns): cut short",
                            ("b", "1732010733", "a@x.com", "5.1")))
    rejects.add(RejectedRow("b-1.csv", 7, "rcpt is empty",
                            ("b", "1732010734", "", "5.1.1", 'diag, "quoted"\nline', "bad-mailbox", "3", "42")))
    rejects.close()
    assert rejects.count == 2 and rejects.path == tmp_path / "b-1.csv.rejected"
    lines = rejects.path.read_text().splitlines()
    assert lines[0] == ",".join([REJECT_COLUMN] + HEADER)
    assert lines[1] == "line 3: the file ends inside this row (4 of 8 columns): cut short,b,1732010733,a@x.com,5.1"
    # fed back unfixed, the cut-short row is refused again, though it now has a line ending: a cell cut in
    # the middle (list id 12 of 123) must not be read as a whole one
    (tmp_path / "b-1-unfixed.csv").write_text(rejects.path.read_text())
    unfixed = list(AccountingFile(tmp_path / "b-1-unfixed.csv"))
    assert [(type(r).__name__, "cut short" in r.reason) for r in unfixed] == [("RejectedRow", True),
                                                                               ("RejectedRow", False)]
    # an operator fixes the rows and moves the file back as a .csv: the extra column is ignored
    fixed = rejects.path.read_text()
    fixed = fixed.replace(",5.1\n", ",5.1,gone,bad-mailbox,3,42\n").replace(",,5.1.1", ",b@x.com,5.1.1")
    (tmp_path / "b-1-fixed.csv").write_text(fixed)
    records = list(AccountingFile(tmp_path / "b-1-fixed.csv"))
    assert all(isinstance(r, BounceRecord) for r in records), records
    assert [(r.rcpt, r.list_ids, r.statid, r.source_line) for r in records] == [
        ("a@x.com", (3,), 42, 2), ("b@x.com", (3,), 42, 3)]
    assert records[1].dsn_diag == 'diag, "quoted"\nline'


def test_a_reject_file_keeps_nul_bytes_on_every_python(tmp_path):
    """Python 3.10's csv writer refuses NUL; the operator's copy keeps the row as it was all the same."""
    rejects = RejectFile(tmp_path / "b-1.csv", HEADER)
    cells = ("b", "1732010733", "", "5.1.1", "smtp;550 \x00bad,\x00", "bad-mailbox", "3", "42")
    rejects.add(RejectedRow("b-1.csv", 2, "rcpt is empty", cells))
    rejects.close()
    rows = list(AccountingFile(rejects.path))  # read back, it is refused again with the same cells
    assert rows[0].cells[1:] == cells and "rcpt is empty" in rows[0].reason


def test_a_new_reject_file_replaces_one_from_an_earlier_run(tmp_path):
    source = tmp_path / "b-1.csv"
    (tmp_path / "b-1.csv.rejected").write_text("left over from a crashed run\n")
    rejects = RejectFile(source, HEADER)
    assert not rejects.path.exists()  # the file is parsed again from the start
    rejects.add(RejectedRow("b-1.csv", 2, "rcpt is empty", ("b",)))
    rejects.close()
    assert "left over" not in rejects.path.read_text()


def test_a_reject_file_resumes_at_a_checkpointed_size(tmp_path):
    source = tmp_path / "b-1.csv"
    first = RejectFile(source, HEADER)
    first.add(RejectedRow("b-1.csv", 2, "one", ("b",)))
    kept = first.size()
    first.add(RejectedRow("b-1.csv", 3, "written after the checkpoint", ("b",)))
    first.close()
    again = RejectFile(source, HEADER, keep_bytes=kept)
    again.add(RejectedRow("b-1.csv", 3, "two", ("b",)))
    again.close()
    text = again.path.read_text()
    assert "after the checkpoint" not in text
    assert text.count(REJECT_COLUMN) == 1 and "line 2: one" in text and "line 3: two" in text


def test_no_reject_file_when_nothing_is_rejected(tmp_path):
    rejects = RejectFile(tmp_path / "b-1.csv", HEADER)
    rejects.close()
    assert not rejects.path.exists() and rejects.size() == 0


def test_directory_lock_is_exclusive_and_released(tmp_path):
    first, second = DirectoryLock(tmp_path), DirectoryLock(tmp_path)
    assert first.acquire(wait=False)
    assert not second.acquire(wait=False)
    assert first.holder().isdigit()
    first.release()
    assert second.acquire(wait=False)
    second.release()


def test_directory_lock_waits_at_most_its_timeout(tmp_path):
    first, second = DirectoryLock(tmp_path), DirectoryLock(tmp_path)
    assert first.acquire(wait=False)
    started = time.monotonic()
    assert not second.acquire(timeout=0.3, poll=5)  # a poll longer than the time left is cut short
    assert 0.25 <= time.monotonic() - started < 1.5
    first.release()
    assert second.acquire(timeout=0.3)
    second.release()


def test_a_lock_file_that_cannot_be_opened_is_a_clear_error(tmp_path):
    (tmp_path / ".pmtabounce.lock").mkdir()  # not openable for writing, even by root
    with pytest.raises(FatalError, match="cannot open the lock file .*pmtabounce.lock"):
        DirectoryLock(tmp_path).acquire(wait=False)


def test_directory_problem_names_a_missing_directory(tmp_path):
    assert directory_problem(tmp_path) is None
    assert "does not exist" in directory_problem(tmp_path / "nowhere")
    (tmp_path / "file").write_text("")
    assert "not a directory" in directory_problem(tmp_path / "file")


def test_a_symbolic_link_named_csv_is_not_input_and_is_warned_once_by_name(tmp_path, caplog):
    secret = tmp_path / "elsewhere.env"
    secret.write_text("PMTABOUNCE_MYSQL_URL=mysql://iem:s3cret@db/iem\n")
    directory = tmp_path / "bounces"
    directory.mkdir()
    (directory / "b-1.csv").write_text("type,rcpt\r\n")
    (directory / "b-2.csv").symlink_to(secret)
    (directory / "b-3.csv").symlink_to(directory / "b-1.csv")  # a link to a real input file: still a link
    with caplog.at_level("WARNING", logger="pmtabounce.bounce_dir"):
        assert pending_files(directory) == [directory / "b-1.csv"]
        assert pending_files(directory) == [directory / "b-1.csv"]
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2 and "b-2.csv" in warned[0] and "b-3.csv" in warned[1]
    assert all("symbolic link" in text for text in warned)


def test_reading_refuses_a_file_that_became_a_link_after_the_scan(tmp_path):
    secret = tmp_path / "elsewhere.env"
    secret.write_text("type,rcpt\r\nb,x@example.com\r\n")
    (tmp_path / "b-1.csv").symlink_to(secret)
    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        list(AccountingFile(tmp_path / "b-1.csv"))


def test_a_lock_file_that_is_a_symbolic_link_is_refused_and_its_target_untouched(link_target):
    # Whoever can write the bounce directory (PowerMTA's user) must not make pmtabounce, often root,
    # truncate and overwrite a file elsewhere through .pmtabounce.lock.
    victim, spool = link_target.victim, link_target.spool
    (spool / ".pmtabounce.lock").symlink_to(victim)
    with pytest.raises(FatalError, match="cannot open the lock file .*pmtabounce.lock: it is a symbolic link"):
        DirectoryLock(spool).acquire(wait=False)
    assert victim.read_text() == "precious"


def test_a_reject_file_that_is_a_symbolic_link_is_never_written_through(link_target):
    victim, spool = link_target.victim, link_target.spool
    source = spool / "b-1.csv"
    rejects = RejectFile(source, HEADER)
    rejects.add(RejectedRow("b-1.csv", 2, "one", ("b",)))
    kept = rejects.size()
    rejects.close()
    rejects.path.unlink()
    rejects.path.symlink_to(victim)  # put in place between a checkpoint and the resume
    again = RejectFile(source, HEADER, keep_bytes=kept)
    with pytest.raises(OSError):
        again.add(RejectedRow("b-1.csv", 3, "two", ("b",)))
    assert victim.read_text() == "precious"
