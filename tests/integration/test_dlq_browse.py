"""`dlq list`, `show`, `export`, `import` and `purge` on messages the real worker dead-lettered."""

from __future__ import annotations

import orjson
import pika
import pytest
from dlq_world import OK_LIST, REFUSAL, REFUSING_LIST, SOURCE, hard_bounce, make_world
from pmtabounce.common.topology import H_SOURCE_FILE, H_SOURCE_LINE

from pmtabounce.dlq.export_file import read_lines

NOT_UTF8 = b"\xff\xfe{not json at all"
OLD_SCHEMA = b'{"v": 99, "rcpt": "someone@example.com"}'
REJECTED = b'{"v": 1, "held": "by a consumer that gave up"}'


@pytest.fixture
def world(iem_db, vhost, tmp_path):
    """Three records the database refuses, two poison messages, one record that applies,
    all through the real worker; and one message RabbitMQ dead-lettered itself (rejected)."""
    world = make_world(iem_db, vhost, tmp_path)
    world.refuse_list_2()
    world.publish([hard_bounce(OK_LIST, 0, 2)] + [hard_bounce(REFUSING_LIST, n, 3 + n) for n in range(3)])
    world.publish_raw([
        (NOT_UTF8, pika.BasicProperties(delivery_mode=2)),
        (OLD_SCHEMA, pika.BasicProperties(delivery_mode=2, message_id="poison-schema-99")),
    ])
    world.run_worker()
    _reject_one(world, REJECTED)
    return world


def _reject_one(world, body: bytes) -> None:
    """RabbitMQ's own dead-lettering: a consumer rejects without requeue, and x-death says so."""
    world.publish_raw([(body, pika.BasicProperties(delivery_mode=2, message_id="rejected-by-hand",
                                                   headers={H_SOURCE_FILE: "other.csv", H_SOURCE_LINE: 9}))])
    connection, channel = world.vhost.channel()
    method, _, _ = channel.basic_get(world.vhost.topology.queue)
    channel.basic_reject(method.delivery_tag, requeue=False)
    connection.close()


def _ids(listing: dict) -> list[str]:
    return [m["id"] for m in listing["messages"]]


def test_list_shows_why_when_and_where_and_filters_without_touching_the_queue(world):
    everything = world.dlq_json()
    assert everything["counts"] == {"database_refused": 3, "invalid_message": 2, "rejected": 1}
    refused = [m for m in everything["messages"] if m["why"] == "database_refused"]
    assert {(m["file"], m["line"], m["rcpt"], m["category"]) for m in refused} == {
        (SOURCE, 3 + n, f"user{n}@list2.example.com", "bad-mailbox") for n in range(3)
    }
    assert all(REFUSAL in m["reason"] and m["when"] for m in refused)
    rejected = [m for m in everything["messages"] if m["why"] == "rejected"]
    assert rejected[0]["deaths"][0]["by"] == "broker" and rejected[0]["deaths"][0]["where"] == "pmtabounce.bounces"

    assert world.dlq_json("--reason", "invalid")["matching"] == 2
    assert world.dlq_json("--reason", "rejected", "--reason", "database-refused")["matching"] == 4
    assert world.dlq_json("--grep", "NO BOUNCES TODAY", "--file", "bounces-2024-11-19-*",
                          "--newer-than", "1h")["matching"] == 3
    assert world.dlq_json("--older-than", "1h")["matching"] == 0
    limited = world.dlq_json("--reason", "database_refused", "--limit", "2")
    assert (limited["matching"], len(limited["messages"])) == (3, 2)

    # Browsing took nothing and reordered nothing.
    assert _ids(world.dlq_json()) == _ids(everything)
    assert world.vhost.queue_depth(world.vhost.topology.dead_queue) == 6
    table = world.dlq("list", "--reason", "database_refused").stdout
    assert "3 of 6 messages match" in table and "user1@list2.example.com" in table


def test_show_prints_one_message_in_full(world):
    listing = world.dlq_json("--reason", "database_refused", "--limit", "1")
    message_id = listing["messages"][0]["id"]
    shown = world.dlq("show", message_id[:10]).stdout
    assert f'"rcpt": "{listing["messages"][0]["rcpt"]}"' in shown  # the body, pretty-printed
    assert REFUSAL in shown and "x-pmtabounce-worker" in shown and "death history" in shown

    poison = world.dlq_json("--reason", "invalid", "--grep", "not JSON")["messages"][0]
    assert poison["id"].startswith("body-")  # no message id: one derived from the body
    assert "not UTF-8" in world.dlq("show", poison["id"]).stdout
    assert world.dlq("show", "no-such-message", check=False).returncode == 1


def test_export_and_import_give_back_the_same_bytes_and_take_only_when_asked(world):
    queue = world.vhost.topology.dead_queue
    before = world.tmp / "before.jsonl"
    world.dlq("export", str(before))
    assert world.vhost.queue_depth(queue) == 6
    assert world.dlq("export", str(before), check=False).returncode == 1  # never overwrites an export

    taken = world.tmp / "taken.jsonl"
    world.dlq("export", str(taken), "--take", "--reason", "invalid_message", "--reason", "rejected")
    assert world.vhost.queue_depth(queue) == 3
    assert {letter.body for letter in read_lines(taken)} == {NOT_UTF8, OLD_SCHEMA, REJECTED}

    assert "imported 3 messages" in world.dlq("import", str(taken)).stdout
    assert "imported 0 messages" in world.dlq("import", str(taken)).stdout  # not doubled
    assert world.vhost.queue_depth(queue) == 6

    after = world.tmp / "after.jsonl"
    world.dlq("export", str(after))
    assert _by_id(after) == _by_id(before)
    audit = [orjson.loads(line) for line in world.audit_file.read_bytes().splitlines()]
    assert [(a["action"], a["counts"].get("taken"), a["counts"].get("published")) for a in audit] == [
        ("dlq export --take", 3, None), ("dlq import", None, 3), ("dlq import", None, 0)
    ]


def _by_id(path) -> dict:
    """Every message of an export by id: body bytes and every property and header."""
    return {letter.id: (letter.body, letter.properties) for letter in read_lines(path)}


def test_purge_asks_first_and_reports_what_it_removed(world):
    queue = world.vhost.topology.dead_queue
    declined = world.dlq("purge", "--reason", "invalid", stdin="n\n", check=False)
    assert declined.returncode == 1 and world.vhost.queue_depth(queue) == 6

    purged = world.dlq("purge", "--reason", "invalid", stdin="y\n")
    assert "removed 2 messages" in purged.stdout and "invalid_message" in purged.stdout
    assert world.dlq_json()["counts"] == {"database_refused": 3, "rejected": 1}

    world.dlq("purge", "--yes", "--reason", "rejected")
    assert world.dlq_json()["counts"] == {"database_refused": 3}
    audit = [orjson.loads(line) for line in world.audit_file.read_bytes().splitlines()]
    assert [(a["action"], a["counts"]["removed"], a["target"]["filter"]) for a in audit] == [
        ("dlq purge", 2, "--reason invalid"), ("dlq purge", 1, "--reason rejected")
    ]
    assert all(a["by"] and a["os_user"] and a["at"] and a["account"] == "guest" for a in audit)
    assert all(a["where"].endswith(f"/{world.vhost.name}") and a["run"] is None for a in audit)
    assert "dlq purge by" in purged.stderr  # the INFO audit line
