"""Issue 18: IEM's list webhooks and the decision stream, sent from the outbox after commit, never lost.

A real HTTP receiver on loopback (tests/webhook_receiver.py) and real `pmtabounce` processes; the
expected bytes are written out here from iem-webhooks.md, not computed by the code under test.
"""

from __future__ import annotations

from iem_seed import T0, Seed, bounce, complaint, write_file
from storm_world import json_of, pmtabounce
from webhook_receiver import WebhookReceiver
from webhook_world import BOUNCE, SUBSCRIBE, UNSUBSCRIBE, add_custom_field, add_webhook, add_webhook_tables, \
    outbox_rows, webhook_logs

LIST_NAME = "Kunden/Ä"  # `/` and a non-ASCII letter: PHP writes them `\/` and `\u00c4`


def world(db, receiver: WebhookReceiver) -> dict[str, int]:
    """List 3 (named LIST_NAME) with a Bounce and an Unsubscribe webhook, an inactive one and one with no URL;
    list 4 with a Bounce webhook but only a soft bounce (fires nothing)."""
    add_webhook_tables(db)
    seed = Seed(db)
    seed.lists(3, 4)
    db.query("UPDATE {t.lists} SET name = %s WHERE listid = 3", (LIST_NAME,))
    seed.newsletter(42)
    ids = {"ann": seed.subscriber("Ann@Example.com", 3), "bob": seed.subscriber("bob@example.com", 4),
           "cat": seed.subscriber("cat@example.com", 3)}
    add_webhook(db, 3, BOUNCE, "", active=1)  # IEM stops at an empty URL; we skip it and go on
    ids["bounce_hook"] = add_webhook(db, 3, BOUNCE, receiver.url)
    add_webhook(db, 3, BOUNCE, receiver.url + "?inactive", active=0)
    ids["unsubscribe_hook"] = add_webhook(db, 3, UNSUBSCRIBE, receiver.url)
    add_webhook(db, 4, BOUNCE, receiver.url + "?list4")
    add_webhook(db, 3, SUBSCRIBE, receiver.url + "?subscribe")
    return ids


BOUNCE_BODY = (b'{"event":"Bounce","listname":"Kunden\\/\\u00c4","emailaddress":"Ann@Example.com","bounced":1,'
               b'"bouncedate":%d}' % T0)
UNSUBSCRIBE_BODY = (b'{"event":"Unsubscribe","listname":"Kunden\\/\\u00c4","emailaddress":"cat@example.com",'
                    b'"unsubscribed":1,"unsubscribedate":%d}' % (T0 + 5))


def logmsg(url: str, payload: str) -> str:
    return f'a:2:{{s:3:"url";s:{len(url)}:"{url}";s:7:"payload";{payload}}}'


BOUNCE_PAYLOAD = ('a:5:{s:5:"event";s:6:"Bounce";s:8:"listname";s:9:"Kunden/Ä";s:12:"emailaddress";'
                  f's:15:"Ann@Example.com";s:7:"bounced";i:1;s:10:"bouncedate";i:{T0};}}')
UNSUBSCRIBE_PAYLOAD = ('a:5:{s:5:"event";s:11:"Unsubscribe";s:8:"listname";s:9:"Kunden/Ä";s:12:"emailaddress";'
                       f's:15:"cat@example.com";s:12:"unsubscribed";i:1;s:15:"unsubscribedate";i:{T0 + 5};}}')


def records(tmp_path):
    folder = tmp_path / "bounces"
    folder.mkdir()
    write_file(folder / "a.csv", [bounce("hard", "ann@example.com", (3,)), bounce("soft", "bob@example.com", (4,)),
                                  complaint("cat@example.com", (3,), time=T0 + 5, line=4)])
    return folder


def request(body: bytes, port: int) -> bytes:
    """What IEM's curl sends: the request line, Host, Accept, Content-Type, Content-Length, nothing else."""
    return (b"POST /hook HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: */*\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (port, len(body), body))


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
