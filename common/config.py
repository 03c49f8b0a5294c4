"""Settings: one typed object, built once from `PMTABOUNCE_*` variables and an optional TOML file.

Nothing else in the project reads the environment.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .errors import ConfigError
from .policy import DEFAULT_HARD, DEFAULT_SOFT, DEFAULT_SOFT_THRESHOLD, Policy, parse_categories
from .topology import Topology

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# fullmatch only: `$` alone would let a trailing newline through.
TABLE_PREFIX = re.compile(r"[A-Za-z0-9_]{0,32}")  # table names are built from it: identifiers cannot be parameters
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,100}")


@dataclass(frozen=True)
class MySQLTarget:
    """Where the IEM database is. `__repr__` leaves the password out."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str
    unix_socket: str | None = None

    def safe_url(self) -> str:
        """For logs: never the password."""
        return f"mysql://{self.user}@{self.host}:{self.port}/{self.database}"


@dataclass(frozen=True)
class Settings:
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
    dlq_audit_file: Path | None = None  # `dlq replay`/`purge` also append their audit lines here

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
        if not self.amqp_url:
            raise ConfigError("PMTABOUNCE_AMQP_URL is not set (amqp://user:password@host:5672/vhost)")
        return self.amqp_url

    def require_bounce_dir(self, given: Path | None = None) -> Path:
        directory = given or self.bounce_dir
        if directory is None:
            raise ConfigError("no bounce directory: pass DIR or set PMTABOUNCE_BOUNCE_DIR")
        if not directory.is_dir():
            raise ConfigError(f"bounce directory {directory} does not exist or is not a directory")
        return directory

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build and validate; a bad value raises ConfigError naming the variable."""
        env = os.environ if environ is None else environ
        file_values = _read_config_file(env.get("PMTABOUNCE_CONFIG"))

        def get(name: str, default=None):
            key = f"PMTABOUNCE_{name.upper()}"
            if key in env and env[key] != "":
                return env[key], key
            if name in file_values:
                return file_values[name], f"{name} in {env.get('PMTABOUNCE_CONFIG')}"
            return default, key

        values: dict = {}
        for name in ("mysql_url", "amqp_url"):
            values[name] = get(name)[0]
        if values["mysql_url"]:
            parse_mysql_url(values["mysql_url"])
        if values["amqp_url"]:
            _check_amqp_url(values["amqp_url"])
        api_url, where = get("rabbitmq_api_url")
        if api_url and urlsplit(api_url).scheme not in ("http", "https"):
            raise ConfigError(f"{where} must start with http:// or https:// (the management API, port 15672)")
        values["rabbitmq_api_url"] = api_url

        prefix, where = get("table_prefix", "email_")
        if not TABLE_PREFIX.fullmatch(str(prefix)):
            raise ConfigError(f"{where}={prefix!r}: only letters, digits and _ (at most 32)")
        values["table_prefix"] = prefix
        queue_prefix, where = get("queue_prefix", "pmtabounce")
        if not _NAME.fullmatch(str(queue_prefix)):
            raise ConfigError(f"{where}={queue_prefix!r}: only letters, digits, '.', '-' and '_'")
        values["queue_prefix"] = queue_prefix

        bounce_dir, _ = get("bounce_dir")
        values["bounce_dir"] = Path(bounce_dir) if bounce_dir else None
        audit_file, _ = get("dlq_audit_file")
        values["dlq_audit_file"] = Path(audit_file) if audit_file else None
        done_action, where = get("done_action", "rename")
        if done_action not in ("rename", "delete"):
            raise ConfigError(f"{where}={done_action!r}: must be 'rename' or 'delete'")
        values["done_action"] = done_action
        log_format, where = get("log_format", "text")
        if log_format not in ("text", "json"):
            raise ConfigError(f"{where}={log_format!r}: must be 'text' or 'json'")
        values["log_format"] = log_format
        level, where = get("log_level", "INFO")
        if str(level).upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"{where}={level!r}: must be DEBUG, INFO, WARNING or ERROR")
        values["log_level"] = str(level).upper()

        for name, low, high in (
            ("batch_size", 1, 10000),
            ("delivery_limit", 1, 1000),
            ("max_replays", 0, 1000),
            ("metrics_port", 0, 65535),
            ("publish_window", 1, 100000),
        ):
            values[name] = _int(*get(name, getattr(cls, name)), low, high)
        for name in ("rescan_seconds", "retry_max_wait"):
            values[name] = _float(*get(name, getattr(cls, name)))
        values["policy"] = _policy(get, file_values, env.get("PMTABOUNCE_CONFIG"))
        return cls(**values)


def _policy(get, file_values: Mapping, config_path: str | None) -> Policy:
    section = file_values.get("policy", {})
    hard_raw, _ = get("hard_categories", section.get("hard"))
    soft_raw, _ = get("soft_categories", section.get("soft"))
    threshold, where = get("soft_threshold")
    if threshold is None:
        threshold = section.get("soft_threshold", DEFAULT_SOFT_THRESHOLD)
        if "soft_threshold" in section:  # name where a bad value came from, not a variable nobody set
            where = f"[policy] soft_threshold in {config_path}"

    def categories(raw, default):
        if raw is None:
            return default
        if isinstance(raw, list):
            return frozenset(str(c).strip().lower() for c in raw)
        return parse_categories(str(raw))

    try:
        return Policy(
            hard=categories(hard_raw, DEFAULT_HARD),
            soft=categories(soft_raw, DEFAULT_SOFT),
            soft_threshold=_int(threshold, where, 1, 1000),
        )
    except ValueError as exc:
        raise ConfigError(f"bounce policy: {exc}") from None


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


def _float(value, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}={value!r}: not a number") from None
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{where}={number}: must be a finite number more than 0")
    return number


def parse_mysql_url(url: str) -> MySQLTarget:
    """mysql://user:password@host:port/database (password and port optional)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mysql", "mariadb", "mysql+pymysql"):
        raise ConfigError("PMTABOUNCE_MYSQL_URL must start with mysql://")
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise ConfigError("PMTABOUNCE_MYSQL_URL names no database (mysql://user@host:3306/DATABASE)")
    try:
        port = parts.port or 3306
    except ValueError:
        raise ConfigError("PMTABOUNCE_MYSQL_URL has an invalid port") from None
    query = dict(pair.split("=", 1) for pair in parts.query.split("&") if "=" in pair)
    return MySQLTarget(
        host=parts.hostname or "127.0.0.1",
        port=port,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=database,
        unix_socket=unquote(query["unix_socket"]) if "unix_socket" in query else None,
    )


def _check_amqp_url(url: str) -> None:
    if urlsplit(url).scheme not in ("amqp", "amqps"):
        raise ConfigError("PMTABOUNCE_AMQP_URL must start with amqp:// or amqps://")
