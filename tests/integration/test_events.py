"""Issue 18: IEM's list webhooks and the decision stream, sent from the outbox after commit, never lost.

A real HTTP receiver on loopback (tests/webhook_receiver.py) and real `pmtabounce` processes; the
expected bytes are written out here from iem-webhooks.md, not computed by the code under test.
"""

from __future__ import annotations

from iem_seed import Seed
from storm_world import json_of, pmtabounce
from webhook_receiver import WebhookReceiver
from webhook_world import BOUNCE, BOUNCE_BODY, BOUNCE_PAYLOAD, UNSUBSCRIBE, UNSUBSCRIBE_BODY, UNSUBSCRIBE_PAYLOAD, \
    logmsg, outbox_rows, records, request, webhook_logs, world

def test_a_disable_and_an_unsubscribe_call_the_lists_webhooks_with_iems_bytes_and_log_rows(iem_db, tmp_path):
    receiver = WebhookReceiver()
    world(iem_db, receiver)

    pmtabounce(iem_db, "process", str(records(tmp_path)), webhooks="on")

    assert receiver.requests == [request(BOUNCE_BODY, receiver.port), request(UNSUBSCRIBE_BODY, receiver.port)]
    assert webhook_logs(iem_db) == [(BOUNCE, logmsg(receiver.url, BOUNCE_PAYLOAD), "ok"),
                                    (UNSUBSCRIBE, logmsg(receiver.url, UNSUBSCRIBE_PAYLOAD), "ok")]
    assert [row[2:] for row in outbox_rows(iem_db)] == [("Bounce", receiver.url, "sent", 1),
                                                        ("Unsubscribe", receiver.url, "sent", 1)]


def test_an_iem_without_webhook_tables_sends_nothing_and_fails_nothing(iem_db, tmp_path):
    Seed(iem_db).lists(3, 4)
    Seed(iem_db).subscriber("ann@example.com", 3)

    done = pmtabounce(iem_db, "process", str(records(tmp_path)), "--json", webhooks="on")

    assert json_of(done)["disabled"] == 1
    assert outbox_rows(iem_db) == []


def test_a_receiver_down_gets_every_call_once_it_is_back_with_the_same_ids(iem_db, tmp_path):
    receiver = WebhookReceiver()
    world(iem_db, receiver)
    receiver.down()

    pmtabounce(iem_db, "process", str(records(tmp_path)), "--send-events", "5", webhooks="on",
               event_retry_max_wait="1")
    waiting = outbox_rows(iem_db)
    assert [row[4] for row in waiting] == ["waiting", "waiting"] and all(row[5] >= 1 for row in waiting)
    assert {row[2] for row in webhook_logs(iem_db)} == {"0"}  # IEM logs a call with no answer as '0'

    receiver.up()
    pmtabounce(iem_db, "relay", "--once", "10", webhooks="on")

    assert receiver.bodies() == [BOUNCE_BODY, UNSUBSCRIBE_BODY]
    sent = outbox_rows(iem_db)
    assert [row[:2] for row in sent] == [row[:2] for row in waiting]  # the same rows, the same event ids
    assert [row[4] for row in sent] == ["sent", "sent"]
    assert webhook_logs(iem_db)[-2:] == [(BOUNCE, logmsg(receiver.url, BOUNCE_PAYLOAD), "ok"),
                                         (UNSUBSCRIBE, logmsg(receiver.url, UNSUBSCRIBE_PAYLOAD), "ok")]


def test_parked_calls_are_listed_and_can_be_sent_again(iem_db, tmp_path):
    receiver = WebhookReceiver()
    world(iem_db, receiver)
    receiver.status, receiver.answer = 500, b"broken"

    pmtabounce(iem_db, "process", str(records(tmp_path)), webhooks="on", webhook_attempts="1")

    parked = json_of(pmtabounce(iem_db, "webhooks", "list", "--json"))["rows"]
    assert [(r["event"], r["url"], r["attempts"], r["last_answer"]) for r in parked] == [
        ("Bounce", receiver.url, 1, "HTTP 500"), ("Unsubscribe", receiver.url, 1, "HTTP 500")]
    assert [row[2] for row in webhook_logs(iem_db)] == ["broken", "broken"]  # a 500's body is logged too

    receiver.status, receiver.answer = 200, b"ok"
    pmtabounce(iem_db, "webhooks", "retry", "--id", str(parked[0]["id"]))
    pmtabounce(iem_db, "relay", "--once", "10", webhooks="on")

    assert receiver.bodies() == [BOUNCE_BODY, UNSUBSCRIBE_BODY, BOUNCE_BODY]
    assert [row[4] for row in outbox_rows(iem_db)] == ["sent", "parked"]
    pmtabounce(iem_db, "webhooks", "drop", "--all", "--yes")
    assert json_of(pmtabounce(iem_db, "webhooks", "list", "--json"))["rows"] == []
    assert [row[4] for row in outbox_rows(iem_db)] == ["sent", "dropped"]
