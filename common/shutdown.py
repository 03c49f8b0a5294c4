"""One shutdown path for every long-running role: the producer, the worker and the `dlq` runs.

The first SIGTERM or SIGINT (Ctrl-C) asks for a clean stop: the event is set
and the role finishes what it holds — the worker its batch, the producer its
outstanding confirms, `dlq replay`/`export` the message in hand. The producer
and a worker then exit 0; a `dlq` run exits 130, as it stopped before it was
done, after its audit line (replay, `export --take`). A second SIGTERM or
SIGINT, of either kind, ends the process at once with that signal's default
action (exit status 128 + the signal's number), before that audit line. Nothing is lost
either way: what was not acked goes back to the queue, and what was not
confirmed is sent again from the checkpoint (README, "Exit codes", "Stopping").
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def stop_on_signals(
    stop: threading.Event | None = None, *, log: logging.Logger | None = None, then: str = ""
) -> Iterator[threading.Event]:
    """Within the block, SIGTERM/SIGINT set `stop` (a new Event if none is given), which is yielded.

    `log` and `then`: the first signal is logged at INFO as "SIGTERM received: <then>".
    The previous handlers come back when the block ends. Outside the main thread
    (where Python cannot install handlers) the event is yielded untouched.
    """
    stop = threading.Event() if stop is None else stop
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def on_signal(signum: int, _frame) -> None:
        for each in SIGNALS:  # the next one, of either kind, ends the process at once
            signal.signal(each, signal.SIG_DFL)
        if log is not None:
            log.info("%s received: %s", signal.Signals(signum).name, then)
        stop.set()

    previous = {signum: signal.signal(signum, on_signal) for signum in SIGNALS}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
