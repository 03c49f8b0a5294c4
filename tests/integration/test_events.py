"""Issue 18: IEM's list webhooks and the decision stream, sent from the outbox after commit, never lost.

A real HTTP receiver on loopback (tests/webhook_receiver.py) and real `pmtabounce` processes; the
expected bytes are written out here from iem-webhooks.md, not computed by the code under test.
"""

from __future__ import annotations

import subprocess

from conftest import drop_database, make_database
from iem_seed import Seed, bounce
from storm_world import command, json_of, pmtabounce
from webhook_receiver import WebhookReceiver
from webhook_world import (
    BOUNCE,
    BOUNCE_BODY,
    BOUNCE_PAYLOAD,
    SUBSCRIBE,
    UNSUBSCRIBE,
    UNSUBSCRIBE_BODY,
    UNSUBSCRIBE_PAYLOAD,
    bodies,
    logmsg,
    outbox_rows,
    records,
    request,
    webhook_logs,
    world,
)
from worker_fleet import wait_for


def test_a_disable_and_an_unsubscribe_call_the_lists_webhooks_with_iems_bytes_and_log_rows(iem_db, tmp_path):
    receiver = WebhookReceiver().up()
    world(iem_db, receiver)

    pmtabounce(iem_db, "process", str(records(tmp_path)), webhooks="on")

    assert receiver.requests == [request(BOUNCE_BODY, receiver.port), request(UNSUBSCRIBE_BODY, receiver.port)]
    assert webhook_logs(iem_db) == [(BOUNCE, logmsg(receiver.url(), BOUNCE_PAYLOAD), "ok"),
                                    (UNSUBSCRIBE, logmsg(receiver.url(), UNSUBSCRIBE_PAYLOAD), "ok")]
    assert [row[2:] for row in outbox_rows(iem_db)] == [("Bounce", receiver.url(), "sent", 1),
                                                        ("Unsubscribe", receiver.url(), "sent", 1)]


def test_an_iem_without_webhook_tables_sends_nothing_and_fails_nothing(tmp_path):
    db = make_database(webhooks=False)
    try:
        Seed(db).lists(3, 4)
        Seed(db).subscriber("ann@example.com", 3)

        done = pmtabounce(db, "process", str(records(tmp_path)), "--json", webhooks="on")

        assert json_of(done)["disabled"] == 1
        assert outbox_rows(db) == []
    finally:
        drop_database(db)


def test_a_receiver_down_gets_every_call_once_it_is_back_with_the_same_ids(iem_db, tmp_path):
    receiver = WebhookReceiver().up()
    world(iem_db, receiver)
    receiver.down()

    pmtabounce(iem_db, "process", str(records(tmp_path)), "--send-events", "5", webhooks="on",
               event_retry_max_wait="1", webhook_attempts="100")  # enough attempts that none is parked
    waiting = outbox_rows(iem_db)
    # Both wait, neither lost nor parked; the first was tried. The second may not have been: a call behind one
    # its receiver did not answer is put back untried (worker/relay.py), which timing decides here.
    assert [row[4] for row in waiting] == ["waiting", "waiting"] and waiting[0][5] >= 1
    assert {row[2] for row in webhook_logs(iem_db)} == {"0"}  # IEM logs a call with no answer as '0'

    receiver.up()
    pmtabounce(iem_db, "relay", "--once", "10", webhooks="on")

    assert bodies(receiver) == [BOUNCE_BODY, UNSUBSCRIBE_BODY]
    sent = outbox_rows(iem_db)
    assert [row[:2] for row in sent] == [row[:2] for row in waiting]  # the same rows, the same event ids
    assert [row[4] for row in sent] == ["sent", "sent"]
    assert webhook_logs(iem_db)[-2:] == [(BOUNCE, logmsg(receiver.url(), BOUNCE_PAYLOAD), "ok"),
                                         (UNSUBSCRIBE, logmsg(receiver.url(), UNSUBSCRIBE_PAYLOAD), "ok")]
    [record] = [r for r in json_of(pmtabounce(iem_db, "explain", "ann@example.com", "--json"))["records"]]
    [call] = record["events"]
    assert (call["event"], call["url"], call["state"]) == ("Bounce", receiver.url(), "sent")
    assert [(t["status"], t["answer"]) for t in call["tries"]][-1] == (200, "ok")
    assert all(t["status"] is None and t["answer"] for t in call["tries"][:-1]) and len(call["tries"]) >= 2
    text = pmtabounce(iem_db, "explain", "ann@example.com").stdout
    assert f"event Bounce -> webhook {receiver.url()}: sent" in text and "no answer" in text and "HTTP 200 'ok'" in text
    report = json_of(pmtabounce(iem_db, "status", "--json", check=False))
    tried_before = sum(1 for row in waiting if row[5] >= 1)  # the calls sent only after a failed try
    assert report["ledger"]["events_last_hour"]["webhook"] == {"waiting": 0, "parked": 0, "sent": 2,
                                                               "retried": tried_before}


def test_parked_calls_are_listed_and_can_be_sent_again(iem_db, tmp_path):
    receiver = WebhookReceiver().up()
    world(iem_db, receiver)
    receiver.answer(500, b"broken")

    pmtabounce(iem_db, "process", str(records(tmp_path)), webhooks="on", webhook_attempts="1")

    parked = json_of(pmtabounce(iem_db, "webhooks", "list", "--json"))["rows"]
    assert [(r["event"], r["url"], r["attempts"], r["last_answer"]) for r in parked] == [
        ("Bounce", receiver.url(), 1, "HTTP 500"), ("Unsubscribe", receiver.url(), 1, "HTTP 500")]
    assert [row[2] for row in webhook_logs(iem_db)] == ["broken", "broken"]  # a 500's body is logged too

    receiver.answer()
    pmtabounce(iem_db, "webhooks", "retry", "--id", str(parked[0]["id"]))
    pmtabounce(iem_db, "relay", "--once", "10", webhooks="on")

    assert bodies(receiver) == [BOUNCE_BODY, UNSUBSCRIBE_BODY, BOUNCE_BODY]
    assert [row[4] for row in outbox_rows(iem_db)] == ["sent", "parked"]
    pmtabounce(iem_db, "webhooks", "drop", "--all", "--yes")
    assert json_of(pmtabounce(iem_db, "webhooks", "list", "--json"))["rows"] == []
    assert [row[4] for row in outbox_rows(iem_db)] == ["sent", "dropped"]


def test_undo_sends_iems_subscribe_webhook_with_the_custom_fields(iem_db, tmp_path):
    receiver = WebhookReceiver().up()
    ids = world(iem_db, receiver)
    seed = Seed(iem_db)
    seed.field_data(ids["ann"], seed.custom_field("Zeta", 3), "z/ü")  # with data: first, in subscribers_data's order
    seed.custom_field("Alpha", 3)  # without: after, as ""
    seed.field_data(ids["ann"], seed.custom_field("Other list", 4), "not shown")
    pmtabounce(iem_db, "process", str(records(tmp_path)), webhooks="on")
    receiver.requests.clear()

    pmtabounce(iem_db, "undo", "--email", "ann@example.com", "--yes", webhooks="on")
    pmtabounce(iem_db, "relay", "--once", "10", webhooks="on")

    body = (b'{"event":"Subscribe","listname":"Kunden\\/\\u00c4","emailaddress":"Ann@Example.com","confirmed":"1",'
            b'"confirmdate":"0","customfields":{"Zeta":"z\\/\\u00fc","Alpha":""}}')
    assert receiver.requests == [request(body, receiver.port, b"/subscribe")]
    payload = ('a:6:{s:5:"event";s:9:"Subscribe";s:8:"listname";s:9:"Kunden/Ä";s:12:"emailaddress";'
               's:15:"Ann@Example.com";s:9:"confirmed";s:1:"1";s:11:"confirmdate";s:1:"0";s:12:"customfields";'
               'a:2:{s:4:"Zeta";s:4:"z/ü";s:5:"Alpha";s:0:"";}}')
    assert webhook_logs(iem_db)[-1] == (SUBSCRIBE, logmsg(receiver.url("/subscribe"), payload), "ok")


def test_a_rolled_back_batch_sends_nothing(iem_db, tmp_path, monkeypatch):
    from pmtabounce.common.errors import FatalError
    from pmtabounce.store import events as store_events
    from pmtabounce.worker.apply import BatchApplier

    receiver = WebhookReceiver().up()
    world(iem_db, receiver)
    settings = iem_db.settings()
    applier = BatchApplier(settings.mysql, iem_db.tables, settings.policy,
                           events=store_events.from_settings(settings, iem_db.tables))
    monkeypatch.setattr(BatchApplier, "_write_shared_counters",
                        lambda self, cursor, plan: (_ for _ in ()).throw(FatalError("stopped before commit")))
    record = bounce("hard", "ann@example.com", (3,))
    try:
        applier.apply([record])
    except FatalError:
        pass
    assert iem_db.query("SELECT COUNT(*) FROM {t.ledger}") == [(0,)]
    pmtabounce(iem_db, "relay", "--once", "5", webhooks="on")
    assert outbox_rows(iem_db) == [] and receiver.requests == []

    monkeypatch.undo()  # the same batch again, committed this time: its events once, none of the rolled-back try
    applier.apply([record])
    applier.close()
    pmtabounce(iem_db, "relay", "--once", "5", webhooks="on")
    assert [row[2:] for row in outbox_rows(iem_db)] == [("Bounce", receiver.url(), "sent", 1)]
    assert bodies(receiver) == [BOUNCE_BODY]


def test_a_kill_between_commit_and_send_loses_nothing(iem_db, tmp_path):
    receiver = WebhookReceiver().up()
    world(iem_db, receiver)
    receiver.hang()
    argv, env = command(iem_db, "process", str(records(tmp_path)), webhooks="on", webhook_timeout="1")
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: len(receiver.requests) == 1, "the first call, held by the receiver")
    process.kill()  # committed, the call in hand unanswered: its claim's lease runs out, then it is sent again
    process.wait()
    assert [row[4] for row in outbox_rows(iem_db)] == ["waiting", "waiting"]

    receiver.answer()
    wait_for(lambda: _relay_once(iem_db) and len(receiver.requests) == 3, "every call once the lease ran out")

    assert bodies(receiver) == [BOUNCE_BODY, BOUNCE_BODY, UNSUBSCRIBE_BODY]
    assert [row[4] for row in outbox_rows(iem_db)] == ["sent", "sent"]


def _relay_once(db) -> bool:
    pmtabounce(db, "relay", "--once", "3", webhooks="on")
    return True


def test_explain_keeps_every_try_of_a_call_sent_again_after_it_was_parked(iem_db, tmp_path):
    # `webhooks retry` starts a fresh count of tries; the tries made before it are still history for `explain`.
    receiver = WebhookReceiver().up()
    world(iem_db, receiver)
    receiver.answer(500, b"broken")
    pmtabounce(iem_db, "process", str(records(tmp_path)), webhooks="on", webhook_attempts="1")
    [parked, _] = json_of(pmtabounce(iem_db, "webhooks", "list", "--json"))["rows"]

    receiver.answer()
    pmtabounce(iem_db, "webhooks", "retry", "--id", str(parked["id"]))
    pmtabounce(iem_db, "relay", "--once", "10", webhooks="on")

    [record] = json_of(pmtabounce(iem_db, "explain", "ann@example.com", "--json"))["records"]
    [call] = record["events"]
    assert [(t["status"], t["answer"]) for t in call["tries"]] == [(500, "broken"), (200, "ok")]
    assert call["tries"][0]["at"] <= call["tries"][1]["at"]
    assert [row[2] for row in webhook_logs(iem_db)] == ["broken", "broken", "ok"]  # one log row per try, as before


def test_a_hanging_receiver_costs_one_timeout_per_retry_and_does_not_hold_the_other_receivers(iem_db):
    # 25 calls to a receiver that never answers, older than 3 calls to one that does. Trying each of the
    # hanging one's calls would cost a timeout each; one is tried, and all 25 wait for its retry.
    from dataclasses import replace

    from pmtabounce.store import outbox
    from pmtabounce.worker.relay import Relay

    hanging, healthy = WebhookReceiver().up(), WebhookReceiver().up()
    hanging.hang()
    def call(ident: str, n: int, url: str) -> outbox.Delivery:
        return outbox.Delivery(ident, "webhook", "Bounce", f'{{"n":{n}}}', webhook_event=BOUNCE, url=url)

    rows = [call(f"h{n}", n, hanging.url()) for n in range(25)] + [call(f"k{n}", n, healthy.url()) for n in range(3)]
    connection = iem_db.connect()
    with connection.cursor() as cursor:
        outbox.add(cursor, iem_db.tables, rows)
    connection.commit()
    connection.close()
    relay = Relay(replace(iem_db.settings(), webhook_timeout=2.0))  # ample for the healthy one under load
    try:
        relay.once()  # the 20 oldest, all the hanging receiver's
        assert len(hanging.requests) == 1  # no answer: all its other calls wait with it, untried
        relay.once()  # the healthy receiver's 3; the hanging one's wait for the retry
        assert len(healthy.requests) == 3 and len(hanging.requests) == 1
    finally:
        relay.close()
        hanging.down()
    states = iem_db.query("SELECT url, state, attempts FROM {t.outbox} ORDER BY id")
    tried, untried = (hanging.url(), "waiting", 1), (hanging.url(), "waiting", 0)
    assert states[:25] == [tried] + [untried] * 24
    assert states[25:] == [(healthy.url(), "sent", 1)] * 3
    assert [row[0] for row in webhook_logs(iem_db)] == [BOUNCE] * 4  # a log row per try, none for an untried call
    due = [row[0] for row in iem_db.query("SELECT due_at FROM {t.outbox} ORDER BY id LIMIT 25")]
    assert all(abs(when - due[0]) < 0.1 for when in due)  # the untried ones due with the retry of the call tried


def test_rabbitmq_away_does_not_stop_the_webhooks(iem_db):
    # The decision stream's broker is down (nothing listens); the webhook calls due beside its events still go.
    import socket
    from dataclasses import replace

    from pmtabounce.store import outbox
    from pmtabounce.worker.relay import Relay

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    receiver = WebhookReceiver().up()
    connection = iem_db.connect()
    with connection.cursor() as cursor:
        outbox.add(cursor, iem_db.tables, [
            outbox.Delivery("s1", "stream", "bounce.hard.disabled", "{}"),
            outbox.Delivery("w1", "webhook", "Bounce", '{"n":1}', webhook_event=BOUNCE, url=receiver.url())])
    connection.commit()
    connection.close()
    settings = replace(iem_db.settings(), event_stream=True, amqp_url=f"amqp://guest:guest@127.0.0.1:{port}/%2F",
                       event_retry_max_wait=1.0)

    Relay(settings).drain(5)

    assert bodies(receiver) == [b'{"n":1}']
    assert iem_db.query("SELECT target, state FROM {t.outbox} ORDER BY id") == [("stream", "waiting"),
                                                                                ("webhook", "sent")]


def add_calls(db, urls: list[str]) -> None:
    """A Bounce webhook call (body `{}`) to each of `urls`, in that order, committed to the outbox."""
    from pmtabounce.store import outbox

    connection = db.connect()
    with connection.cursor() as cursor:
        outbox.add(cursor, db.tables, [outbox.Delivery(f"c{n}", "webhook", "Bounce", "{}", webhook_event=BOUNCE,
                                                       url=url) for n, url in enumerate(urls)])
    connection.commit()
    connection.close()


def test_each_log_row_has_the_time_of_its_own_call(iem_db):
    # IEM logs a call when it has its answer: logdate is that call's time, not the end of a relay's chunk.
    from dataclasses import replace

    from pmtabounce.worker.relay import Relay

    fast, hanging = WebhookReceiver().up(), WebhookReceiver().up()
    hanging.hang()
    add_calls(iem_db, [fast.url(), hanging.url()])
    relay = Relay(replace(iem_db.settings(), webhook_timeout=3.0))
    try:
        relay.once()
    finally:
        relay.close()
        hanging.down()
    [(fast_at,), (hanging_at,)] = iem_db.query("SELECT logdate FROM {t.webhook_logs} ORDER BY logid")
    assert hanging_at - fast_at >= 2  # the hanging call ended 3 s after the fast one


def test_a_claim_reads_the_calls_it_takes_not_every_waiting_one(iem_db):
    # store/outbox.py claim: earliest due first, then oldest, in the order of (state, target, due_at). Behind
    # 1,000 calls waiting for a retry later (a receiver down) and among 500 due, a claim of 20 reads about 20
    # index entries; ORDER BY id read and sorted every due row each time. A retry that has come due goes
    # after the new calls (due at 0), in due order.
    from pmtabounce.store import outbox

    def add(count: int, url: str) -> None:
        outbox.add(cursor, iem_db.tables, [outbox.Delivery(f"{url}{n}", "webhook", "Bounce", "{}", url=url)
                                           for n in range(count)])

    connection = iem_db.connect()
    try:
        with connection.cursor() as cursor:
            add(1000, "http://down/")
            cursor.execute(f"UPDATE {iem_db.tables.outbox} SET due_at = UNIX_TIMESTAMP() + 300")
            add(2, "http://retried/")
            cursor.execute(f"UPDATE {iem_db.tables.outbox} SET due_at = UNIX_TIMESTAMP() - 5 + id - 1001 "
                           "WHERE id > 1000")
            add(500, "http://up/")
            connection.commit()
            cursor.execute("SHOW SESSION STATUS LIKE 'Handler_read_next'")
            before = int(cursor.fetchone()[1])
            claimed = outbox.claim(cursor, iem_db.tables, ["webhook"], 20, 60.0)
            cursor.execute("SHOW SESSION STATUS LIKE 'Handler_read_next'")
            read = int(cursor.fetchone()[1]) - before
            connection.commit()
            rest = outbox.claim(cursor, iem_db.tables, ["webhook"], 1000, 60.0)
            connection.commit()
    finally:
        connection.close()
    assert [row.id for row in claimed] == list(range(1003, 1023))  # the oldest new calls, in order
    assert read < 100, read
    assert [row.id for row in rest] == [*range(1023, 1503), 1001, 1002]  # then the retries come due, in due order


def test_a_worker_stopped_while_its_relay_posts_to_a_hanging_receiver_exits_within_its_grace(iem_db, vhost, tmp_path):
    # worker/relay.py _side_by_side: the posting threads are daemons, so a SIGTERM'd worker exits after its 3 s
    # grace instead of waiting out a 20 s webhook timeout (its claimed call comes due again after the lease).
    import signal
    import sys
    import time

    from worker_fleet import add_subscribers, hard_bounces, publish, worker_env

    emails = add_subscribers(iem_db, 3)
    receiver = WebhookReceiver().up()
    receiver.hang()
    Seed(iem_db).webhook(1, BOUNCE, receiver.url())
    publish(vhost.url, vhost.topology, hard_bounces(emails))
    env = worker_env(iem_db.url, vhost.url, webhooks="on", webhook_timeout="20", guard="off")
    with open(tmp_path / "worker.log", "wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "pmtabounce", "worker"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        receiver.wait_for(1, timeout=60)
        stopped = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=60)
        took = time.monotonic() - stopped
    finally:
        if worker.poll() is None:
            worker.kill()
        receiver.down()
    assert code == 0, (tmp_path / "worker.log").read_text()
    assert took < 8, took
    assert iem_db.query("SELECT state FROM {t.outbox} WHERE target = 'webhook'") == [("waiting",)] * 3


def test_a_silent_receivers_backlog_waits_for_its_retry_and_the_others_go_on(iem_db):
    # worker/relay.py + store/outbox.py hold_url: 100 calls to a receiver that never answers, then 20 to one
    # that does. The first claim tries the silent one once (a timeout); its whole backlog then waits for that
    # call's retry, so the next claim sends the other receiver's calls, instead of 5 more timeouts first.
    from dataclasses import replace

    from pmtabounce.worker.relay import Relay

    fast, hanging = WebhookReceiver().up(), WebhookReceiver().up()
    hanging.hang()
    add_calls(iem_db, [hanging.url()] * 100 + [fast.url()] * 20)
    relay = Relay(replace(iem_db.settings(), webhook_timeout=1.0))
    try:
        relay.once()
        relay.once()
    finally:
        relay.close()
        hanging.down()
    fast.wait_for(20, timeout=5)
    assert len(hanging.requests) == 1
    assert iem_db.query("SELECT COUNT(*) FROM {t.outbox} WHERE state = 'sent'") == [(20,)]
    assert iem_db.query("SELECT attempts FROM {t.outbox} WHERE url = %s ORDER BY id LIMIT 2",
                        (hanging.url(),)) == [(1,), (0,)]  # one try counted, the rest untried
