"""Replay without a broker: the loop guard, the headers a replay writes, pacing, and the order
publish-confirm-remove; and export/import's rules against losing or doubling a message."""

from __future__ import annotations

import threading

import pytest
from pmtabounce.common.topology import H_DEAD_AT, H_ERROR, H_HISTORY, H_REASON, H_REPLAYS, H_WORKER

from pmtabounce.dlq.message import DeadLetterMessage
from pmtabounce.dlq.replay import MAX_HISTORY, Pacer, ReplayRun, parse_rate, plan_replay, replay_properties
from pmtabounce.dlq.session import PublishRefused
from pmtabounce.dlq.transfer import export_letters, import_letters

X_DEATH = [{"reason": "rejected", "queue": "pmtabounce.bounces", "count": 1}]


def dead(n: int = 0, replays: int = 0, body: bytes | None = None) -> DeadLetterMessage:
    headers = {H_REASON: "the database refused it", H_ERROR: "database_refused", H_DEAD_AT: 1_700_000_000,
               H_WORKER: "w:1", "x-death": X_DEATH, "x-delivery-count": 5, "x-pmtabounce-file": "a.csv"}
    if replays:
        headers[H_REPLAYS] = replays
    return DeadLetterMessage(body or f"body {n}".encode(), {"message_id": f"id-{n}", "content_type": "application/json",
                                                     "headers": headers}, tag=n + 1)


class FakeQueue:
    """Records what a run asks of the dead-letter queue, in order; can refuse the n-th publish."""

    def __init__(self, refuse_at: int | None = None, stop: threading.Event | None = None, stop_after: int = 0):
        self.events: list[tuple] = []
        self.refuse_at = refuse_at
        self.stop, self.stop_after = stop, stop_after
        self.slept: list[float] = []

    def publish(self, exchange: str, body: bytes, properties: dict) -> None:
        if len([e for e in self.events if e[0] == "publish"]) == self.refuse_at:
            raise PublishRefused("nacked")
        self.events.append(("publish", exchange, body, properties))

    def remove(self, letter: DeadLetterMessage) -> None:
        self.events.append(("remove", letter.tag))
        if self.stop is not None and len([e for e in self.events if e[0] == "remove"]) == self.stop_after:
            self.stop.set()

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def test_the_loop_guard_refuses_what_was_replayed_max_times_unless_forced():
    letters = [dead(0, replays=0), dead(1, replays=2), dead(2, replays=3), dead(3, replays=7)]
    plan = plan_replay(letters, max_replays=3)
    assert ([x.id for x in plan.replay], [x.id for x in plan.refused]) == (["id-0", "id-1"], ["id-2", "id-3"])
    assert len(plan_replay(letters, max_replays=3, force=True).replay) == 4
    assert plan_replay(letters, max_replays=0).replay == []


def test_a_replay_moves_our_verdict_into_history_and_counts_itself():
    letter = dead(replays=1)
    properties = replay_properties(letter, now=1_700_000_100, by="ops@host")
    headers = properties["headers"]
    assert not {H_REASON, H_ERROR, H_DEAD_AT, H_WORKER, "x-delivery-count"} & set(headers)
    assert headers[H_REPLAYS] == 2
    assert headers["x-death"] == X_DEATH and headers["x-pmtabounce-file"] == "a.csv"
    assert headers[H_HISTORY] == [{"error": "database_refused", "reason": "the database refused it",
                                   "dead-at": 1_700_000_000, "worker": "w:1",
                                   "replayed-at": 1_700_000_100, "replayed-by": "ops@host"}]
    assert (properties["message_id"], properties["content_type"]) == ("id-0", "application/json")
    assert letter.headers[H_REASON] == "the database refused it"  # the original is left alone


def test_history_is_newest_first_and_bounded():
    letter = dead()
    for n in range(MAX_HISTORY + 5):
        letter = DeadLetterMessage(letter.body, replay_properties(letter, now=n, by="ops@host"))
    history = letter.headers[H_HISTORY]
    assert len(history) == MAX_HISTORY and history[0]["replayed-at"] == MAX_HISTORY + 4
    assert letter.replays == MAX_HISTORY + 5


def test_each_message_is_removed_only_after_its_publish_returned():
    queue = FakeQueue()
    run = ReplayRun(queue, "work", "ops@host")
    assert run.run([dead(0), dead(1)], threading.Event())
    assert [e[0] for e in queue.events] == ["publish", "remove", "publish", "remove"]
    assert [e[1] for e in queue.events if e[0] == "remove"] == [1, 2]
    assert [e[2] for e in queue.events if e[0] == "publish"] == [b"body 0", b"body 1"]


def test_a_refused_publish_removes_nothing_more():
    queue = FakeQueue(refuse_at=1)
    run = ReplayRun(queue, "work", "ops@host")
    with pytest.raises(PublishRefused):
        run.run([dead(0), dead(1), dead(2)], threading.Event())
    assert [e for e in queue.events if e[0] == "remove"] == [("remove", 1)]
    assert [x.id for x in run.done] == ["id-0"]


def test_a_stop_request_ends_the_run_between_two_messages():
    stop = threading.Event()
    queue = FakeQueue(stop=stop, stop_after=2)
    run = ReplayRun(queue, "work", "ops@host")
    assert run.run([dead(n) for n in range(5)], stop) is False
    assert [e[0] for e in queue.events] == ["publish", "remove"] * 2


def test_the_pacer_spaces_messages_evenly():
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(4.0, sleep, clock=lambda: now[0])
    for _ in range(3):
        pacer.wait()
    now[0] += 1.0  # a slow publish uses up the wait
    pacer.wait()
    assert slept == [0.25, 0.25]
    Pacer(None, sleep).wait()
    assert len(slept) == 2


@pytest.mark.parametrize("text, rate", [("5", 5.0), ("5/s", 5.0), ("120/m", 2.0), ("0.5", 0.5), ("3600/h", 1.0)])
def test_rates(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["0", "-1", "fast", "5/d", "inf", ""])
def test_bad_rates(text):
    with pytest.raises(ValueError, match="5/s"):
        parse_rate(text)


class RecordingWriter:
    def __init__(self, events: list) -> None:
        self.events = events

    def write(self, letter: DeadLetterMessage, queue: str) -> None:
        self.events.append(("write", letter.tag))

    def sync(self) -> None:
        self.events.append(("sync",))


def test_export_take_removes_each_message_only_after_its_line_is_synced(monkeypatch):
    monkeypatch.setattr("pmtabounce.dlq.transfer.SYNC_EVERY", 2)
    queue = FakeQueue()
    events = queue.events
    assert export_letters(queue, [dead(n) for n in range(3)], RecordingWriter(events), "dlq", take=True) == 3
    assert events == [("write", 1), ("write", 2), ("sync",), ("remove", 1), ("remove", 2),
                      ("write", 3), ("sync",), ("remove", 3)]


def test_export_without_take_removes_nothing():
    queue = FakeQueue()
    export_letters(queue, [dead(n) for n in range(3)], RecordingWriter(queue.events), "dlq", take=False)
    assert not [e for e in queue.events if e[0] == "remove"]


def test_import_adds_only_the_copies_the_queue_lacks():
    a, b = dead(0), dead(1)
    queue = FakeQueue()
    result = import_letters(queue, [a, a, b, dead(0, body=b"other body")], present=[a], exchange="dead")
    assert (result.published, result.already_there) == (3, 1)
    published = [(e[2], e[3]["message_id"]) for e in queue.events]
    assert published == [(b"body 0", "id-0"), (b"body 1", "id-1"), (b"other body", "id-0")]
    assert all("x-delivery-count" not in e[3]["headers"] for e in queue.events)
