"""IEM 6.5.1's webhook and custom field tables in a test database, and the rows a webhook test needs.

The statements are IEM's (iem-webhooks.md "Tables"); an IEM before 6.5.1 has none of the webhook
tables, which is what a database without `add_webhook_tables` is.
"""

from __future__ import annotations

from iem_seed import T0, Seed, bounce, complaint, write_file

WEBHOOK_TABLES = (
    """CREATE TABLE IF NOT EXISTS {t.webhooks} (
  webhookid int(11) NOT NULL AUTO_INCREMENT, webhook_type_id int(11) NOT NULL,
  webhook_event_type_id int(11) NOT NULL, id int(11) DEFAULT 0, webhook_url varchar(2048) NOT NULL,
  createdate int(11) NOT NULL, active int(1) NOT NULL DEFAULT 1, ownerid int(11) NOT NULL DEFAULT 0,
  PRIMARY KEY (webhookid)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE IF NOT EXISTS {t.webhook_logs} (
  logid int(11) NOT NULL AUTO_INCREMENT, webhook_type_id int(11) NOT NULL,
  webhook_event_type_id int(11) NOT NULL, logmsg text NOT NULL, webhook_response varchar(255) NULL,
  logdate int(11) DEFAULT 0, PRIMARY KEY (logid)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE IF NOT EXISTS {t.customfields} (
  fieldid int(11) NOT NULL AUTO_INCREMENT PRIMARY KEY, name varchar(255) DEFAULT NULL,
  fieldtype varchar(100) DEFAULT NULL, defaultvalue varchar(255) DEFAULT NULL, required char(1) DEFAULT '0',
  fieldsettings mediumtext, createdate int(11) DEFAULT 0, ownerid int(11) DEFAULT 0,
  isglobal char(1) DEFAULT '0') ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS {t.customfield_lists} (
  cflid int(11) NOT NULL AUTO_INCREMENT PRIMARY KEY, fieldid int(11) NOT NULL DEFAULT '0',
  listid int(11) NOT NULL DEFAULT '0') ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS {t.subscribers_data} (
  subscriberid int(11) NOT NULL DEFAULT '0', fieldid int(11) NOT NULL DEFAULT '0', data text) ENGINE=InnoDB""",
)
SUBSCRIBE, UNSUBSCRIBE, BOUNCE = 1, 2, 3


def add_webhook_tables(db) -> None:
    for statement in WEBHOOK_TABLES:
        db.query(statement)


def add_webhook(db, listid: int, event: int, url: str, *, active: int = 1) -> int:
    db.query("INSERT INTO {t.webhooks} (webhook_type_id, webhook_event_type_id, id, webhook_url, createdate, active) "
             "VALUES (1, %s, %s, %s, 1732000000, %s)", (event, listid, url, active))
    return int(db.query("SELECT MAX(webhookid) FROM {t.webhooks}")[0][0])


def add_custom_field(db, listid: int, name: str, values: dict[int, str] | None = None) -> int:
    """A custom field mapped to `listid`, with `values` (subscriberid -> data)."""
    db.query("INSERT INTO {t.customfields} (name, fieldtype) VALUES (%s, 'text')", (name,))
    fieldid = int(db.query("SELECT MAX(fieldid) FROM {t.customfields}")[0][0])
    db.query("INSERT INTO {t.customfield_lists} (fieldid, listid) VALUES (%s, %s)", (fieldid, listid))
    for subscriberid, data in (values or {}).items():
        db.query("INSERT INTO {t.subscribers_data} (subscriberid, fieldid, data) VALUES (%s, %s, %s)",
                 (subscriberid, fieldid, data))
    return fieldid


def webhook_logs(db) -> list[tuple]:
    """(event, logmsg, response) of every log row, in order."""
    return db.query("SELECT webhook_event_type_id, logmsg, webhook_response FROM {t.webhook_logs} ORDER BY logid")


def outbox_rows(db, target: str = "webhook") -> list[tuple]:
    """(id, event_id, event, url, state, attempts) of the outbox's rows of `target`, in order."""
    return db.query("SELECT id, event_id, event, url, state, attempts FROM {t.outbox} WHERE target = %s "
                    "ORDER BY id", (target,))


LIST_NAME = "Kunden/Ä"  # `/` and a non-ASCII letter: PHP writes them `\/` and `\u00c4`


def world(db, receiver) -> dict[str, int]:
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


