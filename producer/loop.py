"""The producer's I/O loop: one file at a time, read as fast as confirms allow, done only when all of it is safe.

Everything touching pika runs on one thread, in callbacks of one IOLoop that
outlives connections: a 0.2 s tick (stop requests, new files, checkpoints),
the pump (reads records and publishes while fewer than `publish_window` are
unsafe), and the broker's confirms. Reconnecting is tenacity's job, around
`BrokerLink.open`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from pika.adapters.select_connection import IOLoop
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_any,
    stop_never,
    stop_when_event_set,
    wait_exponential_jitter,
)

from ..common import metrics
from ..common.broker import Nodes, safe_url
from ..common.config import Settings
from ..common.errors import FatalError, TransientError
from .checkpoint import orphaned_checkpoints
from .connection import BrokerLink, declare
from .publish import ConfirmingPublisher, Outgoing, outgoing
from .source import FileJob
from .watch import DirectoryWatch

log = logging.getLogger("pmtabounce.producer")

TICK = 0.2
PUMP_STEPS = 500  # rows read per turn of the loop, so confirms and heartbeats are never starved
CHECKPOINT_SECONDS = 1.0
STOP_GRACE = 10.0  # how long a stop request waits for outstanding confirms
ONCE_ATTEMPTS = 10  # --once gives up after this many failed connection attempts in a row
CONFIRMS_LATE_SECONDS = 10.0  # confirms silent this long are logged (a quorum queue below quorum confirms nothing)
SETTLE_SECONDS = 1.0  # a file written this recently may still be growing; PowerMTA's moved files are older

_FILES_DONE = metrics.FILES_DONE.labels("producer")
_READ = metrics.RECORDS_READ.labels("producer")


class Producer:
    def __init__(self, settings: Settings, directory: Path, *, once: bool, stop: threading.Event) -> None:
        self.settings = settings
        self.directory = directory
        self.once = once
        self.topology = settings.topology
        self.window = settings.publish_window
        self.loop = IOLoop()
        self.watch = DirectoryWatch(directory, settings.rescan_seconds)
        self.publisher = ConfirmingPublisher(self.topology, self.loop, self._confirmed, self._stuck,
                                             settings.retry_max_wait)
        self.link = BrokerLink(Nodes(settings.amqp, "producer"), self.loop, self._lost)
        self.job: FileJob | None = None
        self.unreadable: set[str] = set()
        self._stop = stop
        self._finished = False
        self._stopping_since: float | None = None
        self._pump_pending = False
        self._last_save = 0.0
        self._late_since: float | None = None  # confirms late since (monotonic), once warned
        self._next_late_warning = 0.0

    @property
    def ready(self) -> bool:
        return self.publisher.ready

    def run(self) -> int:
        """Work until stopped (or, with --once, until no file is left); returns the exit code."""
        for orphan in orphaned_checkpoints(self.directory):
            orphan.unlink(missing_ok=True)
        log.info("producer on %s: publishing to %s, exchange %s (at most %d records unconfirmed)",
                 self.directory, safe_url(self.settings.amqp), self.topology.exchange, self.window)
        self.watch.start()
        self.loop.call_later(TICK, self._tick)
        try:
            while not self._finished and not self._stop.is_set():
                self._connect()
                self._schedule_pump()
                self.loop.start()  # until the connection closes, on purpose or not
        except TransientError as exc:
            if not self._stop.is_set():
                raise FatalError(f"{exc}; gave up after {ONCE_ATTEMPTS} attempts in a row") from exc
        finally:
            self.watch.stop()
            self._shelve()
            self.loop.close()
        if self.once and self.unreadable:
            raise FatalError(f"could not read {', '.join(sorted(self.unreadable))} in {self.directory}")
        return 0

    def _connect(self) -> None:
        give_up = stop_after_attempt(ONCE_ATTEMPTS) if self.once else stop_never
        retrying = Retrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_any(stop_when_event_set(self._stop), give_up),
            wait=wait_exponential_jitter(initial=0.5, max=self.settings.retry_max_wait, jitter=0.5),
            sleep=self._pause,
            before_sleep=_log_retry,
            reraise=True,
        )
        retrying(self._open)

    def _pause(self, seconds: float) -> None:
        """tenacity's sleep between attempts: a stop request cuts it short."""
        self._stop.wait(seconds)

    def _open(self) -> None:
        nodes = self.link.nodes
        declare(nodes, self.topology)
        self.link.open(self.publisher.enable)
        again = self.publisher.outstanding
        log.info("connected to %s%s", safe_url(nodes.urls[nodes.current]),
                 f"; sent {again} unconfirmed messages again" if again else "")

    def _lost(self, reason: BaseException) -> None:
        unconfirmed = self.publisher.detach()
        self.link.nodes.lost()
        log.warning("lost the connection to RabbitMQ (%s); %d unconfirmed messages will be sent again%s",
                    reason or "closed", unconfirmed,
                    ", starting with the next node" if len(self.link.nodes) > 1 else "")

    def _stuck(self, why: str) -> None:
        log.warning("RabbitMQ keeps refusing messages (%s); reconnecting, which declares the topology again", why)
        self.link.drop(TransientError(f"reconnecting after refused messages: {why}"))

    def _close(self) -> None:
        self._finished = True
        self.link.close()

    def _tick(self) -> None:
        self.loop.call_later(TICK, self._tick)
        if not self.publisher.ready:
            return
        now = time.monotonic()
        self._watch_confirms(now)
        if self._stop.is_set():
            self._stop_gracefully(now)
        elif self.job is not None:
            if now - self._last_save >= CHECKPOINT_SECONDS:
                self._save(self.job, now)
            if self.watch.due(now):
                self.watch.scan(now)  # keeps the backlog gauges true during a long file
        elif self.watch.due(now):
            self._next_file()

    def _watch_confirms(self, now: float) -> None:
        """Warn while RabbitMQ has confirmed nothing for CONFIRMS_LATE_SECONDS (again every as long), and say
        when confirms come again: nothing is marked done meanwhile, and nothing else would tell."""
        silent = self.publisher.confirms_silent_for(now)
        if silent < CONFIRMS_LATE_SECONDS:
            if self._late_since is not None:
                log.info("RabbitMQ confirms again, after %.0f s without", now - self._late_since)
                self._late_since = None
            return
        if self._late_since is None:
            self._late_since = now - silent
        if now >= self._next_late_warning:
            self._next_late_warning = now + CONFIRMS_LATE_SECONDS
            nodes = self.link.nodes
            log.warning(
                "%d messages have waited %.0f s for RabbitMQ to confirm them (node %s): the quorum queue %s takes "
                "messages only while more than half of its nodes are online (see `pmtabounce status`); nothing is "
                "marked done until it does, nothing is lost", self.publisher.outstanding, silent,
                safe_url(nodes.urls[nodes.current]), self.topology.queue,
                extra={"event": "confirms_late", "waited_seconds": round(silent, 1)},
            )

    def _stop_gracefully(self, now: float) -> None:
        outstanding = self.publisher.outstanding
        if self._stopping_since is None:
            self._stopping_since = now
            waiting = f"; waiting up to {STOP_GRACE:.0f} s for {outstanding} confirms" if outstanding else ""
            log.info("stopping: reading no more%s", waiting)
        if outstanding and now - self._stopping_since < STOP_GRACE:
            return
        if outstanding:
            log.warning("stopping with %d messages unconfirmed; the next start sends them again", outstanding)
        self._close()

    def _next_file(self) -> None:
        if self._stop.is_set():
            return
        for path in self.watch.scan(time.monotonic()):
            if path.name in self.unreadable:
                continue
            try:
                if time.time() - path.stat().st_mtime < SETTLE_SECONDS:
                    self.watch.poke()  # still being written (copied in, not moved): look again soon
                    return
                job = FileJob(path)
            except FileNotFoundError:
                continue  # taken away since the listing
            except OSError as exc:
                log.error("%s cannot be read (%s); skipping it until the producer restarts", path.name, exc)
                self.unreadable.add(path.name)
                continue
            self._start(job)
            return
        if self.once:
            log.info("no file left in %s; every record is confirmed", self.directory)
            self._close()

    def _start(self, job: FileJob) -> None:
        self.job = job
        resumed = f" after line {job.resumed_after} (checkpoint)" if job.resumed_after else ""
        log.info("%s: publishing%s", job.name, resumed)
        self._last_save = time.monotonic()
        self._schedule_pump()

    def _schedule_pump(self) -> None:
        if not self._pump_pending:
            self._pump_pending = True
            self.loop.call_later(0, self._pump)

    def _pump(self) -> None:
        self._pump_pending = False
        job = self.job
        if job is None or self._stop.is_set() or not self.publisher.ready:
            return
        _READ.inc(self.publisher.publish_all(self._read(job)))
        if job.finished:
            self._finish_job(job)
        elif not job.exhausted and job.progress.backlog < self.window:
            self._schedule_pump()

    def _read(self, job: FileJob) -> Iterator[Outgoing]:
        """The next records of `job` as messages, while the window has room, for one turn of the loop."""
        now = int(time.time())
        progress, window = job.progress, self.window
        for _ in range(PUMP_STEPS):
            if job.exhausted or progress.backlog >= window:
                return
            record = job.step()
            if record is not None:
                yield outgoing(record, job.track(record), now)

    def _confirmed(self, messages: list[Outgoing]) -> None:
        job = self.job
        if job is None:
            return
        settle = job.progress.settle
        for message in messages:
            settle(message.token)
        if job.finished:
            self._finish_job(job)
            return
        if job.checkpoint_due(self.window):
            self._save(job, time.monotonic())
        self._schedule_pump()

    def _save(self, job: FileJob, now: float) -> None:
        job.save()
        self._last_save = now

    def _finish_job(self, job: FileJob) -> None:
        if job.changed():
            log.warning("%s changed or vanished while it was read; if it is still there, it is read again "
                        "from the top", job.name)
            job.abandon()
        else:
            job.finish(self.settings.done_action)  # if it fails, the way out saves a complete checkpoint
        self.job = None
        _FILES_DONE.inc()
        metrics.LAST_SUCCESS.set_to_current_time()
        self._next_file()

    def _shelve(self) -> None:
        """On the way out: remember how far the current file got."""
        job, self.job = self.job, None
        if job is None:
            return
        job.save()
        job.close()
        log.info("%s: stopped; records up to line %d are confirmed, the next start resumes after it",
                 job.name, job.progress.line)


def _log_retry(retry_state) -> None:
    error = retry_state.outcome.exception()
    metrics.RETRIES.labels("broker").inc()
    log.warning("cannot use RabbitMQ (%s); trying again in %.1f s", error, retry_state.next_action.sleep,
                extra={"event": "retry", "retry_attempt": retry_state.attempt_number,
                       "error_class": type(error).__name__})
