"""Settings: one typed object, built once from `PMTABOUNCE_*` variables and an optional TOML file.

Nothing else in the project reads the environment.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError
from .policy import (
    COMPLAINT_SCOPES,
    DEFAULT_COMPLAINT_TYPES,
    DEFAULT_HARD,
    DEFAULT_SOFT,
    DEFAULT_SOFT_THRESHOLD,
    EMPTY_TYPE,
    NO_TYPE,
    Policy,
    parse_categories,
    parse_complaint_types,
    unknown_categories,
)
from .service_urls import MySQLTarget, amqp_urls, list_entries, masked, parse_mysql_url, suggestion
from .topology import Topology

__all__ = ["MySQLTarget", "Settings", "TABLE_PREFIX", "parse_mysql_url"]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# fullmatch only: `$` alone would let a trailing newline through.
TABLE_PREFIX = re.compile(r"[A-Za-z0-9_]{0,32}")  # table names are built from it: identifiers cannot be parameters
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,100}")
# settings kept in Settings.policy
POLICY_NAMES = ("hard_categories", "soft_categories", "soft_threshold", "complaint_types", "complaint_scope")
POLICY_KEYS = ("hard", "soft", "soft_threshold", "complaint_types", "complaint_scope")  # the file's [policy]
# Not ours to check: the test suite's and the preflight's own variables (tests/conftest.py, preflight.py).
RESERVED_PREFIXES = ("PMTABOUNCE_TEST_",)
INT_RANGES = (
    ("batch_size", 1, 10000),
    ("delivery_limit", 1, 1000),
    ("max_replays", 0, 1000),
    ("metrics_port", 0, 65535),
    ("publish_window", 1, 100000),
    ("guard_min", 1, 10_000_000),
    ("guard_window", 1, 86400),
    ("webhook_attempts", 1, 1000),
)


@dataclass(frozen=True)
class Settings:
    """Every setting, validated; `from_env` builds it (docs/configuration.md lists each one)."""

    mysql_url: str | None = field(default=None, repr=False)
    amqp_url: str | None = field(default=None, repr=False)
    rabbitmq_api_url: str | None = field(default=None, repr=False)  # management API, for unacked counts
    table_prefix: str = "email_"
    bounce_dir: Path | None = None
    done_action: str = "rename"  # or "delete"
    policy: Policy = Policy()
    batch_size: int = 500
    queue_prefix: str = "pmtabounce"
    delivery_limit: int = 20
    max_replays: int = 3
    log_format: str = "text"
    log_level: str = "INFO"
    metrics_port: int = 0
    rescan_seconds: float = 5.0
    retry_max_wait: float = 30.0
    publish_window: int = 2000  # producer: records read but not yet safe (confirmed), at most
    dlq_audit_file: Path | None = None  # `dlq`, `undo` and `guard` runs also append their audit lines here
    audit_require_reason: bool = False  # every audited action that changes data must say why (--reason)
    guard: bool = True  # the domain guard (issue 12): hold a domain's hard bounces when they spike
    guard_min: int = 100  # hard bounces in one window that may trip a domain, at least
    guard_factor: float = 3.0  # times the domain's busiest window of the previous 7 days
    guard_window: int = 600  # seconds of bounce time (timeLogged) per window
    webhooks: bool = True  # IEM 6.5.1's list webhooks sent as IEM would (docs/events.md)
    event_stream: bool = False  # every decision on the RabbitMQ decision stream (docs/events.md)
    webhook_timeout: float = 10.0  # seconds for one webhook call, connect and answer
    webhook_attempts: int = 10  # tries of one webhook call before it is parked
    event_retry_max_wait: float = 300.0  # the longest pause between two tries of an event
    event_hold: float = 30.0  # seconds a worker's relay holds its events while bounces flow (0: never)

    @property
    def mysql(self) -> MySQLTarget:
        if not self.mysql_url:
            raise ConfigError("PMTABOUNCE_MYSQL_URL is not set (mysql://user:password@host:port/database)")
        return parse_mysql_url(self.mysql_url)

    @property
    def topology(self) -> Topology:
        """The exchange and queue names (PMTABOUNCE_QUEUE_PREFIX) and the quorum queue's delivery limit
        (PMTABOUNCE_DELIVERY_LIMIT): every role and command takes its RabbitMQ names from here."""
        return Topology(self.queue_prefix, self.delivery_limit)

    @property
    def amqp(self) -> str:
        """PMTABOUNCE_AMQP_URL as set: one node's URL, or several (common/broker.py `Nodes` reads the list)."""
        if not self.amqp_url:
            raise ConfigError("PMTABOUNCE_AMQP_URL is not set (amqp://user:password@host:5672/vhost)")
        return self.amqp_url

    @property
    def rabbitmq_api_urls(self) -> tuple[str, ...]:
        """PMTABOUNCE_RABBITMQ_API_URL's entries (several nodes: separated by commas or spaces); () if unset."""
        return api_urls(self.rabbitmq_api_url, "PMTABOUNCE_RABBITMQ_API_URL") if self.rabbitmq_api_url else ()

    def policy_warnings(self) -> list[str]:
        """Operator-facing warnings for hard/soft categories PowerMTA does not assign (maybe misspelt)."""
        return [f"bounce category {category!r} in the policy is not one PowerMTA assigns"
                + (f" (did you mean {near}?)" if near else " (fine if your bounce-category-patterns define it)")
                for category, near in unknown_categories(self.policy)]

    def require_bounce_dir(self, given: Path | None = None) -> Path:
        directory = given or self.bounce_dir
        if directory is None:
            raise ConfigError("no bounce directory: pass DIR or set PMTABOUNCE_BOUNCE_DIR")
        if not directory.is_dir():
            raise ConfigError(f"bounce directory {directory} does not exist or is not a directory")
        return directory

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build and validate from `environ` (default: the process environment) and PMTABOUNCE_CONFIG.

        Raises ConfigError naming the variable (or the file's key) of a bad value, an unknown
        PMTABOUNCE_* variable, or an unknown key in the file, with the near match when there is one.
        """
        env = os.environ if environ is None else environ
        source = _Source(env, _read_config_file(env.get("PMTABOUNCE_CONFIG")), env.get("PMTABOUNCE_CONFIG"))
        _check_names(env, source.file_values, source.path)
        return cls(
            **_urls(source), **_names(source), **_paths(source), **_choices(source), **_numbers(cls, source),
            policy=_policy(source),
        )


class _Source:
    """Where a setting comes from: PMTABOUNCE_NAME (the environment wins), else `name` in the TOML file."""

    def __init__(self, env: Mapping[str, str], file_values: dict, path: str | None) -> None:
        self.env, self.file_values, self.path = env, file_values, path

    def get(self, name: str, default: Any = None) -> tuple[Any, str]:
        """(value, where it came from, for messages)."""
        key = f"PMTABOUNCE_{name.upper()}"
        if self.env.get(key, "") != "":
            return self.env[key], key
        if name in self.file_values:
            return self.file_values[name], f"{name} in {self.path}"
        return default, key


def known_names() -> tuple[str, ...]:
    """Every setting's lower-case name: PMTABOUNCE_<NAME> in the environment, <name> in the file."""
    return tuple(f.name for f in fields(Settings) if f.name != "policy") + POLICY_NAMES


def _check_names(env: Mapping[str, str], file_values: dict, path: str | None) -> None:
    """A misspelt setting would pass silently as its default: refuse it, naming the near match."""
    variables = [f"PMTABOUNCE_{n.upper()}" for n in (*known_names(), "config")]
    for key in sorted(env):
        if key.startswith("PMTABOUNCE_") and key not in variables and not key.startswith(RESERVED_PREFIXES):
            raise ConfigError(f"unknown variable {key}{suggestion(key, variables)}")
    keys = (*known_names(), "policy")
    for key in sorted(file_values):
        if key not in keys:
            raise ConfigError(f"unknown setting {key!r} in {path}{suggestion(key, keys)}")
    section = file_values.get("policy", {})
    if not isinstance(section, dict):
        raise ConfigError(f"policy in {path} must be a [policy] section")
    for key in sorted(section):
        if key not in POLICY_KEYS:
            raise ConfigError(f"unknown setting {key!r} in [policy] of {path}{suggestion(key, POLICY_KEYS)}")


def _urls(source: _Source) -> dict:
    mysql_url = _text(*source.get("mysql_url"), lists=False)
    amqp_url = _text(*source.get("amqp_url"), lists=True)
    if mysql_url:
        parse_mysql_url(mysql_url)
    if amqp_url:
        amqp_urls(amqp_url)
    api_url, where = source.get("rabbitmq_api_url")
    api_url = _text(api_url, where, lists=True)
    if api_url:
        api_urls(api_url, where)
    return {"mysql_url": mysql_url, "amqp_url": amqp_url, "rabbitmq_api_url": api_url}


def _text(value: Any, where: str, *, lists: bool) -> str | None:
    """A URL setting as text. From the TOML file, a node list may also be an array of URLs (written
    back as the comma-separated list the environment takes); anything else is a ConfigError."""
    if lists and isinstance(value, list) and all(isinstance(entry, str) for entry in value):
        return ", ".join(value)
    if value is not None and not isinstance(value, str):
        kind = "a URL, or an array of URLs" if lists else "a URL"
        raise ConfigError(f"{where} must be {kind} in quotes, not a TOML {type(value).__name__}")
    return value


def api_urls(setting: str, where: str) -> tuple[str, ...]:
    """The management API's addresses: http(s):// URLs separated by commas or whitespace, each checked
    (scheme, host, numeric port); ConfigError naming the entry, password masked."""
    entries = tuple(list_entries(setting, where))
    for number, entry in enumerate(entries, 1):
        named = f"{where} entry {number} ({masked(entry)})" if len(entries) > 1 else where
        parts = urlsplit(entry)
        if parts.scheme not in ("http", "https"):
            raise ConfigError(f"{named} must start with http:// or https:// (the management API, port 15672)")
        try:
            _ = parts.port  # urllib checks it only when asked
        except ValueError:
            raise ConfigError(f"{named} has a port that is not a number") from None
        if not parts.hostname:
            raise ConfigError(f"{named} names no host")
    return entries


def _names(source: _Source) -> dict:
    """Prefixes that become table, exchange and queue names: checked against their patterns."""
    prefix, where = source.get("table_prefix", "email_")
    if not TABLE_PREFIX.fullmatch(str(prefix)):
        raise ConfigError(f"{where}={prefix!r}: only letters, digits and _ (at most 32)")
    queue_prefix, where = source.get("queue_prefix", "pmtabounce")
    if not _NAME.fullmatch(str(queue_prefix)):
        raise ConfigError(f"{where}={queue_prefix!r}: only letters, digits, '.', '-' and '_'")
    return {"table_prefix": prefix, "queue_prefix": queue_prefix}


def _paths(source: _Source) -> dict:
    bounce_dir, audit_file = source.get("bounce_dir")[0], source.get("dlq_audit_file")[0]
    return {"bounce_dir": Path(bounce_dir) if bounce_dir else None,
            "dlq_audit_file": Path(audit_file) if audit_file else None}


def _choices(source: _Source) -> dict:
    values = {}
    for name, default, allowed in (("done_action", "rename", ("rename", "delete")),
                                   ("log_format", "text", ("text", "json"))):
        value, where = source.get(name, default)
        if value not in allowed:
            raise ConfigError(f"{where}={value!r}: must be {' or '.join(repr(a) for a in allowed)}")
        values[name] = value
    level, where = source.get("log_level", "INFO")
    if str(level).upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"{where}={level!r}: must be DEBUG, INFO, WARNING or ERROR")
    values["log_level"] = str(level).upper()
    return values


def _numbers(cls: type[Settings], source: _Source) -> dict:
    values: dict[str, float] = {name: _int(*source.get(name, getattr(cls, name)), low, high)
                                for name, low, high in INT_RANGES}
    for name in ("rescan_seconds", "retry_max_wait", "guard_factor", "webhook_timeout", "event_retry_max_wait"):
        values[name] = _float(*source.get(name, getattr(cls, name)))
    values["event_hold"] = _float(*source.get("event_hold", cls.event_hold), zero=True, maximum=3600)
    values["guard"] = _switch(*source.get("guard", "on"))
    values["webhooks"] = _switch(*source.get("webhooks", "on"))
    values["event_stream"] = _switch(*source.get("event_stream", "off"))
    values["audit_require_reason"] = _switch(*source.get("audit_require_reason", "off"))
    return values


def _policy(source: _Source) -> Policy:
    section = source.file_values.get("policy", {})
    hard = _categories(source, "hard", DEFAULT_HARD)
    soft = _categories(source, "soft", DEFAULT_SOFT)
    threshold, where = source.get("soft_threshold")
    if threshold is None:
        threshold = section.get("soft_threshold", DEFAULT_SOFT_THRESHOLD)
        if "soft_threshold" in section:  # name where a bad value came from, not a variable nobody set
            where = f"[policy] soft_threshold in {source.path}"
    types_raw, types_where = source.get("complaint_types")
    if types_raw is None and "complaint_types" in section:
        types_raw, types_where = section["complaint_types"], f"[policy] complaint_types in {source.path}"
    scope, scope_where = source.get("complaint_scope")
    if scope is None:
        scope = section.get("complaint_scope", "all")
        scope_where = f"[policy] complaint_scope in {source.path}"
    if str(scope).strip().lower() not in COMPLAINT_SCOPES:
        raise ConfigError(f"{scope_where}={scope!r}: must be one of {', '.join(COMPLAINT_SCOPES)}")

    try:
        return Policy(
            hard=hard,
            soft=soft,
            soft_threshold=_int(threshold, where, 1, 1000),
            complaint_types=_complaint_types(types_raw, types_where),
            complaint_scope=str(scope).strip().lower(),
        )
    except ValueError as exc:
        raise ConfigError(f"bounce policy: {exc}") from None


def _categories(source: _Source, key: str, default: frozenset[str]) -> frozenset[str]:
    """PMTABOUNCE_<KEY>_CATEGORIES, else `[policy] <key>` of the file (a list or a comma string), else `default`.

    Raises ConfigError naming the setting for a value that is not text (TOML `hard = 5`) or names no
    category (`""`, `" , "`): an empty hard list would silently disable no one.
    """
    variable = f"PMTABOUNCE_{key.upper()}_CATEGORIES"
    section = source.file_values.get("policy", {})
    if variable in source.env:
        raw, where = source.env[variable], variable
    elif key in section:
        raw, where = section[key], f"[policy] {key} in {source.path}"
    else:
        return default
    items = raw if isinstance(raw, list) else [raw]
    if not all(isinstance(item, str) for item in items):
        raise ConfigError(f"{where}={raw!r}: categories are text, such as \"bad-mailbox\" or [\"bad-mailbox\"]")
    categories = parse_categories(",".join(items))
    if not categories:
        raise ConfigError(f"{where}={raw!r}: names no category (leave it unset for the default "
                          f"{','.join(sorted(default))})")
    return categories


def _complaint_types(raw: Any, where: str) -> frozenset[str]:
    """The Feedback-Types that unsubscribe, from a comma list or a TOML list (None: the default).

    `none` alone is the operator's explicit "record complaints, unsubscribe
    no one"; any other value that names no type is refused (ConfigError), since
    it would silently turn every complaint into `ignored`.
    """
    if raw is None:
        return DEFAULT_COMPLAINT_TYPES
    types = parse_complaint_types(",".join(str(c) or EMPTY_TYPE for c in raw) if isinstance(raw, list) else str(raw))
    if types == {NO_TYPE}:
        return frozenset()
    if not types or NO_TYPE in types:
        raise ConfigError(f"{where}={raw!r}: names no complaint type, so no complaint would unsubscribe anyone; "
                          f"list the Feedback-Types that act (default abuse,empty), or '{NO_TYPE}' alone to only "
                          "record complaints")
    return types


def log_format_asked(environ: Mapping[str, str] | None = None) -> str:
    """PMTABOUNCE_LOG_FORMAT as given ("json" or "text"), for the line that says the other settings are wrong."""
    env = os.environ if environ is None else environ
    return "json" if env.get("PMTABOUNCE_LOG_FORMAT", "").strip().lower() == "json" else "text"


def _read_config_file(path: str | None) -> dict:
    if not path:
        return {}
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"PMTABOUNCE_CONFIG={path}: cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"PMTABOUNCE_CONFIG={path}: not valid TOML ({exc})") from None


def _int(value, where: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}={value!r}: not a whole number") from None
    if not low <= number <= high:
        raise ConfigError(f"{where}={number}: must be between {low} and {high}")
    return number


def _switch(value, where: str) -> bool:
    """on/off, as an operator writes it (also true/false, yes/no, 1/0)."""
    text = str(value).strip().lower()
    if text in ("on", "true", "yes", "1"):
        return True
    if text in ("off", "false", "no", "0"):
        return False
    raise ConfigError(f"{where}={value!r}: must be on or off")


def _float(value, where: str, *, zero: bool = False, maximum: float | None = None) -> float:
    """A number of the environment or the file, more than 0 (or 0 with `zero`), at most `maximum`."""
    if isinstance(value, bool):  # TOML's true would pass as 1.0
        raise ConfigError(f"{where}={value!r}: not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}={value!r}: not a number") from None
    if zero and number == 0:
        return 0.0
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{where}={value}: must be a finite number more than 0{' (or 0)' if zero else ''}")
    if maximum is not None and number > maximum:
        raise ConfigError(f"{where}={value}: must be at most {maximum:g}")
    return number
