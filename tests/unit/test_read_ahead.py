"""`process`'s read-ahead thread: the file's items in order, errors where the file stops, memory bounded."""

import sys
import threading
import time
from pathlib import Path

import pytest
from pmtabounce.common.accounting import AccountingFile, RejectedRow

from pmtabounce.read_ahead import ReadAhead

HEADER = "type,timeLogged,rcpt,dsnAction,dsnStatus,dsnDiag,bounceCat,header_X-Mailer-LID,header_X-Mailer-SID\n"


def row(n: int) -> str:
    return f"b,{1732010000 + n},user{n}@example.com,failed,5.1.1,smtp;550 gone,bad-mailbox,3,42\n"


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "bounces-test.csv"
    path.write_text(HEADER + "".join(lines))
    return path


def test_the_items_come_in_file_order_with_rejected_rows_where_they_were(tmp_path):
    lines = [row(n) if n % 7 else "b,not a time,x@example.com,failed,5.1.1,d,bad-mailbox,3,42\n" for n in range(50)]
    path = write(tmp_path, lines)
    plain = [(type(i).__name__, i.source_line) for i in AccountingFile(path)]
    source = AccountingFile(path)
    with ReadAhead(source, batch_size=4) as reading:
        ahead = [(type(i).__name__, i.source_line) for i in reading]
    assert ahead == plain
    assert sum(1 for kind, _ in ahead if kind == RejectedRow.__name__) == 8
    assert source.counts.bounces == 42 and source.counts.rejected == 8


def test_a_file_that_cannot_be_read_raises_its_error_from_the_iteration(tmp_path):
    missing = tmp_path / "bounces-gone.csv"
    with ReadAhead(AccountingFile(missing), batch_size=10) as reading:
        with pytest.raises(FileNotFoundError) as raised:
            list(reading)
    assert Path(raised.value.filename) == missing


class CountingSource:
    """An AccountingFile stand-in that counts the items taken from it."""

    name = "bounces-endless.csv"

    def __init__(self, records: list) -> None:
        self.records = records
        self.taken = 0

    def __iter__(self):
        for record in self.records:
            self.taken += 1
            yield record


def test_the_reader_stays_a_few_batches_ahead_and_stops_when_the_caller_leaves(tmp_path):
    records = list(AccountingFile(write(tmp_path, [row(n) for n in range(2000)])))
    source = CountingSource(records)
    with ReadAhead(source, batch_size=10, depth=2) as reading:  # type: ignore[arg-type]
        items = iter(reading)
        next(items)
        time.sleep(0.3)  # room for the reader to run as far as it may
        assert source.taken <= 10 * (2 + 2) + 1  # the chunk taken, two queued, one being filled
        thread = reading._thread
    thread.join(timeout=2)
    assert not thread.is_alive()
    assert source.taken < len(records)
    assert sys.getswitchinterval() == pytest.approx(0.005)


def test_the_database_side_waiting_for_records_is_measured(tmp_path):
    release = threading.Event()

    class SlowSource(CountingSource):
        def __iter__(self):
            release.wait(5)
            yield from super().__iter__()

    records = list(AccountingFile(write(tmp_path, [row(n) for n in range(5)])))
    with ReadAhead(SlowSource(records), batch_size=10) as reading:  # type: ignore[arg-type]
        threading.Timer(0.2, release.set).start()
        assert len(list(reading)) == 5
    assert reading.consumer_waited >= 0.15


def test_the_next_file_s_reader_starts_when_this_file_is_read_through(tmp_path):
    """inline.py starts each file's reader from the reader of the file before (`then`), so that its first
    chunk is ready when the caller comes to it; the interpreter's switch interval comes back once both end."""
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    following = ReadAhead(AccountingFile(write(second, [row(n) for n in range(100, 130)])), batch_size=10)
    reading = ReadAhead(AccountingFile(write(first, [row(n) for n in range(25)])), batch_size=10)
    asked = []
    reading.then = lambda: asked.append(1) or following
    with reading:
        items = list(reading)
        assert following._thread.ident is not None  # started by the reader, before its caller came to it
    assert asked == [1]
    with following:  # entered again by its caller: the same thread, not a second one
        later = list(following)
    assert [i.source_line for i in items] == list(range(2, 27))
    assert [i.source_line for i in later] == list(range(2, 32))
    assert sys.getswitchinterval() == pytest.approx(0.005)


def test_a_next_reader_left_before_its_turn_is_never_started(tmp_path):
    gate = threading.Event()

    class Gated(CountingSource):
        def __iter__(self):
            gate.wait(5)
            yield from super().__iter__()

    following = ReadAhead(CountingSource([]), batch_size=10)  # type: ignore[arg-type]
    reading = ReadAhead(Gated(list(AccountingFile(write(tmp_path, [row(1)])))), batch_size=10)  # type: ignore[arg-type]
    reading.then = lambda: following
    with reading:
        following.__exit__(None, None, None)  # the caller stopped (an error, a stop request) before it was due
        gate.set()
        assert len(list(reading)) == 1
    assert following._thread.ident is None  # never started, so nothing to stop or join


def test_many_small_pending_files_keep_at_most_the_next_file_s_reader_started(tmp_path):
    """A file of a batch or two is read through at once: its reader starting the next, which starts the next...
    ran through every pending file (threads and memory by the number of files). inline.py _Readers starts
    only the file after the one in hand."""
    from pmtabounce.common.config import Settings

    from pmtabounce.inline import _Readers

    paths = []
    for n in range(12):
        folder = tmp_path / f"f{n}"
        folder.mkdir()
        paths.append(write(folder, [row(n * 10 + k) for k in range(3)]))
    readers = _Readers(paths, Settings(batch_size=10), None)  # type: ignore[arg-type]
    try:
        for number in range(len(paths)):
            reading = readers.reader(number)
            with reading:
                assert len(list(reading)) == 3
            time.sleep(0.05)  # room for any reader started to run on and start others
            started = [n for n, made in readers._made.items() if made._started and n != number]
            assert started in ([], [number + 1]), started
            readers.done(number)
    finally:
        readers.close()
    assert sys.getswitchinterval() == pytest.approx(0.005)
