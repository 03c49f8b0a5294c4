"""The producer's safe prefix and delivery-tag bookkeeping, as data: no broker, no pika."""

from __future__ import annotations

import pytest
from pmtabounce.producer.checkpoint import (
    Checkpoint,
    FileProgress,
    checkpoint_path,
    load_checkpoint,
    orphaned_checkpoints,
    remove_checkpoint,
    save_checkpoint,
)
from pmtabounce.producer.confirms import Unconfirmed


def publish(progress: FileProgress, unconfirmed: Unconfirmed, lines: list[int], rejected_bytes: int = 0) -> None:
    for line in lines:
        unconfirmed.add(progress.add(line, rejected_bytes))


def apply(progress: FileProgress, unconfirmed: Unconfirmed, tag: int, *, multiple: bool, ack: bool) -> list:
    """One confirm frame; settles what it confirmed, returns what must be sent again."""
    confirmed, refused = unconfirmed.confirm(tag, multiple=multiple, ack=ack)
    for entry in confirmed:
        progress.settle(entry)
    return refused


def test_prefix_waits_for_the_earliest_unconfirmed_line():
    progress, unconfirmed = FileProgress(), Unconfirmed()
    publish(progress, unconfirmed, [2, 3, 5, 6])  # tags 1..4
    apply(progress, unconfirmed, 3, multiple=False, ack=True)
    apply(progress, unconfirmed, 4, multiple=False, ack=True)
    assert progress.line == 0 and progress.backlog == 4
    apply(progress, unconfirmed, 1, multiple=False, ack=True)
    assert progress.line == 2 and progress.backlog == 3
    apply(progress, unconfirmed, 2, multiple=False, ack=True)
    assert progress.line == 6 and progress.complete


def test_multiple_ack_covers_every_outstanding_tag_up_to_its_own():
    progress, unconfirmed = FileProgress(), Unconfirmed()
    publish(progress, unconfirmed, [2, 3, 4, 5, 6])
    apply(progress, unconfirmed, 2, multiple=False, ack=True)
    assert apply(progress, unconfirmed, 4, multiple=True, ack=True) == []
    assert progress.line == 5 and len(unconfirmed) == 1
    apply(progress, unconfirmed, 5, multiple=True, ack=True)
    assert progress.line == 6 and len(unconfirmed) == 0


def test_a_multiple_nack_is_not_an_ack():
    progress, unconfirmed = FileProgress(), Unconfirmed()
    publish(progress, unconfirmed, [10, 11, 12, 13])
    refused = apply(progress, unconfirmed, 3, multiple=True, ack=False)
    assert [entry.line for entry in refused] == [10, 11, 12]
    assert progress.line == 0 and progress.backlog == 4
    apply(progress, unconfirmed, 4, multiple=False, ack=True)
    assert progress.line == 0  # 13 is safe, but 10..12 are not yet

    for entry in refused:  # sent again on the same channel: tags 5, 6, 7
        unconfirmed.add(entry)
    apply(progress, unconfirmed, 7, multiple=True, ack=True)
    assert progress.line == 13 and progress.complete


def test_an_ack_after_a_return_does_not_settle_the_returned_message():
    progress, unconfirmed = FileProgress(), Unconfirmed()
    publish(progress, unconfirmed, [2, 3, 4])
    returned = unconfirmed.mark_returned(lambda entry: entry.line == 3)
    assert returned is not None and returned.line == 3
    refused = apply(progress, unconfirmed, 3, multiple=True, ack=True)
    assert [entry.line for entry in refused] == [3]
    assert progress.line == 2 and progress.backlog == 2


def test_unknown_or_repeated_tags_change_nothing():
    progress, unconfirmed = FileProgress(), Unconfirmed()
    publish(progress, unconfirmed, [2])
    assert unconfirmed.confirm(7, multiple=False, ack=True) == ([], [])
    apply(progress, unconfirmed, 1, multiple=False, ack=True)
    assert unconfirmed.confirm(1, multiple=False, ack=True) == ([], [])
    assert progress.line == 2


def test_drain_gives_everything_unconfirmed_in_publish_order_for_a_new_channel():
    progress, unconfirmed = FileProgress(), Unconfirmed()
    publish(progress, unconfirmed, [2, 3, 4, 5])
    apply(progress, unconfirmed, 2, multiple=False, ack=True)
    unconfirmed.mark_returned(lambda entry: entry.line == 4)
    assert [entry.line for entry in unconfirmed.drain()] == [2, 4, 5]
    fresh = Unconfirmed()
    assert fresh.add(object()) == 1  # a new channel numbers from 1 again


def test_rejected_rows_move_the_prefix_with_the_reject_file_size():
    progress = FileProgress()
    progress.add_settled(3, rejected_bytes=120)  # nothing in flight: safe at once
    assert (progress.line, progress.rejected_bytes) == (3, 120)
    record = progress.add(4, rejected_bytes=120)
    progress.add_settled(5, rejected_bytes=200)
    assert (progress.line, progress.rejected_bytes) == (3, 120)  # line 5 waits behind line 4
    progress.settle(record)
    assert (progress.line, progress.rejected_bytes, progress.complete) == (5, 200, True)
    assert progress.advanced == 3


def test_checkpoint_survives_a_round_trip_and_is_hidden(tmp_path):
    source = tmp_path / "bounces-1.csv"
    source.write_text("type\n")
    save_checkpoint(source, Checkpoint(line=41, rejected_bytes=99, size=5))
    path = checkpoint_path(source)
    assert path.name.startswith(".") and not path.name.endswith(".csv")
    assert load_checkpoint(source, size=5) == Checkpoint(41, 99, 5)
    assert {p.name for p in tmp_path.iterdir()} == {path.name, source.name}  # no temporary file left
    remove_checkpoint(source)
    assert load_checkpoint(source, size=5) is None


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"line": "x"}', b"[]"])
def test_an_unreadable_checkpoint_means_start_from_the_top(tmp_path, content):
    source = tmp_path / "b.csv"
    checkpoint_path(source).write_bytes(content)
    assert load_checkpoint(source, size=0) is None


def test_a_checkpoint_for_a_file_of_another_size_is_ignored(tmp_path):
    source = tmp_path / "b.csv"
    save_checkpoint(source, Checkpoint(line=10, rejected_bytes=0, size=1000))
    assert load_checkpoint(source, size=999) is None


def test_orphaned_checkpoints_are_those_whose_file_is_gone_and_leftover_temporaries(tmp_path):
    kept, gone = tmp_path / "a.csv", tmp_path / "b.csv"
    kept.write_text("")
    for source in (kept, gone):
        save_checkpoint(source, Checkpoint(1, 0, 0))
    leftover = checkpoint_path(kept).with_name(checkpoint_path(kept).name + ".tmp")  # a crash mid-write
    leftover.write_bytes(b"{")
    assert orphaned_checkpoints(tmp_path) == sorted([leftover, checkpoint_path(gone)])


def test_a_checkpoint_is_never_written_through_a_symbolic_link(link_target):
    victim, spool = link_target.victim, link_target.spool
    source = spool / "b-1.csv"
    path = checkpoint_path(source)
    path.with_name(path.name + ".tmp").symlink_to(victim)
    save_checkpoint(source, Checkpoint(line=3, rejected_bytes=0, size=10))
    assert victim.read_text() == "precious"
    assert not path.is_symlink() and load_checkpoint(source, 10) == Checkpoint(line=3, rejected_bytes=0, size=10)
