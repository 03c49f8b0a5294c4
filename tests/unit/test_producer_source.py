"""FileJob without a broker: resuming after a checkpoint, the reject file cut back, a file that changes."""

from __future__ import annotations

import csv

from pmtabounce.common.bouncedir import REJECT_COLUMN
from pmtabounce.producer.checkpoint import checkpoint_path
from pmtabounce.producer.source import FileJob

HEADER = "type,timeLogged,rcpt,dsnStatus,dsnDiag,bounceCat,header_X-Mailer-LID,header_X-Mailer-SID\r\n"


def write(path, rows: int, bad_lines: set[int]) -> None:
    """Rows from line 2 on; a line in `bad_lines` has no rcpt and is rejected."""
    with open(path, "w", newline="") as handle:
        handle.write(HEADER)
        for line in range(2, rows + 2):
            rcpt = "" if line in bad_lines else f"u{line}@example.com"
            handle.write(f"b,{1732010000 + line},{rcpt},5.1.1,smtp;550 gone,bad-mailbox,3,42\r\n")


def read_all(job: FileJob) -> list:
    records = []
    while not job.exhausted:
        record = job.step()
        if record is not None:
            records.append((record, job.track(record)))
    return records


def rejected_lines(job: FileJob) -> list[int]:
    with open(job.rejects.path, newline="") as handle:
        header, *rows = list(csv.reader(handle))
    return [int(row[header.index(REJECT_COLUMN)].split(":")[0].removeprefix("line ")) for row in rows]


def test_a_job_resumes_after_its_checkpoint_and_cuts_the_reject_file_back(tmp_path):
    source = tmp_path / "b.csv"
    write(source, 10, bad_lines={3, 8})
    first = FileJob(source)
    records = read_all(first)  # both bad rows are in b.csv.rejected now
    for record, entry in records:
        if record.source_line <= 5:
            first.progress.settle(entry)
    first.save()
    first.close()
    assert rejected_lines(first) == [3, 8]

    second = FileJob(source)  # as after kill -9
    assert second.resumed_after == 5
    again = [record.source_line for record, _ in read_all(second)]
    second.close()
    assert again == [6, 7, 9, 10, 11]
    assert rejected_lines(second) == [3, 8]  # line 8 written again, but only once


def test_a_finished_job_is_marked_done_and_forgets_its_checkpoint(tmp_path):
    source = tmp_path / "b.csv"
    write(source, 3, bad_lines=set())
    job = FileJob(source)
    records = read_all(job)
    job.progress.settle(records[0][1])
    job.save()
    assert checkpoint_path(source).exists() and not job.finished
    for _, entry in records[1:]:
        job.progress.settle(entry)
    assert job.finished
    assert job.finish("rename") == tmp_path / "b.csv.done"
    assert not checkpoint_path(source).exists() and not source.exists()


def test_a_file_that_grows_or_vanishes_while_read_counts_as_changed(tmp_path):
    source = tmp_path / "b.csv"
    write(source, 3, bad_lines=set())
    job = FileJob(source)
    assert not job.changed()
    with open(source, "a") as handle:
        handle.write("b,1732019999,late@example.com,5.1.1,smtp;550,bad-mailbox,3,42\r\n")
    assert job.changed()
    source.unlink()
    assert job.changed()
