"""store/webhooks.py on the real MariaDB: which webhooks an event goes to, IEM's Subscribe payload, the log row.

Spec: iem-webhooks.md ("Which URLs", "The request", "The log row").
"""

from __future__ import annotations

import pytest
from conftest import drop_database, make_database
from iem_seed import T0, Seed
from pmtabounce.common.php import json_encode, serialize
from pmtabounce.store.db import Tables
from pmtabounce.store.webhooks import (
    EVENT_BOUNCE,
    EVENT_SUBSCRIBE,
    EVENT_UNSUBSCRIBE,
    LoggedCall,
    WebhookTarget,
    bounce_payload,
    list_targets,
    log_calls,
    subscribe_payload,
    unsubscribe_payload,
    webhook_tables_present,
)


class CountingCursor:
    """A cursor that counts the statements it runs."""

    def __init__(self, cursor) -> None:
        self.cursor = cursor
        self.statements = 0

    def execute(self, sql, params=None):
        self.statements += 1
        return self.cursor.execute(sql, params)

    def __getattr__(self, name):
        return getattr(self.cursor, name)


@pytest.fixture
def world(iem_db):
    connection = iem_db.connect()
    yield Seed(iem_db), connection.cursor()
    connection.close()


def test_targets_of_several_lists_in_one_statement(world, iem_db):
    seed, cursor = world
    seed.lists(3, 4, 5)
    h1 = seed.webhook(3, EVENT_BOUNCE, "https://a.example/1")
    h2 = seed.webhook(4, EVENT_BOUNCE, "https://b.example/2")
    h3 = seed.webhook(3, EVENT_UNSUBSCRIBE, "https://a.example/3")
    h4 = seed.webhook(3, EVENT_BOUNCE, "http://a.example/4")
    seed.webhook(5, EVENT_BOUNCE, "https://c.example/not-asked")
    counting = CountingCursor(cursor)
    targets = list_targets(counting, iem_db.tables, [4, 3, 3, 9])
    assert counting.statements == 1
    assert targets == {
        (3, EVENT_BOUNCE): [WebhookTarget(h1, "https://a.example/1"), WebhookTarget(h4, "http://a.example/4")],
        (3, EVENT_UNSUBSCRIBE): [WebhookTarget(h3, "https://a.example/3")],
        (4, EVENT_BOUNCE): [WebhookTarget(h2, "https://b.example/2")],
    }


def test_targets_skip_inactive_empty_and_campaign_rows_in_webhookid_order(world, iem_db):
    seed, cursor = world
    seed.lists(3)
    ids = {}
    ids["late"] = seed.webhook(3, EVENT_BOUNCE, "https://x.example/late")
    ids["off"] = seed.webhook(3, EVENT_BOUNCE, "https://x.example/off", active=0)  # IEM would post: we do not
    ids["empty"] = seed.webhook(3, EVENT_BOUNCE, "")  # IEM stops here: we skip it and go on
    ids["campaign"] = seed.webhook(3, EVENT_BOUNCE, "https://x.example/campaign", webhook_type=2)
    ids["after"] = seed.webhook(3, EVENT_BOUNCE, "https://x.example/after")
    first = seed.webhook(3, EVENT_BOUNCE, "https://x.example/first")
    # Made last, given the lowest webhookid: it comes first.
    iem_db.query("UPDATE {t.webhooks} SET webhookid = webhookid + 100")
    iem_db.query("UPDATE {t.webhooks} SET webhookid = 1 WHERE webhookid = %s", (first + 100,))
    targets = list_targets(cursor, iem_db.tables, [3])
    assert [t.url for t in targets[(3, EVENT_BOUNCE)]] == [
        "https://x.example/first", "https://x.example/late", "https://x.example/after"]
    assert [t.webhookid for t in targets[(3, EVENT_BOUNCE)]] == [1, ids["late"] + 100, ids["after"] + 100]
    assert list(targets) == [(3, EVENT_BOUNCE)]


def test_no_lists_no_statement(world, iem_db):
    _, cursor = world
    counting = CountingCursor(cursor)
    assert list_targets(counting, iem_db.tables, []) == {}
    assert counting.statements == 0


def test_payload_builders_keep_iems_key_order():
    assert list(bounce_payload("L", "a@b.c", T0)) == ["event", "listname", "emailaddress", "bounced", "bouncedate"]
    assert json_encode(bounce_payload("L/1", "a@b.c", T0)) == (
        b'{"event":"Bounce","listname":"L\\/1","emailaddress":"a@b.c","bounced":1,"bouncedate":%d}' % T0)
    assert json_encode(unsubscribe_payload("L", "\u00e5@b.c", T0 + 1)) == (
        b'{"event":"Unsubscribe","listname":"L","emailaddress":"\\u00e5@b.c","unsubscribed":1,'
        b'"unsubscribedate":%d}' % (T0 + 1))


def test_subscribe_payload_without_custom_fields_has_no_customfields_key(world, iem_db):
    seed, cursor = world
    seed.lists(3, 4)
    seed.custom_field("City", 4)  # another list's field
    sid = seed.subscriber("ann@example.com", 3, confirmed="1")
    iem_db.query("UPDATE {t.subscribers} SET confirmdate = %s WHERE subscriberid = %s", (T0 - 5, sid))
    payload = subscribe_payload(cursor, iem_db.tables, 3, sid)
    assert payload == {"event": "Subscribe", "listname": "list 3", "emailaddress": "ann@example.com",
                       "confirmed": "1", "confirmdate": str(T0 - 5)}
    assert json_encode(payload) == (b'{"event":"Subscribe","listname":"list 3","emailaddress":"ann@example.com",'
                                    b'"confirmed":"1","confirmdate":"%d"}' % (T0 - 5))


def test_subscribe_payload_custom_fields_as_iem_loads_them(world, iem_db):
    seed, cursor = world
    seed.lists(3)
    sid = seed.subscriber("ann@example.com", 3, confirmed="0")
    # Created in this order, so fieldid order differs from name order.
    zip_ = seed.custom_field("Zip", 3)
    city = seed.custom_field("City", 3)
    seed.custom_field("Age", 3)
    phone = seed.custom_field("Phone", 3)
    seed.custom_field("Country", 3)
    seed.custom_field("Hobby", 3, 3)  # mapped twice: still one field
    seed.field_data(sid, city, "K\u00f6ln")
    seed.field_data(sid, zip_, "50667")
    seed.field_data(sid, phone, "")
    payload = subscribe_payload(cursor, iem_db.tables, 3, sid)
    assert payload["confirmed"] == "0" and payload["confirmdate"] == "0"
    # Data rows first by fieldid (Zip, City, Phone), then the rest by name (Age, Country, Hobby).
    assert list(payload["customfields"].items()) == [
        ("Zip", "50667"), ("City", "K\u00f6ln"), ("Phone", ""), ("Age", ""), ("Country", ""), ("Hobby", "")]
    assert list(payload) == ["event", "listname", "emailaddress", "confirmed", "confirmdate", "customfields"]


def test_subscribe_payload_duplicate_names_overwrite_keeping_the_first_place(world, iem_db):
    seed, cursor = world
    seed.lists(3)
    sid = seed.subscriber("ann@example.com", 3)
    first = seed.custom_field("Name", 3)
    seed.custom_field("Name", 3)  # the same name, a later fieldid, no data
    other = seed.custom_field("Other", 3)
    seed.field_data(sid, other, "o")
    seed.field_data(sid, first, "Ann")
    payload = subscribe_payload(cursor, iem_db.tables, 3, sid)
    # "Name" is placed by its data row (fieldid `first` < `other`), then emptied by the later field.
    assert list(payload["customfields"].items()) == [("Name", ""), ("Other", "o")]


def test_subscribe_payload_numeric_field_names_become_a_json_list(world, iem_db):
    seed, cursor = world
    seed.lists(3)
    sid = seed.subscriber("ann@example.com", 3)
    zero = seed.custom_field("0", 3)
    seed.custom_field("1", 3)
    seed.field_data(sid, zero, "a")
    payload = subscribe_payload(cursor, iem_db.tables, 3, sid)
    assert json_encode(payload["customfields"]) == b'["a",""]'  # PHP's keys 0 and 1: a list
    assert serialize(payload["customfields"]) == b'a:2:{i:0;s:1:"a";i:1;s:0:"";}'


def test_subscribe_payload_null_columns(world, iem_db):
    seed, cursor = world
    seed.lists(3)
    sid = seed.subscriber("ann@example.com", 3)
    field = seed.custom_field(None, 3)
    seed.field_data(sid, field, None)
    iem_db.query("UPDATE {t.subscribers} SET confirmdate = NULL WHERE subscriberid = %s", (sid,))
    payload = subscribe_payload(cursor, iem_db.tables, 3, sid)
    assert payload["confirmdate"] is None
    assert payload["customfields"] == {"": None}
    assert json_encode(payload).endswith(b'"confirmdate":null,"customfields":{"":null}}')


def test_subscribe_payload_of_a_subscriber_not_on_the_list(world, iem_db):
    seed, cursor = world
    seed.lists(3, 4)
    sid = seed.subscriber("ann@example.com", 3)
    with pytest.raises(LookupError, match=f"subscriber {sid} is not on IEM list 4"):
        subscribe_payload(cursor, iem_db.tables, 4, sid)


def test_log_calls_writes_iems_rows(world, iem_db):
    _, cursor = world
    payload = unsubscribe_payload("Gr\u00fc\u00dfe", "x@y.z", T0)
    url = "https://crm.example/h?a=1"
    log_calls(cursor, iem_db.tables, [
        LoggedCall(EVENT_UNSUBSCRIBE, url, payload, "ok \u00e9", T0 + 3),
        LoggedCall(EVENT_BOUNCE, url, payload, None, T0 + 4),  # no answer
        LoggedCall(EVENT_SUBSCRIBE, url, payload, "", T0 + 5),
        LoggedCall(EVENT_BOUNCE, url, payload, "\u00e9" * 300, T0 + 6),
    ])
    cursor.connection.commit()
    rows = iem_db.query("SELECT webhook_type_id, webhook_event_type_id, logmsg, webhook_response, logdate "
                        "FROM {t.webhook_logs} ORDER BY logid")
    logmsg = (
        'a:2:{s:3:"url";s:25:"https://crm.example/h?a=1";s:7:"payload";a:5:{s:5:"event";s:11:"Unsubscribe";'
        's:8:"listname";s:7:"Gr\u00fc\u00dfe";s:12:"emailaddress";s:5:"x@y.z";s:12:"unsubscribed";i:1;'
        f's:15:"unsubscribedate";i:{T0};}}}}'
    )
    assert rows == [
        (1, EVENT_UNSUBSCRIBE, logmsg, "ok \u00e9", T0 + 3),
        (1, EVENT_BOUNCE, logmsg, "0", T0 + 4),
        (1, EVENT_SUBSCRIBE, logmsg, "", T0 + 5),
        (1, EVENT_BOUNCE, logmsg, "\u00e9" * 255, T0 + 6),  # cut to 255 characters, not bytes
    ]


def test_log_calls_under_strict_sql_mode(world, iem_db):
    _, cursor = world
    cursor.execute("SET SESSION sql_mode = 'STRICT_TRANS_TABLES'")
    log_calls(cursor, iem_db.tables, [LoggedCall(EVENT_BOUNCE, "http://x", bounce_payload("L", "a@b.c", T0),
                                                 "x" * 1000, T0)])
    cursor.connection.commit()
    assert iem_db.query("SELECT CHAR_LENGTH(webhook_response) FROM {t.webhook_logs}") == [(255,)]


def test_log_calls_into_a_utf8_log_keeps_an_answer_with_an_emoji(world, iem_db):
    # IEM's webhook_logs in utf8 (3 bytes), strict sql_mode: a receiver's answer with an emoji was refused, and
    # with it the log rows of the whole chunk (whose calls then stayed waiting and were posted again for ever).
    _, cursor = world
    cursor.execute(f"ALTER TABLE {iem_db.tables.webhook_logs} CONVERT TO CHARACTER SET utf8")
    cursor.execute("SET SESSION sql_mode = 'STRICT_TRANS_TABLES'")
    payload = bounce_payload("L", "a@b.c", T0)
    log_calls(cursor, iem_db.tables, [LoggedCall(EVENT_BOUNCE, "http://x", payload, "ok \U0001F600 \u00e9", T0),
                                      LoggedCall(EVENT_BOUNCE, "http://y", payload, "fine", T0)])
    cursor.connection.commit()
    assert iem_db.query("SELECT webhook_response FROM {t.webhook_logs} ORDER BY logid") == [("ok ? \u00e9",),
                                                                                             ("fine",)]


def test_webhook_tables_present(world, iem_db):
    _, cursor = world
    assert webhook_tables_present(cursor, iem_db.tables)
    assert not webhook_tables_present(cursor, Tables("other_"))
    old = make_database(webhooks=False)  # an IEM before 6.5.1
    try:
        connection = old.connect()
        try:
            with connection.cursor() as old_cursor:
                assert not webhook_tables_present(old_cursor, old.tables)
                old_cursor.execute("SHOW TABLES LIKE 'email\\_webhook%%'")
                assert old_cursor.fetchall() == ()
                old_cursor.execute("SHOW TABLES LIKE 'email\\_customfield%%'")
                assert len(old_cursor.fetchall()) == 2  # custom fields are in every IEM 6.x
        finally:
            connection.close()
    finally:
        drop_database(old)


def test_fixture_under_another_prefix_has_iems_webhook_types():
    db = make_database("iem2_")
    try:
        assert db.query("SELECT webhook_type_id, webhook_type_name FROM iem2_webhook_types") == [
            (1, "List"), (2, "Campaign")]
        assert db.query("SELECT COUNT(*) FROM iem2_webhook_event_types") == [(5,)]
    finally:
        drop_database(db)
