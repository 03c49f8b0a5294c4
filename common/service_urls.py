"""PMTABOUNCE_MYSQL_URL and PMTABOUNCE_AMQP_URL: read, their options checked, TLS included.

MySQL URL options are the MySQL driver's own `connect()` argument names (also what SQLAlchemy's
`mysql+<driver>://` URLs pass through): `unix_socket`, `ssl_ca`, `ssl_cert`, `ssl_key`,
`ssl_verify_cert`, `ssl_verify_identity`. AMQP URL options are those of RabbitMQ's URI query
parameter spec for TLS: `cacertfile`, `certfile`, `keyfile`, `server_name_indication` (amqps:// only).
Anything else is refused by name: an option dropped silently once made a TLS connection plain.
"""

from __future__ import annotations

import difflib
import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from .errors import ConfigError

MYSQL_FILE_OPTIONS = ("ssl_ca", "ssl_cert", "ssl_key")
MYSQL_FLAG_OPTIONS = ("ssl_verify_cert", "ssl_verify_identity")
MYSQL_OPTIONS = ("unix_socket", *MYSQL_FILE_OPTIONS, *MYSQL_FLAG_OPTIONS)
AMQP_FILE_OPTIONS = ("cacertfile", "certfile", "keyfile")
AMQP_OPTIONS = (*AMQP_FILE_OPTIONS, "server_name_indication")
_FLAGS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


@dataclass(frozen=True)
class MySQLTarget:
    """Where the IEM database is, and how to reach it (TLS when any ssl_* is given). `__repr__` leaves
    the password out."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str
    unix_socket: str | None = None
    ssl_ca: str | None = None
    ssl_cert: str | None = None
    ssl_key: str | None = None
    ssl_verify_cert: bool | None = None
    ssl_verify_identity: bool | None = None

    def safe_url(self) -> str:
        """For logs: never the password; the socket when there is one (the driver then ignores host and port)."""
        if self.unix_socket:
            return f"mysql://{self.user}@localhost/{self.database}?unix_socket={self.unix_socket}"
        return f"mysql://{self.user}@{self.host}:{self.port}/{self.database}"

    def wants_tls(self) -> bool:
        """True when the URL names any ssl_* option, whatever its value: then only TLS will do."""
        return any(getattr(self, name) is not None for name in (*MYSQL_FILE_OPTIONS, *MYSQL_FLAG_OPTIONS))

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context the URL's ssl_* options ask for, or None (no ssl_* option: TLS not required; the
        driver, PyMySQL 1.2 on, then still uses TLS without checking the certificate when the server offers it,
        MySQL's PREFERRED mode, and goes on in clear when it does not).

        Built here rather than by the MySQL driver, whose own ssl_* handling makes none when every value is
        false (`ssl_verify_cert=false` alone meant a connection in clear) and does not verify with `ssl_ca`
        alone. Rules: the server's certificate is verified (against `ssl_ca`, else the system's CAs) unless
        `ssl_verify_cert=false`; its host name is checked when `ssl_verify_identity=true`. store/db.py's
        `connect` refuses a server without TLS when there is a context (CR_SSL_CONNECTION_ERROR, 2026)."""
        if not self.wants_tls():
            return None
        context = ssl.create_default_context(cafile=self.ssl_ca)
        # Python 3.13 sets VERIFY_X509_STRICT, which the certificates MySQL and MariaDB generate themselves
        # fail (the driver clears it for the same reason).
        context.verify_flags &= ~ssl.VERIFY_X509_STRICT
        context.check_hostname = bool(self.ssl_verify_identity)
        if self.ssl_verify_cert is False:
            context.verify_mode = ssl.CERT_NONE
        if self.ssl_cert:
            context.load_cert_chain(self.ssl_cert, self.ssl_key)
        return context


def suggestion(name: str, known: Iterable[str]) -> str:
    """' (did you mean X?)' for the nearest known name (difflib), or ''."""
    near = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {near[0]}?)" if near else ""


def url_options(query: str, known: tuple[str, ...], variable: str) -> dict[str, str]:
    """The query options of a URL; an unknown one raises ConfigError naming it and the near match."""
    options = dict(parse_qsl(query, keep_blank_values=True))
    for name in options:
        if name not in known:
            raise ConfigError(f"{variable}: unknown option {name!r}{suggestion(name, known)}; "
                              f"known options: {', '.join(known)}")
    return options


def _existing_file(path: str, option: str, variable: str) -> str:
    if not Path(path).is_file():
        raise ConfigError(f"{variable}: {option}={path} is not a readable file")
    return path


def check_tls_files(options: dict[str, str], ca: str, cert: str, key: str, variable: str) -> None:
    """Load the CA and client certificate named in the options now, so a wrong file stops the start
    (exit 2) instead of every later connection attempt."""
    try:
        context = ssl.create_default_context(cafile=options.get(ca))
        if cert in options:
            context.load_cert_chain(options[cert], options.get(key))
    except (ssl.SSLError, OSError) as exc:
        named = ", ".join(f"{name}={options[name]}" for name in (ca, cert, key) if name in options)
        raise ConfigError(f"{variable}: {named}: not a usable PEM certificate or key ({exc})") from None


def parse_mysql_url(url: str) -> MySQLTarget:
    """mysql://user:password@host:port/database?options (password, port and options optional)."""
    variable = "PMTABOUNCE_MYSQL_URL"
    parts = urlsplit(url)
    if parts.scheme not in ("mysql", "mariadb", "mysql+pymysql"):
        raise ConfigError(f"{variable} must start with mysql://")
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise ConfigError(f"{variable} names no database (mysql://user@host:3306/DATABASE)")
    try:
        port = parts.port or 3306
    except ValueError:
        raise ConfigError(f"{variable} has an invalid port") from None
    options = url_options(parts.query, MYSQL_OPTIONS, variable)
    tls: dict = {name: _existing_file(options[name], name, variable) for name in MYSQL_FILE_OPTIONS if name in options}
    if tls:
        check_tls_files(options, "ssl_ca", "ssl_cert", "ssl_key", variable)
    for name in MYSQL_FLAG_OPTIONS:
        if name in options:
            if options[name].lower() not in _FLAGS:
                raise ConfigError(f"{variable}: {name}={options[name]!r} must be true or false")
            tls[name] = _FLAGS[options[name].lower()]
    if tls.get("ssl_verify_identity") and tls.get("ssl_verify_cert") is False:
        raise ConfigError(f"{variable}: ssl_verify_identity=true checks the certificate that ssl_verify_cert=false "
                          "would not verify; choose one")
    if "unix_socket" in options and not Path(options["unix_socket"]).is_socket():
        raise ConfigError(f"{variable}: unix_socket={options['unix_socket']} is not a socket (is the server running "
                          "on this host, and is this its socket path?)")
    return MySQLTarget(
        host=parts.hostname or "127.0.0.1",
        port=port,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=database,
        unix_socket=options.get("unix_socket"),
        **tls,
    )


AMQP_SEPARATORS = re.compile(r"[\s,]+")
_SCHEME = re.compile(r"(?=\b[A-Za-z][A-Za-z0-9+.-]*://)")


def list_entries(setting: str, variable: str) -> list[str]:
    """The entries of a list setting (PMTABOUNCE_AMQP_URL, PMTABOUNCE_RABBITMQ_API_URL): full URLs separated
    by commas or whitespace, empty entries dropped.

    Raises ConfigError when a separator stands inside a password (the entry after it has no scheme and
    an `@`: a host never holds one), naming the entry and never its text, which is part of a password.
    """
    entries = [entry for entry in AMQP_SEPARATORS.split(setting.strip()) if entry]
    for number, entry in enumerate(entries[1:], 2):
        if "://" not in entry and "@" in entry:
            raise ConfigError(f"{variable} entry {number - 1}: its password holds a comma or a space, which "
                              "separate the nodes of the list; write them %2C and %20")
    return entries


def amqp_urls(setting: str) -> tuple[str, ...]:
    """The nodes of PMTABOUNCE_AMQP_URL: one URL, or several full URLs separated by commas or whitespace.

    Each entry is a whole amqp:// or amqps:// URL (its own login and port; one virtual host for all);
    a comma inside a password is written %2C. Raises ConfigError naming the entry (its position and its
    text, password masked) that is not a URL, has no host, has a port that is not a number, or names
    another virtual host than the first.
    """
    entries = list_entries(setting, "PMTABOUNCE_AMQP_URL")
    if not entries:
        raise ConfigError("PMTABOUNCE_AMQP_URL is empty (amqp://user:password@host:5672/vhost)")
    for number, entry in enumerate(entries, 1):
        named = f"PMTABOUNCE_AMQP_URL entry {number} ({masked(entry)})" if len(entries) > 1 else "PMTABOUNCE_AMQP_URL"
        check_amqp_url(entry, named)
        if _vhost(entry) != _vhost(entries[0]):
            raise ConfigError(f"{named} names virtual host {_vhost(entry)!r}, entry 1 {_vhost(entries[0])!r}: the "
                              "nodes of one cluster share their virtual hosts, so every entry names the same one")
    return tuple(entries)


def _vhost(url: str) -> str:
    """The virtual host an amqp:// URL names, as RabbitMQ's URI spec reads it (no path: "/")."""
    path = urlsplit(url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def masked(url: str) -> str:
    """`url` as written, with the password replaced by `****` (for messages and logs).

    Also when `url` is not one well-formed URL: each `scheme://` in it (several URLs joined by another
    separator) is masked, and text before an `@` that follows no scheme (the rest of a password cut by
    a separator) is masked whole.
    """
    pieces = [piece for piece in _SCHEME.split(url) if piece]
    if len(pieces) > 1:
        return "".join(masked(piece) for piece in pieces)
    if "://" not in url:
        return f"****@{url.rsplit('@', 1)[1]}" if "@" in url else url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, host = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{user.split(':', 1)[0]}:****@{host}"))


def host_port(host: str, port: int | None) -> str:
    """`host:port` for a URL, an IPv6 address in brackets ([::1]:5672); `host` alone when port is None."""
    bracketed = f"[{host}]" if ":" in host else host
    return bracketed if port is None else f"{bracketed}:{port}"


def check_amqp_url(url: str, variable: str = "PMTABOUNCE_AMQP_URL") -> None:
    """One node's URL: amqp:// or amqps://, a host, a numeric port, and only the TLS options we read
    (and those only with amqps://). `variable` names the setting (or the list entry) in messages."""
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "amqps"):
        raise ConfigError(f"{variable} must start with amqp:// or amqps:// (several nodes: full URLs separated "
                          "by commas or spaces)")
    try:
        _ = parts.port  # urllib checks it only when asked
    except ValueError:
        raise ConfigError(f"{variable} has a port that is not a number (several nodes: one full URL each, "
                          "separated by commas or spaces)") from None
    if not parts.hostname:
        raise ConfigError(f"{variable} names no host")
    if "/" in parts.path[1:]:
        hint = ("several URLs joined by another separator: separate the nodes with commas or spaces"
                if "://" in parts.path else "a '/' inside the virtual host's name is written %2F")
        raise ConfigError(f"{variable}: the virtual host is one name after the host ({hint})")
    options = url_options(parts.query, AMQP_OPTIONS, variable)
    if options and parts.scheme != "amqps":
        names = ", ".join(options)
        raise ConfigError(f"{variable}: {names} {'applies' if len(options) == 1 else 'apply'} only to amqps:// (TLS)")
    for name in AMQP_FILE_OPTIONS:
        if name in options:
            _existing_file(options[name], name, variable)
    if options:
        check_tls_files(options, "cacertfile", "certfile", "keyfile", variable)
