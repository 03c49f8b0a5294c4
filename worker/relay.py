"""The relay: committed outbox rows out to their targets, beside the batches, never in their way.

A relay claims due rows (store/outbox.py), commits the claim, then sends:
stream events to the decision stream exchange, published persistent and
mandatory on a confirming channel (RabbitMQ's publisher confirms: a confirm
means the broker has it, routed or kept by the alternate exchange); webhook
calls POSTed with IEM's exact body and headers (worker/webhook_http.py),
each try logged in IEM's webhook_logs as IEM logs a call and in our attempts
table. A try that fails is due again after a backoff (1 s doubling, at most
PMTABOUNCE_EVENT_RETRY_MAX_WAIT); a webhook call is parked after
PMTABOUNCE_WEBHOOK_ATTEMPTS tries. A stream event is never parked: RabbitMQ
being away is waited out.

It runs as a thread of every worker (its own MySQL and AMQP connections, so
a slow receiver never holds a batch), as `pmtabounce relay`, and at the end
of `pmtabounce process` (`drain`). A worker's relay thread puts the bounces
first (Pace): it sends between batches, and while bounces flow through the
worker it holds its events, for up to PMTABOUNCE_EVENT_HOLD seconds.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from functools import partial

import pika
from pika.exceptions import NackError, UnroutableError

from ..common import broker, metrics
from ..common.config import Settings
from ..common.errors import FatalError, TransientError
from ..common.events import CONTENT_TYPE, retry_delay
from ..store import outbox, webhooks
from ..store.database import Database, Policy, WaitItOut
from ..store.db import Tables
from ..store.outbox import Claimed
from .webhook_http import WebhookAnswer, post

log = logging.getLogger("pmtabounce.relay")

STREAM_CHUNK = 200  # stream events claimed at once
WEBHOOK_CHUNK = 20  # webhook calls claimed at once (their lease covers a timeout for each)
POSTERS = 8  # calls of one chunk in flight at once
IDLE_SECONDS = 1.0  # how often an idle relay looks for due rows
GIVE_WAY_SECONDS = 0.5  # a worker's relay thread waits at most this long for a batch to end before a chunk
QUIET_SECONDS = 0.5  # a worker without a message for this long has no bounces flowing: its relay's events go
GAUGES_SECONDS = 10.0


class Pace:
    """What a worker tells its relay thread, so that the bounces come first (issue 18: events never slow them).

    `between_batches` is set while the worker applies no batch; `busy_since` (time.monotonic(), seconds) is
    when the worker's current run of batches began, None once it has had no message for QUIET_SECONDS
    (`quiet`). On cores shared by the producer, RabbitMQ, MariaDB and the workers, a call sent while
    bounces flow takes CPU from them, even while this worker waits for its next messages; sent once they
    stop flowing, the same calls take none of it."""

    def __init__(self) -> None:
        self.between_batches = threading.Event()
        self.between_batches.set()
        self.busy_since: float | None = None
        self.stopped_flowing = threading.Event()  # set by `quiet`: a holding relay wakes at once
        self.stopped_flowing.set()

    def batch_started(self) -> None:
        if self.busy_since is None:
            self.busy_since = time.monotonic()
            self.stopped_flowing.clear()
        self.between_batches.clear()

    def batch_ended(self) -> None:
        self.between_batches.set()

    def quiet(self) -> None:
        """No message for QUIET_SECONDS: the bounces have stopped flowing, the events may go."""
        self.busy_since = None
        self.stopped_flowing.set()


def delivered(answer: WebhookAnswer) -> bool:
    """A webhook call reached its receiver when it answered 2xx (IEM never looks; we retry anything else)."""
    return answer.status is not None and 200 <= answer.status < 300


class Relay:
    """Sends committed outbox rows; one per thread (it owns its connections)."""

    def __init__(self, settings: Settings, *, sleep: Callable[[float], None] = time.sleep,
                 policy: Policy | None = None) -> None:
        """`policy`: how a database failure is met; by default one attempt whose transient failure is a
        TransientError (run() and drain() wait it out or leave the events for later); ONE_SHOT for cron's
        `relay --once`, where an unusable database is the operator's to fix (exit 1, the URL named)."""
        self.settings = settings
        self.tables = Tables(settings.table_prefix)
        self._db = Database(settings.mysql, self.tables, policy or WaitItOut(max_wait=settings.retry_max_wait),
                            log=log)
        self.targets = [name for name, on in (("stream", settings.event_stream and bool(settings.amqp_url)),
                                             ("webhook", settings.webhooks)) if on]
        if settings.event_stream and not settings.amqp_url:
            log.warning("PMTABOUNCE_EVENT_STREAM is on but PMTABOUNCE_AMQP_URL is not set: stream events wait "
                        "in the outbox for a worker or `pmtabounce relay` that has it")
        self._sleep = sleep
        self._amqp: pika.BlockingConnection | None = None
        self._channel = None
        self._nodes: broker.Nodes | None = None  # PMTABOUNCE_AMQP_URL's nodes; a lost one passes the turn
        self._gauges_read = float("-inf")
        self._failures = 0
        self.stopped: str | None = None  # why `run` ended on a FatalError (a worker's /readyz says it)
        self.thread: threading.Thread | None = None
        self.pace: Pace | None = None  # its worker's, for a relay thread: the bounces come first
        self._holding_since: float | None = None  # time.monotonic() when it began holding its events (_give_way)
        self.nothing_due = threading.Event()  # set by run() when a pass begun after `finish` found nothing due
        self._finish_asked = float("-inf")  # time.monotonic() of the last `finish`

    # --- the loops -------------------------------------------------------------------------------------

    def run(self, stopping: threading.Event) -> int:
        """Send until `stopping` is set; outages are waited out with backoff, a FatalError is logged and ends it.
        Returns the exit code: 0, or 1 after a FatalError."""
        log.info("relay sending %s from the outbox", " and ".join(self.targets) or "nothing (both are off)")
        try:
            while not stopping.is_set() and self.targets:
                try:
                    if not self._give_way():
                        self._gauges()  # /metrics shows the events held, as `status` does
                        continue
                    began = time.monotonic()
                    sent = self.once()
                    self._failures = 0
                except TransientError as exc:
                    self._failures += 1
                    pause = retry_delay(self._failures, self.settings.retry_max_wait)
                    metrics.RETRIES.labels("relay").inc()
                    log.warning("relay: %s; trying again in %.0f s", exc, pause)
                    self.close()
                    stopping.wait(pause)
                    continue
                except (FatalError, KeyboardInterrupt):
                    raise
                except Exception:  # a bug must not end the worker's sending for good: said, then tried again
                    self._failures += 1
                    log.exception("relay: unexpected error; the rows in hand come due again after their lease")
                    self.close()
                    stopping.wait(retry_delay(self._failures, self.settings.retry_max_wait))
                    continue
                if not sent:
                    self._holding_since = None  # nothing due: a hold starts afresh
                    if began >= self._finish_asked:  # a pass begun before it may have missed the last commit
                        self.nothing_due.set()
                    stopping.wait(IDLE_SECONDS)
        except FatalError as exc:
            self.stopped = str(exc)
            log.critical("relay stops: %s. Committed events wait in the outbox", exc,
                         extra={"event": "fatal", "error_class": type(exc).__name__})
            return 1
        finally:
            self.close()
        return 0

    def finish(self, seconds: float, stopping: threading.Event) -> bool:
        """A worker about to exit because it is idle (--exit-when-idle), its last batch committed: the bounces
        no longer flow, so the events held go now. Waits until a pass of the thread begun after this call has
        found nothing due (so it saw that commit), at most `seconds`, or until `stopping` is set (a stop
        request is never held up). True when it did (what is left waits for a retry's time, or for the next
        worker or relay); False otherwise, and at once when the thread is not running."""
        if self.thread is None or not self.thread.is_alive():
            return False
        self.nothing_due.clear()
        self._finish_asked = time.monotonic()
        if self.pace is not None:
            self.pace.quiet()
        deadline = self._finish_asked + seconds
        while not self.nothing_due.wait(0.1):
            if stopping.is_set() or time.monotonic() >= deadline:
                return False
        return True

    def _give_way(self) -> bool:
        """In a worker, whether to send a chunk now (False: ask again, after run() has looked at `stopping`).

        While bounces flow through the worker (Pace.busy_since), no chunk until PMTABOUNCE_EVENT_HOLD seconds
        after the relay began holding: the calls wait for the flow to stop. The hold ends only once the relay
        has found nothing due (run()), not at a pause between two bursts, so no event waits longer than the
        hold plus the sending of those before it. In a flow longer than the hold the events are then sent
        beside it, taking their share of the CPU, until a pass finds nothing due; only then can a new hold
        begin. Before each chunk sent, wait (at most GIVE_WAY_SECONDS) until the batch in hand is committed:
        the thread shares the worker's interpreter lock, so a chunk sent meanwhile is time taken from the
        batch; under a flood that leaves no gap it still sends a chunk every GIVE_WAY_SECONDS."""
        pace = self.pace
        if pace is None:
            return True
        if pace.busy_since is not None and self.settings.event_hold > 0:
            now = time.monotonic()
            if self._holding_since is None:
                self._holding_since = now
            left = self._holding_since + self.settings.event_hold - now
            if left > 0:  # `stopping` is looked at again within GIVE_WAY_SECONDS
                pace.stopped_flowing.wait(min(left, GIVE_WAY_SECONDS))
                return False
        pace.between_batches.wait(GIVE_WAY_SECONDS)
        return True

    def drain(self, seconds: float) -> int:
        """Send, and try again what fails as its backoff comes due, until nothing waits or `seconds` have
        passed; the rows handled. What is left (a receiver still down, a retry due later) waits in the outbox
        for the next run or a relay."""
        deadline = time.monotonic() + seconds
        handled = 0
        try:
            while time.monotonic() < deadline:
                if done := self.once():
                    handled += done
                    continue
                wait = self._in_transaction(lambda cursor: outbox.next_due(cursor, self.tables, self.targets))
                if wait is None or time.monotonic() + wait >= deadline:
                    break
                self._sleep(max(wait, 0.05))
        except TransientError as exc:
            log.warning("events not sent now (%s); they wait in the outbox for the next run or a relay", exc)
        finally:
            self.close()
        return handled

    def once(self) -> int:
        """One chunk of due rows of each target sent; the rows handled (0: none was due).

        One target's outage does not hold the other: RabbitMQ away leaves the stream's events due again
        later, and the webhook calls due now are still sent. Raises the TransientError of a target that
        failed only when nothing was handled (so the caller's backoff applies); else it is logged."""
        self._gauges()
        handled = 0
        failure: TransientError | None = None
        for target, send in (("stream", self._stream), ("webhook", self._webhooks)):
            if target not in self.targets:
                continue
            try:
                handled += send()
            except TransientError as exc:
                failure = failure or exc
        if failure is not None:
            if not handled:
                raise failure
            log.warning("relay: %s; those events wait in the outbox, the others were sent", failure)
        return handled

    # --- the decision stream -----------------------------------------------------------------------------

    def _stream(self) -> int:
        rows = self._claim("stream", STREAM_CHUNK, lease=60.0)
        if not rows:
            return 0
        done: list[int] = []
        try:
            channel = self._stream_channel()
            for row in rows:
                self._publish(channel, row)
                done.append(row.id)
        except (TransientError, FatalError) as exc:
            why = str(exc)
            if self._nodes is not None:
                self._nodes.lost()
            self._close_amqp()
            self._in_transaction(lambda cursor: self._stream_failed(cursor, rows, done, why))
            raise
        self._in_transaction(lambda cursor: outbox.sent(cursor, self.tables, done))
        metrics.EVENTS_SENT.labels("stream").inc(len(done))
        return len(rows)

    def _stream_failed(self, cursor, rows: list[Claimed], done: list[int], why: str) -> None:
        outbox.sent(cursor, self.tables, done)
        for row in rows:
            if row.id not in done:
                outbox.failed(cursor, self.tables, row.id, why,
                              retry_delay(row.attempts + 1, self.settings.event_retry_max_wait), park=False)
                metrics.EVENTS_RETRIED.labels("stream").inc()
        metrics.EVENTS_SENT.labels("stream").inc(len(done))

    def _publish(self, channel, row: Claimed) -> None:
        """Publish one event and wait for RabbitMQ's confirm (mandatory: a return is a failure, though the
        alternate exchange takes what no binding routes)."""
        properties = pika.BasicProperties(
            content_type=CONTENT_TYPE, delivery_mode=2, message_id=row.event_id, type=row.event,
            timestamp=int(time.time()), app_id="pmtabounce",
        )
        with broker.translated(self.settings.amqp_url):
            try:
                channel.basic_publish(self.settings.topology.events_exchange, row.event, row.body.encode(),
                                      properties, mandatory=True)
            except (NackError, UnroutableError) as exc:
                raise TransientError(f"RabbitMQ did not take event {row.event_id} ({type(exc).__name__}); run "
                                     "`pmtabounce setup` if the decision stream's exchanges are missing") from exc

    def _stream_channel(self):
        if self._channel is None or not self._channel.is_open:
            self._close_amqp()
            if self._nodes is None:
                self._nodes = broker.Nodes(self.settings.amqp, "relay")
            self._amqp = broker.connect(self._nodes, "relay")
            with broker.translated(self.settings.amqp_url):
                channel = self._amqp.channel()
                channel.confirm_delivery()
            self._channel = channel
        return self._channel

    def _close_amqp(self) -> None:
        if self._amqp is not None:
            broker.close_quietly(self._amqp)
        self._amqp = self._channel = None

    # --- IEM's webhooks ---------------------------------------------------------------------------------

    def _webhooks(self) -> int:
        """A chunk of due calls posted, each URL's in order and up to POSTERS URLs side by side (so one slow
        receiver does not hold the others), then every answer recorded in one transaction: one commit per
        chunk, not per call. A receiver that does not answer is not called again in the chunk: its later
        calls are put back untried, and all its other waiting calls held (outbox.hold_url), due with the
        retry of the one that got no answer, so a hanging receiver costs one timeout per retry, not one per
        call or per chunk of its backlog."""
        timeout = self.settings.webhook_timeout
        rows = self._claim("webhook", WEBHOOK_CHUNK, lease=WEBHOOK_CHUNK * timeout + 5.0)
        if not rows:
            return 0
        by_url: dict[str, list[Claimed]] = {}
        for row in rows:  # one URL's calls in order, one after the other; different URLs side by side
            by_url.setdefault(row.url, []).append(row)
        jobs: list[Callable[[], list[Posted]]] = [partial(_post_in_order, calls, timeout) for calls in by_url.values()]
        got = dict(zip(by_url, _side_by_side(jobs), strict=True))
        answers = [got[row.url].pop(0) if got[row.url] else None for row in rows]
        self._in_transaction(lambda cursor: self._answered(cursor, rows, answers))
        return len(rows)

    def _answered(self, cursor, rows: list[Claimed], answers: list[Posted | None]) -> None:
        """Log each try as IEM does (webhook_logs) and in our attempts; each row sent, due again, or parked.
        A row without an answer was not tried (its receiver did not answer an earlier call of the chunk): due
        again with that call, its tries unchanged."""
        delivered_ids = []
        put_back: dict[str, float] = {}  # URL -> the delay of its call that got no answer
        silent: dict[str, float] = {}  # the same, for the receivers that did not answer at all
        logged: list[webhooks.LoggedCall] = []
        tries: list[outbox.Attempt] = []
        for row, tried in zip(rows, answers, strict=True):
            if tried is None:
                outbox.put_back(cursor, self.tables, row.id, put_back[row.url])
                continue
            answer, took, ended = tried
            logged.append(webhooks.LoggedCall(int(row.webhook_event or 0), row.url, json.loads(row.body),
                                              answer.body if answer.status is not None else None, ended))
            said = answer.body if answer.status is not None else (answer.error or "no answer")
            tries.append(outbox.Attempt(row.id, answer.status, said or "", took))
            if delivered(answer):
                delivered_ids.append(row.id)
            else:
                put_back[row.url] = self._not_delivered(cursor, row, row.attempts + 1, answer)
                if answer.status is None:  # no answer at all: its other waiting calls wait for the same retry
                    silent[row.url] = put_back[row.url]
        for url, delay in silent.items():
            outbox.hold_url(cursor, self.tables, url, delay)
        webhooks.log_calls(cursor, self.tables, logged)
        outbox.attempts(cursor, self.tables, tries)
        outbox.sent(cursor, self.tables, delivered_ids, "2xx")
        metrics.EVENTS_SENT.labels("webhook").inc(len(delivered_ids))

    def _not_delivered(self, cursor, row: Claimed, number: int, answer: WebhookAnswer) -> float:
        """The row due again after its backoff, or parked; returns the backoff (seconds)."""
        status = f"HTTP {answer.status}" if answer.status is not None else (answer.error or "no answer")
        park = number >= self.settings.webhook_attempts
        delay = retry_delay(number, self.settings.event_retry_max_wait)
        outbox.failed(cursor, self.tables, row.id, status, delay, park=park)
        if park:
            metrics.EVENTS_PARKED_TOTAL.labels("webhook").inc()
            log.error("webhook %s (outbox %d, %s) parked after %d tries, the last: %s; see `pmtabounce webhooks "
                      "list`", row.url, row.id, row.event, number, status,
                      extra={"event": "webhook_parked", "outbox_id": row.id, "attempts": number})
        else:
            metrics.EVENTS_RETRIED.labels("webhook").inc()
            log.warning("webhook %s (outbox %d) not delivered (%s, try %d of %d); trying again later", row.url,
                        row.id, status, number, self.settings.webhook_attempts,
                        extra={"event": "webhook_retry", "outbox_id": row.id, "attempts": number})
        return delay

    # --- the database -----------------------------------------------------------------------------------

    def _claim(self, target: str, limit: int, lease: float) -> list[Claimed]:
        return self._in_transaction(lambda cursor: outbox.claim(cursor, self.tables, [target], limit, lease))

    def _gauges(self) -> None:
        if time.monotonic() - self._gauges_read < GAUGES_SECONDS:
            return
        self._gauges_read = time.monotonic()
        found = self._in_transaction(lambda cursor: outbox.counts(cursor, self.tables))
        for target in metrics.EVENT_TARGETS:
            metrics.EVENTS_WAITING.labels(target).set(found.get((target, "waiting"), 0))
            metrics.EVENTS_PARKED.labels(target).set(found.get((target, "parked"), 0))

    def _in_transaction(self, work):
        """`work(cursor)` in one committed transaction; a database failure as our error type (store.Database)."""
        with self._db.transaction() as session:
            return work(session.cursor)

    def close(self) -> None:
        """Let go of both connections (a claimed row not yet answered comes due again after its lease)."""
        self._db.close()
        self._close_amqp()


Posted = tuple[WebhookAnswer, float, int]  # one call's answer, its seconds, and when it ended (Unix seconds)


def _side_by_side(jobs: list[Callable[[], list[Posted]]]) -> list[list[Posted]]:
    """Each job on a thread of its own, up to POSTERS at once; their results in order. Daemon threads: a
    worker that stops with posts in flight exits after its grace instead of waiting out the chunk (its
    claimed rows come due again after their lease: at least once)."""
    results: list[list[Posted]] = [[] for _ in jobs]
    failures: list[BaseException] = []
    pending = list(enumerate(jobs))
    lock = threading.Lock()

    def run() -> None:
        while True:
            with lock:
                if not pending or failures:
                    return
                index, job = pending.pop(0)
            try:
                results[index] = job()
            except BaseException as exc:  # raised in the relay's thread below, as a pool would
                failures.append(exc)

    threads = [threading.Thread(target=run, name="webhook", daemon=True) for _ in range(min(POSTERS, len(jobs)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return results


def _post_in_order(calls: list[Claimed], timeout: float) -> list[Posted]:
    """One URL's calls, in order, until one gets no answer (the receiver is down or hangs: the rest would
    each wait out the timeout too); the answers of those tried (the last may be the one without)."""
    answers = []
    for row in calls:
        answers.append(_timed_post(row, timeout))
        if answers[-1][0].status is None:
            break
    return answers


def _timed_post(row: Claimed, timeout: float) -> Posted:
    started = time.monotonic()
    answer = post(row.url, row.body.encode("utf-8"), timeout)
    return answer, time.monotonic() - started, int(time.time())  # IEM's logdate: time() once curl_exec returned


def start_thread(settings: Settings, stopping: threading.Event, pace: Pace | None = None) -> Relay | None:
    """The worker's relay, running in its thread (`.thread`) until `stopping` is set; None when webhooks
    and the stream are both off. Its `.stopped` says why, when a FatalError ended it early.
    `pace`: the worker's; the relay gives way to the batch in hand before each chunk, and holds its chunks
    while bounces flow (Relay._give_way)."""
    if not (settings.webhooks or settings.event_stream):
        return None
    relay = Relay(settings)
    relay.pace = pace
    relay.thread = threading.Thread(target=relay.run, args=(stopping,), name="relay", daemon=True)
    relay.thread.start()
    return relay
