"""`pmtabounce status`'s words for a quorum queue: its leader, its members online, and counts it cannot know."""

from __future__ import annotations

from pmtabounce.commands.status import BELOW_QUORUM, Part, _details, quorum
from pmtabounce.queues import ApiCounts

NODES = ("rabbit@mq1", "rabbit@mq2", "rabbit@mq3")


def queue_part(ready: int = 5) -> Part:
    return Part("queue", facts={"name": "pmtabounce.bounces", "broker": "amqp://mq3:5672/v", "ready": ready,
                                "unacked": 0, "consumers": 0, "processes": []})


def test_below_quorum_a_count_of_zero_is_unknown_and_the_missing_leader_is_told():
    # RabbitMQ answers 0 messages for a quorum queue whose leader it cannot reach: not a count to show
    part = queue_part(ready=0)
    quorum(part, ApiCounts(ready=0, unacked=0, consumers=0, leader=None, members=NODES, online=NODES[2:]), "ready")
    assert part.state == BELOW_QUORUM and part.facts["ready"] is None
    text = _details(part)
    assert "ready unknown" in text and "0 ready" not in text
    assert "no leader, 1 of 3 nodes online" in text and "None" not in text
    assert "no process of ours connected" in text and "processes on ;" not in text


def test_the_dead_letter_queue_below_quorum_has_an_unknown_number_of_messages():
    part = Part("dead_letter", facts={"name": "pmtabounce.dead-letter", "messages": 0})
    quorum(part, ApiCounts(ready=0, unacked=0, consumers=0, leader=None, members=NODES, online=NODES[:1]),
           "messages")
    assert part.state == BELOW_QUORUM and part.facts["messages"] is None
    assert _details(part).startswith("pmtabounce.dead-letter: unknown number of messages; no leader, 1 of 3")


def test_with_a_majority_online_the_counts_stand_and_the_leader_is_named():
    part = Part("dead_letter", facts={"name": "pmtabounce.dead-letter", "messages": 4})
    quorum(part, ApiCounts(ready=4, unacked=0, consumers=0, leader=NODES[1], members=NODES, online=NODES[1:]),
           "messages")
    assert part.state == "ok" and part.facts["messages"] == 4
    assert _details(part) == ("pmtabounce.dead-letter: 4 messages (see `pmtabounce dlq`); leader rabbit@mq2, "
                              "2 of 3 nodes online")
