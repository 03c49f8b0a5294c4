"""The decision stream's pure parts (common/events.py): routing keys, stable ids, the CloudEvents envelope,
the backoff; and which outcomes make which outbox rows (store/events.py, with a recording cursor)."""

from __future__ import annotations

import json
import threading
import uuid
from contextlib import contextmanager

import pytest
from pmtabounce.common.events import bounce_key, envelope, event_id, retry_delay, routing_key_of
from pmtabounce.common.record import BounceRecord
from pmtabounce.store.db import Tables
from pmtabounce.store.effects import Effects
from pmtabounce.store.events import Events
from pmtabounce.store.rows import Outcome


@pytest.mark.parametrize(("decision", "outcome", "key"), [
    ("hard", "disabled", "bounce.hard.disabled"),
    ("soft", "disabled", "bounce.soft.disabled"),
    ("soft", "applied", "bounce.soft.recorded"),
    ("ignore", "applied", "bounce.ignore.recorded"),
    ("hard", "held", "bounce.hard.held"),
    ("hard", "not_found", None),
    ("hard", "already_bounced", None),
    ("hard", "unroutable", None),
    ("hard", "duplicate", None),
])
def test_only_an_outcome_that_changed_iem_or_the_guard_has_a_routing_key(decision, outcome, key):
    assert bounce_key(decision, outcome) == key


def test_an_event_id_is_a_uuid_that_repeats_for_the_same_parts_only():
    first = event_id("f" * 32, "bounce.hard.disabled")
    assert first == event_id("f" * 32, "bounce.hard.disabled")
    assert str(uuid.UUID(first)) == first
    assert first != event_id("f" * 32, "bounce.soft.disabled")
    assert event_id("a", "bc") != event_id("ab", "c")  # the parts are separated, not glued


def test_the_envelope_is_cloudevents_1_0_structured_json():
    body = envelope("guard.tripped", "id-1", {"domain": "example.org"}, 1732010733.5, "example.org")
    assert json.loads(body) == {
        "specversion": "1.0", "id": "id-1", "source": "/pmtabounce", "type": "org.pmtabounce.guard.tripped",
        "time": "2024-11-19T10:05:33.500000Z", "datacontenttype": "application/json",
        "dataschema": "urn:pmtabounce:events:1", "subject": "example.org", "data": {"domain": "example.org"}}
    assert routing_key_of(body) == "guard.tripped"


def test_the_backoff_doubles_from_one_second_up_to_its_cap():
    assert [retry_delay(n, 10) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


class RecordingCursor:
    """Answers nothing, keeps every statement: for the rows Events would insert."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.connection = type("Connection", (), {"server_status": 0})()

    def execute(self, sql, params=None):
        self.statements.append(sql)

    def fetchone(self):
        return (0,)

    def fetchall(self):
        return []


def hard(email: str = "ann@example.com") -> BounceRecord:
    return BounceRecord("b", 1732010733, email, "5.1.1", "smtp;550", "bad-mailbox", (3,), 42)


def test_a_batch_writes_one_insert_with_a_row_per_decision_and_none_for_what_changed_nothing():
    cursor = RecordingCursor()
    events = Events(Tables(), stream=True, webhooks=False)
    events.for_outcomes(cursor, [
        Outcome(hard(), "disabled", "hard", 7, 3, Effects(disabled=(7, 3, 1732010733))),
        Outcome(hard("bob@example.com"), "not_found", "hard"),
    ])
    [insert] = cursor.statements
    assert insert.startswith("INSERT INTO `email_pmtabounce_outbox`") and insert.count("'stream'") == 1
    assert "bounce.hard.disabled" in insert and "bob@example.com" not in insert


def test_with_both_off_nothing_is_read_or_written():
    cursor = RecordingCursor()
    Events(Tables(), stream=False, webhooks=False).for_outcomes(
        cursor, [Outcome(hard(), "disabled", "hard", 7, 3, Effects(disabled=(7, 3, 1732010733)))])
    assert cursor.statements == []


def test_webhooks_on_an_iem_without_webhook_tables_ask_once_per_connection():
    cursor = RecordingCursor()  # answers 0 tables
    events = Events(Tables(), stream=False, webhooks=True)
    disabled = [Outcome(hard(), "disabled", "hard", 7, 3, Effects(disabled=(7, 3, 1732010733)))]
    events.for_outcomes(cursor, disabled)
    events.for_outcomes(cursor, disabled)
    assert len(cursor.statements) == 1 and "information_schema" in cursor.statements[0]
    events.forget()
    events.for_outcomes(cursor, disabled)
    assert len(cursor.statements) == 2


def _relay_with_pace(monkeypatch, hold: float, due: list[int] | None = None):
    """A worker's relay (worker/relay.py) whose chunks are only timed: (relay, its Pace, the chunks' times).
    `due`: what each chunk handles in turn (0: nothing was due), 0 once it runs out."""
    import time

    from pmtabounce.common.config import Settings
    from pmtabounce.worker import relay as relay_module

    settings = Settings.from_env({"PMTABOUNCE_MYSQL_URL": "mysql://nobody@127.0.0.1:9/none",
                                  "PMTABOUNCE_WEBHOOKS": "on", "PMTABOUNCE_EVENT_HOLD": str(hold)})
    relay = relay_module.Relay(settings)
    relay.pace = relay_module.Pace()
    chunks: list[float] = []
    handled = list(reversed(due or []))

    def once() -> int:
        chunks.append(time.monotonic())
        if handled:
            time.sleep(0.01)  # a chunk sent
            return handled.pop()
        return 0

    monkeypatch.setattr(relay, "once", once)
    monkeypatch.setattr(relay, "close", lambda: None)
    relay.gauges_read = 0

    def gauges() -> None:
        relay.gauges_read += 1

    monkeypatch.setattr(relay, "_gauges", gauges)
    monkeypatch.setattr(relay_module, "IDLE_SECONDS", 0.05)
    monkeypatch.setattr(relay_module, "GIVE_WAY_SECONDS", 0.6)
    return relay, relay.pace, chunks


@contextmanager
def _running(relay):
    """The relay's thread, running for the block; then told to stop (its worker between batches)."""
    stopping = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stopping,), daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        stopping.set()
        relay.pace.batch_ended()
        thread.join(5)


def _one_batch(pace) -> None:
    """The worker applied a batch: bounces flow."""
    pace.batch_started()
    pace.batch_ended()


def test_a_workers_relay_thread_gives_way_to_the_batch_in_hand(monkeypatch):
    # worker/relay.py Relay._give_way: while its worker applies a batch the relay sends nothing; once the batch
    # is committed it sends; a batch that never ends holds it GIVE_WAY_SECONDS.
    import time

    relay, pace, chunks = _relay_with_pace(monkeypatch, hold=0)  # only the batch in hand holds it
    pace.batch_started()
    started = time.monotonic()
    with _running(relay):
        time.sleep(0.3)
        assert chunks == []  # the batch in hand comes first
        time.sleep(0.6)
        assert len(chunks) == 1 and chunks[0] - started >= 0.55  # a batch that does not end: one chunk anyway
        pace.batch_ended()
        time.sleep(0.3)
        assert len(chunks) >= 4  # between batches: chunk after chunk (an idle relay looks every IDLE_SECONDS)


def test_a_workers_relay_holds_its_events_while_bounces_flow_for_at_most_the_hold(monkeypatch):
    # Pace.busy_since: the worker's run of batches began. The relay sends nothing, between batches too (the
    # worker waiting for its next messages), until no message has come for QUIET_SECONDS or
    # PMTABOUNCE_EVENT_HOLD seconds have passed since it began holding.
    import time

    relay, pace, chunks = _relay_with_pace(monkeypatch, hold=0.8)
    _one_batch(pace)
    started = time.monotonic()
    with _running(relay) as thread:
        for _ in range(3):  # batch after batch
            time.sleep(0.15)
            _one_batch(pace)
        time.sleep(0.1)
        assert chunks == []  # between batches, but bounces flow: held
        time.sleep(0.6)
        assert chunks and chunks[0] - started >= 0.75  # held no longer than the hold

    relay, pace, chunks = _relay_with_pace(monkeypatch, hold=30)
    _one_batch(pace)
    with _running(relay) as thread:
        time.sleep(0.3)
        assert chunks == []
        pace.quiet()  # the bounces stopped flowing: the events go at once
        time.sleep(0.3)
        assert chunks
        _one_batch(pace)  # a new run of batches holds them again: nothing was due, the hold starts afresh
        time.sleep(0.1)
        sent = len(chunks)
        time.sleep(0.6)
        assert len(chunks) == sent  # held again, well within the new hold
        assert relay.gauges_read >= 2  # /metrics kept fresh while holding (every GAUGES_SECONDS)
    assert not thread.is_alive()  # a relay holding its events still stops when told


def test_a_hold_starts_afresh_once_nothing_was_due(monkeypatch):
    # The hold of one flow has run out and the relay found nothing due: the next flow is held again, for a
    # whole hold of its own.
    import time

    relay, pace, chunks = _relay_with_pace(monkeypatch, hold=0.6)
    _one_batch(pace)
    with _running(relay):
        time.sleep(0.9)
        assert chunks  # the hold ran out while the flow went on: sent (nothing was due)
        pace.quiet()
        time.sleep(0.2)
        _one_batch(pace)  # the next flow
        time.sleep(0.1)
        sent = len(chunks)
        time.sleep(0.3)
        assert len(chunks) == sent  # held again
        time.sleep(0.6)
        assert len(chunks) > sent  # for one hold


def test_a_pause_between_two_bursts_does_not_start_the_hold_again(monkeypatch):
    # Bursts of bounces with short pauses between them: in a pause the relay sends what it can, but while
    # events are still due the hold keeps its start, so no event waits for the pauses alone.
    import time

    relay, pace, chunks = _relay_with_pace(monkeypatch, hold=0.8, due=[20] * 1000)
    pace.batch_started()
    started = time.monotonic()
    with _running(relay):
        time.sleep(0.3)
        assert chunks == []
        pace.batch_ended()
        pace.quiet()  # a pause: the events go
        time.sleep(0.1)
        assert chunks
        _one_batch(pace)  # the next burst, with events still due
        sent = len(chunks)
        time.sleep(0.25)
        assert len(chunks) <= sent + 1  # held again (at most the chunk in hand)
        time.sleep(0.45)
        assert len(chunks) > sent + 1  # 0.8 s after the hold began, not after the new burst began
        assert chunks[-1] - started < 1.3


def test_finish_waits_for_a_pass_begun_after_it_and_gives_way_to_a_stop_request(monkeypatch):
    # Relay.finish (a worker exiting when idle): a pass that began before the worker's last commit may have
    # missed its events, so its "nothing due" does not count; and a stop request ends the wait at once.
    import time

    relay, pace, chunks = _relay_with_pace(monkeypatch, hold=0)
    in_pass, release = threading.Event(), threading.Event()

    def slow_once() -> int:  # a pass whose claim straddles the worker's last commit
        chunks.append(time.monotonic())
        if len(chunks) == 1:
            in_pass.set()
            release.wait(5)
        return 0

    monkeypatch.setattr(relay, "once", slow_once)
    never = threading.Event()
    with _running(relay) as thread:
        relay.thread = thread
        assert in_pass.wait(5)
        threading.Timer(0.2, release.set).start()
        asked = time.monotonic()
        assert relay.finish(5, never)
        assert len(chunks) >= 2 and chunks[-1] >= asked  # answered by a pass begun after it was asked

        stopping = threading.Event()
        monkeypatch.setattr(relay, "once", lambda: time.sleep(0.05) or 20)  # always more due
        threading.Timer(0.3, stopping.set).start()
        asked = time.monotonic()
        assert not relay.finish(30, stopping)
        assert time.monotonic() - asked < 1


def test_a_hold_of_0_never_holds_the_events(monkeypatch):
    import time

    relay, pace, chunks = _relay_with_pace(monkeypatch, hold=0)
    _one_batch(pace)
    with _running(relay):
        time.sleep(0.3)
        assert len(chunks) >= 2
