"""A small IEM 6.5.1 world with list webhooks, and the bytes IEM would send and log for it.

The expected bodies and log messages are written out from iem-webhooks.md, not computed by the code
under test. The webhook tables come with the fixture (`make_database(webhooks=False)`: an IEM before 6.5.1).
"""

from __future__ import annotations

from iem_seed import T0, Seed, bounce, complaint, write_file

SUBSCRIBE, UNSUBSCRIBE, BOUNCE = 1, 2, 3
LIST_NAME = "Kunden/Ä"  # `/` and a non-ASCII letter: PHP writes them `\/` and `\u00c4`


def world(db, receiver) -> dict[str, int]:
    """List 3 (named LIST_NAME) with a Bounce and an Unsubscribe webhook, an inactive one and one with no URL;
    list 4 with a Bounce webhook but only a soft bounce (fires nothing)."""
    seed = Seed(db)
    seed.lists(3, 4)
    db.query("UPDATE {t.lists} SET name = %s WHERE listid = 3", (LIST_NAME,))
    seed.newsletter(42)
    ids = {"ann": seed.subscriber("Ann@Example.com", 3), "bob": seed.subscriber("bob@example.com", 4),
           "cat": seed.subscriber("cat@example.com", 3)}
    seed.webhook(3, BOUNCE, "")  # IEM stops at an empty URL; we skip it and go on
    ids["bounce_hook"] = seed.webhook(3, BOUNCE, receiver.url())
    seed.webhook(3, BOUNCE, receiver.url("/inactive"), active=0)
    ids["unsubscribe_hook"] = seed.webhook(3, UNSUBSCRIBE, receiver.url())
    seed.webhook(4, BOUNCE, receiver.url("/list4"))
    seed.webhook(3, SUBSCRIBE, receiver.url("/subscribe"))
    return ids


def records(tmp_path):
    """The world's accounting file: a hard bounce of ann (disables her), a soft one of bob (records only),
    a complaint of cat (unsubscribes her)."""
    folder = tmp_path / "bounces"
    folder.mkdir()
    write_file(folder / "a.csv", [bounce("hard", "ann@example.com", (3,)), bounce("soft", "bob@example.com", (4,)),
                                  complaint("cat@example.com", (3,), time=T0 + 5, line=4)])
    return folder


BOUNCE_BODY = (b'{"event":"Bounce","listname":"Kunden\\/\\u00c4","emailaddress":"Ann@Example.com","bounced":1,'
               b'"bouncedate":%d}' % T0)
UNSUBSCRIBE_BODY = (b'{"event":"Unsubscribe","listname":"Kunden\\/\\u00c4","emailaddress":"cat@example.com",'
                    b'"unsubscribed":1,"unsubscribedate":%d}' % (T0 + 5))
BOUNCE_PAYLOAD = ('a:5:{s:5:"event";s:6:"Bounce";s:8:"listname";s:9:"Kunden/Ä";s:12:"emailaddress";'
                  f's:15:"Ann@Example.com";s:7:"bounced";i:1;s:10:"bouncedate";i:{T0};}}')
UNSUBSCRIBE_PAYLOAD = ('a:5:{s:5:"event";s:11:"Unsubscribe";s:8:"listname";s:9:"Kunden/Ä";s:12:"emailaddress";'
                       f's:15:"cat@example.com";s:12:"unsubscribed";i:1;s:15:"unsubscribedate";i:{T0 + 5};}}')


def logmsg(url: str, payload: str) -> str:
    """PHP's serialize(["url" => url, "payload" => payload]) around a serialized payload."""
    return f'a:2:{{s:3:"url";s:{len(url)}:"{url}";s:7:"payload";{payload}}}'


def request(body: bytes, port: int, path: bytes = b"/hook") -> bytes:
    """What IEM's curl sends: the request line, Host, Accept, Content-Type, Content-Length, nothing else."""
    return (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: */*\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (path, port, len(body), body))


def bodies(receiver) -> list[bytes]:
    return [raw.split(b"\r\n\r\n", 1)[1] for raw in receiver.requests]


def webhook_logs(db) -> list[tuple]:
    """(event, logmsg, response) of every log row, in order."""
    return db.query("SELECT webhook_event_type_id, logmsg, webhook_response FROM {t.webhook_logs} ORDER BY logid")


def outbox_rows(db, target: str = "webhook") -> list[tuple]:
    """(id, event_id, event, url, state, attempts) of the outbox's rows of `target`, in order."""
    return db.query("SELECT id, event_id, event, url, state, attempts FROM {t.outbox} WHERE target = %s "
                    "ORDER BY id", (target,))
