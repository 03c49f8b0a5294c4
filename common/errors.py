"""Errors as types: each says what the caller should do about it."""


class PmtaBounceError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(PmtaBounceError):
    """A setting is missing or invalid: the process stops and names it."""


class FatalError(PmtaBounceError):
    """The process cannot go on (missing table, no permission): exit non-zero, ack nothing."""


class TransientError(PmtaBounceError):
    """Worth retrying: the database or broker went away, a deadlock, a lock wait timeout."""


class GaveUp(TransientError):
    """A transient failure outlasted the caller's bound (`--give-up-after`).

    `waited`: the seconds really spent trying, from the first attempt to the last failure.
    """

    def __init__(self, message: str, waited: float) -> None:
        super().__init__(message)
        self.waited = waited


class CommittedElsewhere(TransientError):
    """Another worker committed the same record first (the ledger's unique key refused ours, MySQL 1062).

    Expected when two workers hold copies of one record; applying the batch again finds it in the ledger.
    """


class PermanentError(PmtaBounceError):
    """This one message or record can never be applied: dead-letter it with the reason."""


class InvalidMessage(PermanentError):
    """A queue message that does not decode into a valid bounce record."""


class StopRequested(PmtaBounceError):
    """A stop request (SIGTERM, SIGINT: common/shutdown.py) arrived while waiting to retry: what was
    committed stays, the rest is left for the next run."""
