"""ConfirmingPublisher against a channel that refuses: how soon it asks for a new connection, and how long it
tells that RabbitMQ has confirmed nothing (issue 19: a quorum queue after a leader election, or below quorum)."""

from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace

import pika
from pika.spec import Basic
from pmtabounce.common.topology import Topology
from pmtabounce.producer import publish
from pmtabounce.producer.checkpoint import Pending
from pmtabounce.producer.publish import ConfirmingPublisher, Outgoing


class Loop:
    """Timers run when the test says so."""

    def __init__(self) -> None:
        self.timers: list = []

    def call_later(self, _seconds, callback):
        self.timers.append(callback)
        return callback

    def remove_timeout(self, timer) -> None:
        self.timers.remove(timer)

    def run_timers(self) -> None:
        timers, self.timers = self.timers, []
        for timer in timers:
            timer()


class Channel:
    """Takes publishes and numbers them, as a confirm-mode channel does."""

    def __init__(self) -> None:
        self.published = 0
        self.is_open = True
        self.connection = SimpleNamespace(batched=contextmanager(lambda: (yield)))

    def add_on_return_callback(self, _callback) -> None:
        pass

    def confirm_delivery(self, ack_nack_callback, callback) -> None:
        self.on_confirm = ack_nack_callback
        callback(None)

    def basic_publish(self, *_args, **_kwargs) -> None:
        self.published += 1

    def answer(self, method) -> None:
        self.on_confirm(SimpleNamespace(method=method))


def message(line: int) -> Outgoing:
    return Outgoing(b"{}", pika.BasicProperties(), "f.csv", line, Pending(line, 0))


def publisher(stuck: list[str], confirmed: list) -> tuple[ConfirmingPublisher, Loop, Channel]:
    loop, channel = Loop(), Channel()
    sender = ConfirmingPublisher(Topology(), loop, confirmed.extend, stuck.append, max_pause=2.0)
    sender.enable(channel, lambda: None)
    return sender, loop, channel


def test_a_channel_nacked_three_rounds_in_a_row_asks_for_a_new_connection():
    stuck: list[str] = []
    sender, loop, channel = publisher(stuck, [])
    sender.publish_all([message(2)])
    for round_ in range(publish.STUCK_AFTER):
        assert not stuck, f"asked for a new connection after {round_} rounds"
        channel.answer(Basic.Nack(delivery_tag=channel.published))
        loop.run_timers()  # the pause is over: sent again on the same channel (or not, once stuck)
    assert stuck == ["nacked"]
    assert publish.STUCK_AFTER <= 3, "3.10 nacks a channel on after a leader election: it must not take ~10 s"


def test_confirms_silent_counts_from_the_last_ack_and_nacks_do_not_reset_it():
    stuck: list[str] = []
    confirmed: list = []
    sender, loop, channel = publisher(stuck, confirmed)
    assert sender.confirms_silent_for(100.0) == 0.0
    sender.publish_all([message(2), message(3)])
    since = sender._waiting_since
    assert since is not None
    channel.answer(Basic.Nack(delivery_tag=1))
    assert sender._waiting_since == since, "a nack is no confirm"
    sender.detach()
    assert sender._waiting_since == since, "a reconnect does not make the wait shorter"
    channel = Channel()
    sender.enable(channel, lambda: None)  # sends the two again on the new channel
    channel.answer(Basic.Ack(delivery_tag=2, multiple=True))
    assert len(confirmed) == 2
    assert sender.confirms_silent_for(since + 50) == 0.0, "nothing waits any more"
