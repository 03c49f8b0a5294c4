"""Who did what to the data, when, where and why: the one audit line every operator action writes.

`dlq replay/purge/import/export --take`, `undo` and `guard trip/release/discard`
each log one INFO line and, when PMTABOUNCE_DLQ_AUDIT_FILE is set, append one
JSON line to that file, all in one schema (Action.entry):

    {"at": "2026-12-07T15:00:00+00:00", "action": "undo", "by": "alice@host", "os_user": "root",
     "host": "host", "account": "pmtabounce_operator@%", "where": "mysql://op@db:3306/iem (tables email_)",
     "reason": "ticket 4711", "target": {...}, "counts": {...}, "run": 12}

`by` is the person: SUDO_USER under sudo, else the process's real uid (not
$USER, which anyone can set); `os_user` is always the real uid, so a claimed
SUDO_USER never hides who ran it. `account` is the login the server knows:
MySQL's CURRENT_USER() for database actions, the AMQP user for `dlq`.
`run` is the database audit row's id (None for `dlq`, which has no database).
"""

from __future__ import annotations

import functools
import logging
import os
import pwd
import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote, urlsplit

import click
import orjson

from .common.broker import safe_url as safe_amqp_url
from .common.config import Settings
from .common.errors import ConfigError
from .store import audit
from .store.db import Tables

log = logging.getLogger("pmtabounce.audit")

REASON_HELP = "Why this is done (kept in the audit); required when PMTABOUNCE_AUDIT_REQUIRE_REASON is on."


@dataclass(frozen=True)
class Who:
    """The person behind this process: `user` (SUDO_USER under sudo, else `os_user`), the real uid's `os_user`."""

    user: str
    os_user: str
    host: str

    def __str__(self) -> str:
        """user@host, and the OS user when sudo made them differ: the operator column of our audit table."""
        said = f"{self.user}@{self.host}"
        return said if self.user == self.os_user else f"{said} (sudo, as {self.os_user})"


def who(environ: dict | None = None) -> Who:
    """Who runs this process (`environ`: the environment, for SUDO_USER; default os.environ)."""
    try:
        os_user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a uid with no passwd entry (containers)
        os_user = f"uid {os.getuid()}"
    sudo_user = (os.environ if environ is None else environ).get("SUDO_USER", "").strip()
    return Who(sudo_user or os_user, os_user, socket.gethostname())


def operator() -> str:
    """Who runs this process, as one string (Who.__str__)."""
    return str(who())


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def database_where(settings: Settings) -> str:
    """Which database an action changes: its URL without the password, and the table prefix."""
    return f"{settings.mysql.safe_url()} (tables {settings.table_prefix})"


def broker_where(settings: Settings) -> tuple[str, str]:
    """(where, account) of a `dlq` action: the broker's URL and vhost without credentials, and the AMQP user."""
    return safe_amqp_url(settings.amqp), unquote(urlsplit(settings.amqp).username or "guest")


@dataclass
class Action:
    """One operator action on the record. For database actions `start` writes our audit row (its id is `run`,
    the server names the account) and `finish` completes it; `note` logs and appends the audit line."""

    action: str
    target: dict
    where: str
    reason: str | None = None
    account: str = ""
    who: Who = field(default_factory=who)
    run: int | None = None

    @property
    def by(self) -> str:
        return str(self.who)

    def start(self, cursor, t: Tables) -> int:
        """Our audit table's row for this action, in the caller's transaction; returns the run id."""
        self.run, self.account = audit.start(cursor, t, self.by, self.action, self.target, self.reason)
        return self.run

    def finish(self, cursor, t: Tables, counts: dict) -> None:
        """The row's counts and end time (start must have run)."""
        assert self.run is not None, "finish before start"
        audit.finish(cursor, t, self.run, counts)

    def entry(self, counts: dict) -> dict:
        """The audit line (module docstring)."""
        return {"at": now_iso(), "action": self.action, "by": self.who.user, "os_user": self.who.os_user,
                "host": self.who.host, "account": self.account, "where": self.where, "reason": self.reason,
                "target": self.target, "counts": counts, "run": self.run}

    def note(self, audit_file: Path | None, counts: dict) -> dict:
        """Log the action at INFO and append its line to `audit_file` (None: log only); returns the entry."""
        entry = self.entry(counts)
        said = ", ".join(f"{name} {value}" for name, value in counts.items())
        log.info("%s by %s%s as %s on %s: %s (on %s)%s", self.action, self.by,
                 f" (run {self.run})" if self.run else "", self.account or "-", self.where, said,
                 orjson.dumps(self.target).decode(), f", reason: {self.reason}" if self.reason else "",
                 extra={"event": "audit", "action": self.action, "run": self.run})
        append(audit_file, entry)
        return entry


def append(path: Path | None, entry: dict) -> None:
    """Append `entry` as one fsynced JSON line to `path` (nothing when None). A failure is logged, not raised:
    the action already happened, and not writing the file must not hide it."""
    if path is None:
        return
    try:
        with open(path, "ab") as handle:
            handle.write(orjson.dumps(entry) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        log.error("could not append the audit line to %s (%s): %s", path, exc.strerror, orjson.dumps(entry).decode())


def check_writable(path: Path | None) -> None:
    """Raise ConfigError naming PMTABOUNCE_DLQ_AUDIT_FILE when `path` cannot be appended to (None: nothing to check).

    Opening for append creates the file if it is missing and changes nothing in one that exists.
    """
    if path is None:
        return
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise ConfigError(f"PMTABOUNCE_DLQ_AUDIT_FILE={path}: cannot append to it ({exc.strerror}); "
                          "nothing was done: fix the path or its permissions, or unset it") from None


def reason_option(*names: str):
    """The click option that says why (`reason` in the command's arguments): `--reason` (and `--why`), or only
    `--why` where `--reason` already filters dead letters by their reason."""
    return click.option(*(names or ("--reason", "--why")), "reason", metavar="TEXT", help=REASON_HELP,
                        callback=_one_line)


def _one_line(_ctx, _param, value: str | None) -> str | None:
    """A reason is one line of text: a newline or another control character could forge a line of the
    plain-text log the audit line is also written to."""
    if value is not None and any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise click.BadParameter("a reason is one line of printable text (no newline or control character)")
    return value


def audited(func):
    """Decorate a command `func(settings, ...)` that records operator actions, before it does anything: the audit
    file must be writable (check_writable), and with PMTABOUNCE_AUDIT_REQUIRE_REASON on a run that changes
    data (not --dry-run, not an export without --take) must say why. Both raise ConfigError (exit 2)."""

    @functools.wraps(func)
    def wrapper(settings, *args, **kwargs):
        check_writable(settings.dlq_audit_file)
        changes = not kwargs.get("dry_run", False) and kwargs.get("take", True)
        if settings.audit_require_reason and changes and not (kwargs.get("reason") or "").strip():
            raise ConfigError("PMTABOUNCE_AUDIT_REQUIRE_REASON is on: say why with --reason TEXT (--why TEXT for "
                              "dlq replay, purge and export); nothing was done")
        return func(settings, *args, **kwargs)

    return wrapper
