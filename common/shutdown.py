"""One shutdown path for every long-running role: the producer, the worker and the `dlq` runs.

The first SIGTERM or SIGINT (Ctrl-C) asks for a clean stop: the event is set
and the role finishes what it holds — the worker its batch, the producer its
outstanding confirms, `dlq replay`/`export` the message in hand. The producer
and a worker then exit 0; a `dlq` run exits 130, as it stopped before it was
done, after its audit line (replay, `export --take`). A second SIGTERM or
SIGINT, of either kind, ends the process at once with that signal's default
action (exit status 128 + the signal's number), before that audit line. Nothing is lost
either way: what was not acked goes back to the queue, and what was not
confirmed is sent again from the checkpoint (README, "Exit codes"; docs/operations.md, "Stopping").
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGTERM, signal.SIGINT)
GRACE_SECONDS = 3.0  # a blocking call in hand may finish this long after a stop request


@contextmanager
def stop_on_signals(
    stop: threading.Event | None = None, *, log: logging.Logger | None = None, then: str = "",
    on_stop: Callable[[], None] | None = None,
) -> Iterator[threading.Event]:
    """Within the block, SIGTERM/SIGINT set `stop` (a new Event if none is given), which is yielded.

    `log` and `then`: the first signal is logged at INFO as "SIGTERM received: <then>".
    `on_stop` is called after the event is set (in the signal handler: it must be quick), as
    AbandonableCalls.stop_requested is.
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
        if on_stop is not None:
            on_stop()

    previous = {signum: signal.signal(signum, on_signal) for signum in SIGNALS}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        signal.setitimer(signal.ITIMER_REAL, 0)  # an AbandonableCalls deadline ends with the block


class CallAbandoned(BaseException):
    """A stop request found a blocking call that did not return within its grace period.

    A BaseException, as KeyboardInterrupt: no `except Exception` on its way out may swallow it
    or try to talk over the silent connection again (a rollback would wait just the same).
    """


class AbandonableCalls:
    """Stretches of code that wait on a server which may stop answering without closing anything.

    A network partition leaves a socket open and silent: a query then waits in a blocking read
    until the driver's read timeout (a minute), longer than Kubernetes' grace period or systemd's
    TimeoutStopSec. After a stop request the call in hand gets `grace` seconds; if it is still
    running then, a SIGALRM handler raises CallAbandoned inside it (Python runs handlers in the
    main thread, and an exception raised there ends the blocking read). The caller must ack
    nothing inside call(); closing the connection afterwards lets the server roll back.
    """

    def __init__(self, what: str, grace: float = GRACE_SECONDS, log: logging.Logger | None = None) -> None:
        self.what = what  # for the log line: "the database"
        self.grace = grace
        self.log = log or logging.getLogger("pmtabounce")
        self.active = False
        self.started = 0.0  # time.monotonic() when the stretch in hand began waiting on the server

    @contextmanager
    def call(self) -> Iterator[None]:
        """Code in this block may be abandoned after a stop request."""
        previous = self.active, self.started
        if not self.active:
            self.active, self.started = True, time.monotonic()
        try:
            yield
        finally:
            self.active, self.started = previous

    @contextmanager
    def outside(self) -> Iterator[None]:
        """A stretch inside call() that does not wait on the server (a retry pause talking to RabbitMQ)."""
        previous, self.active = self.active, False
        try:
            yield
        finally:
            self.active, self.started = previous, time.monotonic()  # the next attempt's wait starts now

    def waiting_for(self) -> float:
        """Seconds the call in hand has been waiting on the server without a pause (0.0 outside a call),
        for readiness: a silent server raises nothing for a minute."""
        return time.monotonic() - self.started if self.active else 0.0

    def stop_requested(self) -> None:
        """From the signal handler: give the call in hand `grace` seconds, then abandon it."""
        if self.active and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGALRM, self._on_alarm)
            signal.setitimer(signal.ITIMER_REAL, self.grace)

    def _on_alarm(self, _signum: int, _frame) -> None:
        if self.active:
            self.log.warning("%s has not answered for %.0f s since the stop request: abandoning the call; "
                             "nothing of it was acknowledged", self.what, self.grace)
            raise CallAbandoned()
