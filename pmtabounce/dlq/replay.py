"""Putting dead letters back on the work queue: the loop guard, the headers a replay writes, and the run.

A replayed message keeps its body, id and properties. Our dead-letter
headers (reason, class, time, worker) move into H_HISTORY, so that if it dies
again, the reason shown is the new one whoever dead-letters it; RabbitMQ's
`x-death` stays as it is (the broker keeps counting in it). H_REPLAYS goes up
by one. The message leaves the dead-letter queue only after RabbitMQ has
confirmed the copy on the work exchange.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from ..common.topology import H_DEAD_AT, H_ERROR, H_HISTORY, H_REASON, H_REPLAYS, H_WORKER
from .message import X_DELIVERY_COUNT, DeadLetterMessage

MAX_HISTORY = 20  # entries kept in H_HISTORY: enough to see a pattern, never an ever-growing header
_MOVED = (H_REASON, H_ERROR, H_DEAD_AT, H_WORKER, X_DELIVERY_COUNT)


@dataclass
class ReplayPlan:
    """The selected letters split by the loop guard."""

    replay: list[DeadLetterMessage] = field(default_factory=list)
    refused: list[DeadLetterMessage] = field(default_factory=list)  # replayed max_replays times already


def plan_replay(letters: Sequence[DeadLetterMessage], max_replays: int, force: bool = False) -> ReplayPlan:
    plan = ReplayPlan()
    for letter in letters:
        (plan.refused if letter.replays >= max_replays and not force else plan.replay).append(letter)
    return plan


def replay_properties(letter: DeadLetterMessage, now: float, by: str) -> dict:
    """The properties of the copy that goes back to work (see the module doc)."""
    headers = {k: v for k, v in letter.headers.items() if k not in _MOVED}
    entry = {"error": letter.reason, "reason": letter.reason_text, "replayed-at": int(now), "replayed-by": by}
    if isinstance(letter.died_at, datetime):
        entry["dead-at"] = int(letter.died_at.timestamp())
    if letter.headers.get(H_WORKER):
        entry["worker"] = str(letter.headers[H_WORKER])
    headers[H_HISTORY] = [entry, *letter.history][:MAX_HISTORY]
    headers[H_REPLAYS] = letter.replays + 1
    return {**letter.properties, "headers": headers}


class Pacer:
    """At most `rate` messages per second, evenly spaced; no rate means no waiting."""

    def __init__(self, rate: float | None, sleep: Callable[[float], None], clock: Callable[[], float] = time.monotonic):
        self.interval = 1.0 / rate if rate else 0.0
        self.sleep = sleep
        self.clock = clock
        self.next_at: float | None = None

    def wait(self) -> None:
        if not self.interval:
            return
        now = self.clock()
        if self.next_at is not None and self.next_at > now:
            self.sleep(self.next_at - now)
            now = self.next_at
        self.next_at = now + self.interval


class Republisher(Protocol):
    """What a replay needs of the dead-letter queue (DeadLetterQueue; a fake in unit tests)."""

    def publish(self, exchange: str, body: bytes, properties: dict) -> None: ...

    def remove(self, letter: DeadLetterMessage) -> None: ...

    def sleep(self, seconds: float) -> None: ...


@dataclass
class ReplayRun:
    """Republish then remove, one message at a time. `done` says how far it got if anything stops it."""

    queue: Republisher
    exchange: str
    by: str
    rate: float | None = None
    done: list[DeadLetterMessage] = field(default_factory=list)

    def run(self, letters: Sequence[DeadLetterMessage], stop: threading.Event,
            advance: Callable[[], None] = lambda: None) -> bool:
        """True if every letter was replayed, False if a stop request ended the run early."""
        pacer = Pacer(self.rate, self.queue.sleep)
        for letter in letters:
            pacer.wait()
            if stop.is_set():
                return False
            self.queue.publish(self.exchange, letter.body, replay_properties(letter, time.time(), self.by))
            self.queue.remove(letter)  # only now: the copy is confirmed
            self.done.append(letter)
            advance()
        return True


def parse_rate(text: str) -> float:
    """'5', '5/s' or '120/m' -> messages per second; ValueError otherwise."""
    number, _, unit = text.strip().partition("/")
    per = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}.get(unit.strip().lower())
    try:
        rate = float(number) / per if per else 0.0
    except ValueError:
        rate = 0.0
    if not rate > 0 or rate == float("inf"):
        raise ValueError(f"{text!r} is not a rate like 5, 5/s or 120/m")
    return rate
