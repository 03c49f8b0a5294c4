"""IEM 6.5.1's webhook and custom field tables in a test database, and the rows a webhook test needs.

The statements are IEM's (iem-webhooks.md "Tables"); an IEM before 6.5.1 has none of the webhook
tables, which is what a database without `add_webhook_tables` is.
"""

from __future__ import annotations

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
