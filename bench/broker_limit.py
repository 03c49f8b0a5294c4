"""(R), RabbitMQ's limit: the fleet's messages published and consumed without our code.

    python bench/broker_limit.py prepare DIRECTORY FRAMES   # our producer's messages, encoded once, untimed
    python bench/broker_limit.py publish AMQP_URL FRAMES    # write them; done when RabbitMQ confirmed them all
    python bench/broker_limit.py consume AMQP_URL COUNT QUEUE  # take them; done when COUNT are acked

`prepare` reads the accounting files with pmtabounce's reader and builds every
message as the producer does (producer/publish.py `outgoing`: the same body,
headers and properties, persistent, mandatory), then marshals each one's three
AMQP frames with pika and pickles them. `publish` puts a channel in confirm
mode and writes the ready frames as they are, up to the producer's publish
window unconfirmed, several messages to one socket write: the client costs
next to nothing per message, so the time is RabbitMQ's. `consume` reads them
with pika's asynchronous adapter at the worker's prefetch (two batches) and
acks each batch of the worker's size with one `multiple` ack, as the worker
does after its commit. Both use the topology `pmtabounce setup` declared (the
quorum work queue). The bench (bench.py) starts them and times them.
"""

from __future__ import annotations

import pickle
import sys
import time
from pathlib import Path

import pika
from pika import frame, spec

CHANNEL = 1  # pika numbers a connection's first channel 1
BATCH = 500  # the worker's default batch_size (common/config.py)
PREFETCH = 2 * BATCH  # worker/amqp.py: PREFETCH_BATCHES * batch_size
WINDOW = 2000  # the producer's default publish_window
WRITE = 250  # messages per socket write (the producer writes what its window lets it, in one buffer)


def prepare(directory: Path, target: Path) -> int:
    """Every record of the directory's files as its three marshaled frames; returns how many."""
    from pmtabounce.common.accounting import AccountingFile, RejectedRow
    from pmtabounce.common.topology import Topology
    from pmtabounce.producer.publish import outgoing

    topology = Topology()
    now = int(time.time())
    messages = []
    for path in sorted(directory.iterdir()):
        for item in AccountingFile(path):
            if isinstance(item, RejectedRow):
                continue
            message = outgoing(item, None, now)  # type: ignore[arg-type]  # no progress entry: not a producer
            method = spec.Basic.Publish(exchange=topology.exchange, routing_key=topology.routing_key,
                                        mandatory=True)
            messages.append(frame.Method(CHANNEL, method).marshal()
                            + frame.Header(CHANNEL, len(message.body), message.properties).marshal()
                            + frame.Body(CHANNEL, message.body).marshal())
    target.write_bytes(pickle.dumps(messages))
    return len(messages)


def publish(url: str, frames: Path) -> None:
    """Publish the prepared messages; returns when every one is confirmed (a nack or return is an error)."""
    messages: list[bytes] = pickle.loads(frames.read_bytes())
    state = {"sent": 0, "confirmed": 0}

    def send_more() -> None:
        while state["sent"] < len(messages) and state["sent"] - state["confirmed"] < WINDOW:
            end = min(len(messages), state["sent"] + WRITE, state["confirmed"] + WINDOW)
            connection._output_marshaled_frames([b"".join(messages[state["sent"]:end])])
            state["sent"] = end

    def on_confirm(method_frame) -> None:
        method = method_frame.method
        if not isinstance(method, spec.Basic.Ack):
            raise RuntimeError(f"RabbitMQ refused message {method.delivery_tag}")
        state["confirmed"] = method.delivery_tag if method.multiple else max(state["confirmed"], method.delivery_tag)
        if state["confirmed"] >= len(messages):
            connection.close()
        else:
            send_more()

    def on_return(_channel, method, _properties, _body) -> None:
        raise RuntimeError(f"RabbitMQ returned a message: {method.reply_code} {method.reply_text}")

    def on_channel(channel) -> None:
        assert channel.channel_number == CHANNEL
        channel.add_on_return_callback(on_return)
        channel.confirm_delivery(ack_nack_callback=on_confirm, callback=lambda _frame: send_more())

    connection = pika.SelectConnection(
        pika.URLParameters(url), on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
        on_open_error_callback=lambda _c, exc: sys.exit(f"cannot connect: {exc}"),
        on_close_callback=lambda c, _reason: c.ioloop.stop())
    connection.ioloop.start()
    if state["confirmed"] < len(messages):
        sys.exit(f"only {state['confirmed']} of {len(messages)} messages confirmed")


def consume(url: str, count: int, queue: str) -> None:
    """Take `count` messages, one `multiple` ack per BATCH of them (and one for the last part)."""
    state = {"received": 0}

    def on_message(channel, method, _properties, _body) -> None:
        state["received"] += 1
        if state["received"] % BATCH == 0 or state["received"] == count:
            channel.basic_ack(method.delivery_tag, multiple=True)
        if state["received"] == count:
            connection.close()

    def on_channel(channel) -> None:
        channel.basic_qos(prefetch_count=PREFETCH,
                          callback=lambda _frame: channel.basic_consume(queue, on_message))

    connection = pika.SelectConnection(
        pika.URLParameters(url), on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
        on_open_error_callback=lambda _c, exc: sys.exit(f"cannot connect: {exc}"),
        on_close_callback=lambda c, _reason: c.ioloop.stop())
    connection.ioloop.start()
    if state["received"] < count:
        sys.exit(f"only {state['received']} of {count} messages received")


def main(argv: list[str]) -> int:
    if argv[0] == "prepare":
        print(prepare(Path(argv[1]), Path(argv[2])))
    elif argv[0] == "publish":
        publish(argv[1], Path(argv[2]))
    elif argv[0] == "consume":
        consume(argv[1], int(argv[2]), argv[3])
    else:
        raise SystemExit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
