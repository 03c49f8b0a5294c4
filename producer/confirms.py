"""Delivery-tag bookkeeping for publisher confirms on one channel, free of pika so it is tested as data.

On a channel in confirm mode RabbitMQ numbers published messages 1, 2, 3...
An ack or a nack with `multiple` covers every outstanding tag up to and
including its own. A nack means "not taken": those messages are sent again,
never counted as confirmed. A mandatory message that no queue took is first
returned (basic.return) and then acked: the ack does not make it safe.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Unconfirmed(Generic[T]):
    """Messages published on one channel and not yet confirmed, by delivery tag."""

    def __init__(self) -> None:
        self._items: dict[int, T] = {}
        self._returned: set[int] = set()
        self._last_tag = 0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T) -> int:
        """Record a message just published; returns the delivery tag the broker will use for it."""
        self._last_tag += 1
        self._items[self._last_tag] = item
        return self._last_tag

    def mark_returned(self, match: Callable[[T], bool]) -> T | None:
        """The broker returned a message: find it (returns carry no tag) so its coming ack is not trusted."""
        for tag, item in self._items.items():
            if tag not in self._returned and match(item):
                self._returned.add(tag)
                return item
        return None

    def confirm(self, tag: int, *, multiple: bool, ack: bool) -> tuple[list[T], list[T]]:
        """Apply one basic.ack or basic.nack; returns (confirmed, to send again)."""
        confirmed: list[T] = []
        refused: list[T] = []
        for covered in self._covered(tag, multiple):
            item = self._items.pop(covered)
            returned = covered in self._returned
            if returned:
                self._returned.discard(covered)
            (confirmed if ack and not returned else refused).append(item)
        return confirmed, refused

    def drain(self) -> list[T]:
        """Everything still unconfirmed, in publish order: the channel is gone, it must all go again."""
        items = list(self._items.values())
        self._items.clear()
        self._returned.clear()
        return items

    def _covered(self, tag: int, multiple: bool) -> list[int]:
        if not multiple:
            return [tag] if tag in self._items else []
        covered = []
        for outstanding in self._items:  # insertion order is tag order
            if outstanding > tag:
                break
            covered.append(outstanding)
        return covered
