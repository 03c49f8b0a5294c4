"""BatchApplier's retry bound: --give-up-after S ends close to S, whatever the backoff has grown to."""

import socket
import time

import pytest
from pmtabounce.common.config import MySQLTarget
from pmtabounce.common.errors import TransientError
from pmtabounce.common.policy import Policy
from pmtabounce.common.record import BounceRecord
from pmtabounce.store.db import Tables
from pmtabounce.worker.apply import BatchApplier

RECORD = BounceRecord("b", 1732010733, "a@example.com", "5.1.1", "gone", "bad-mailbox", (3,), 42)


def closed_port() -> int:
    """A local port nothing listens on: every connection attempt is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_give_up_after_is_a_bound_not_a_suggestion():
    give_up_after = 3.2
    target = MySQLTarget(host="127.0.0.1", port=closed_port(), user="nobody", password="", database="iem")
    applier = BatchApplier(target, Tables("email_"), Policy(), retry_max_wait=30, give_up_after=give_up_after)
    started = time.monotonic()
    with pytest.raises(TransientError):
        applier.apply([RECORD])
    elapsed = time.monotonic() - started
    # Unbounded, the backoff (0.1 s doubling, plus up to 0.5 s jitter) overshoots 3.2 s by 0.25 s or more
    # (all but about 1 in 100 runs): the 0.1+0.2+0.4+0.8+1.6 s sleeps alone end at 3.1 s.
    assert give_up_after <= elapsed < give_up_after + 0.25
