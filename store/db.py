"""MySQL connections and table names: the table prefix is applied here, and only here."""

from __future__ import annotations

import socket
import ssl
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, cast

import pymysql
import pymysql.cursors
from pymysql.constants import COMMAND, SERVER_STATUS

from ..common.config import TABLE_PREFIX, MySQLTarget
from ..common.errors import CommittedElsewhere, ConfigError, FatalError, PermanentError, TransientError

# MySQL/MariaDB error numbers (server errors 1xxx, client errors 2xxx), by what the caller should do.
TRANSIENT = {
    1040,  # too many connections
    1053,  # server shutdown in progress
    1205,  # lock wait timeout
    1213,  # deadlock
    1290,  # --read-only (a failover in progress)
    1927,  # connection killed (MariaDB)
    2002, 2003, 2006, 2013, 2055,  # cannot connect, gone away, lost connection
}
FATAL = {
    1044, 1045, 1049, 1698,  # access denied, unknown database
    1130,  # this host may not connect
    1142, 1143,  # command or column denied: the grants are wrong
    1146, 1054,  # table or column missing: setup not run, or the wrong prefix
    2026,  # TLS asked for (ssl_* in the URL) but refused or unverifiable
}
TLS_REFUSALS = ("CERTIFICATE_VERIFY_FAILED", "WRONG_VERSION_NUMBER")  # a 2003 that no retry can fix
DENIED = (1142, 1143)  # command or column denied: the account lacks a grant
DUPLICATE_KEY = 1062
# The ledger's unique key (ledger.py): its name from schema version 4 on, and before.
LEDGER_KEYS = ("pmtabounce_ledger_record", "pmtabounce_ledger_fingerprint")


class Cursor(Protocol):
    """What our SQL functions use of a DB-API cursor (PyMySQL's `Cursor`)."""

    rowcount: int
    lastrowid: int
    connection: Any

    def execute(self, query: str, args: Any = None) -> int: ...

    def executemany(self, query: str, args: Any) -> int | None: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> Any: ...


@dataclass(frozen=True)
class Tables:
    """Every table name we use, built from the validated prefix (identifiers cannot be parameters)."""

    prefix: str = "email_"

    def __post_init__(self) -> None:
        if not TABLE_PREFIX.fullmatch(self.prefix):
            raise ConfigError(f"table prefix {self.prefix!r}: only letters, digits and _ (at most 32)")

    def _name(self, base: str) -> str:
        return f"`{self.prefix}{base}`"

    @property
    def lists(self) -> str:
        return self._name("lists")

    @property
    def subscribers(self) -> str:
        return self._name("list_subscribers")

    @property
    def bounces(self) -> str:
        return self._name("list_subscriber_bounces")

    @property
    def unsubscribes(self) -> str:
        return self._name("list_subscribers_unsubscribe")

    @property
    def stats_newsletters(self) -> str:
        return self._name("stats_newsletters")

    @property
    def stats_autoresponders(self) -> str:
        return self._name("stats_autoresponders")

    @property
    def customfields(self) -> str:
        return self._name("customfields")

    @property
    def customfield_lists(self) -> str:
        return self._name("customfield_lists")

    @property
    def subscribers_data(self) -> str:
        return self._name("subscribers_data")

    @property
    def webhooks(self) -> str:
        return self._name("webhooks")  # IEM 6.5.1 on, as webhook_logs

    @property
    def webhook_logs(self) -> str:
        return self._name("webhook_logs")

    @property
    def ledger(self) -> str:
        return self._name("pmtabounce_ledger")

    @property
    def meta(self) -> str:
        return self._name("pmtabounce_meta")

    @property
    def guard_domains(self) -> str:
        return self._name("pmtabounce_guard_domains")

    @property
    def guard_windows(self) -> str:
        return self._name("pmtabounce_guard_windows")

    @property
    def audit(self) -> str:
        return self._name("pmtabounce_audit")

    @property
    def outbox(self) -> str:
        return self._name("pmtabounce_outbox")

    @property
    def outbox_attempts(self) -> str:
        return self._name("pmtabounce_outbox_attempts")


# bytes: a GROUP_CONCAT answer this long may have been cut (numbers_of: then it is asked again, row by row).
# MySQL's default is 1,024; MariaDB's 1 MB. Set on every connection.
GROUP_CONCAT_MAX = 1 << 20

Connection = pymysql.connections.Connection  # so that modules holding one need not import PyMySQL


class _SharedPreferredTls(pymysql.connections.Connection):
    """PyMySQL's connection, with one TLS context for all those whose URL asks for no TLS. PyMySQL 1.2 on
    then tries TLS anyway if the server offers it ("PREFERRED": no certificate check) and builds, for
    every connection, a context that loads the system's certificate authorities it will not use:
    40-50 ms of CPU a connection here, several per `process` run (issue 20). A context serves any
    number of connections; what PyMySQL does with it is unchanged."""

    def _create_ssl_ctx(self, sslp: Any) -> ssl.SSLContext:
        make = super()._create_ssl_ctx  # type: ignore[misc]  # PyMySQL's, not in its stubs
        if not (isinstance(sslp, dict) and not sslp):
            return make(sslp)
        if not _PREFERRED:  # two threads may both make one: either serves
            _PREFERRED.append(make({}))
        return _PREFERRED[0]


_PREFERRED: list[ssl.SSLContext] = []  # the one context _SharedPreferredTls makes, once needed


def connect(target: MySQLTarget, *, timeout: float = 10.0, read_timeout: float | None = None) -> Connection:
    """A connection for one thread. READ COMMITTED: once we hold a subscriber's row lock,
    every later read sees the bounce rows other workers committed before they let it go.

    `timeout`: seconds to open the socket; `read_timeout` (seconds; default the larger of `timeout`
    and 60) bounds the wait for one statement's answer, and for sending it, the handshake included.
    Raises what PyMySQL raises."""
    io_timeout = read_timeout or max(timeout, 60.0)
    connection = _SharedPreferredTls(
        host=target.host,
        port=target.port,
        user=target.user,
        password=target.password,
        database=target.database,
        unix_socket=target.unix_socket,
        ssl=target.ssl_context(),  # TLS from the URL's ssl_* options: a context of ours (service_urls.py)
        charset="utf8mb4",
        autocommit=False,
        connect_timeout=timeout,
        read_timeout=io_timeout,
        write_timeout=io_timeout,
        cursorclass=BindingCursor,
    )
    if target.wants_tls() and not isinstance(connection._sock, ssl.SSLSocket):  # type: ignore[attr-defined]
        connection.close()  # PyMySQL before 1.2 went on in clear when the server offered no TLS
        raise pymysql.err.OperationalError(2026, "TLS is required (ssl_* in the URL) but the server offers none")
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        cursor.execute(f"SET SESSION innodb_lock_wait_timeout = 20, group_concat_max_len = {GROUP_CONCAT_MAX}")
    return cast(Connection, connection)  # its cursors are BindingCursors, a Cursor subclass


def bound_io(connection: Connection, seconds: float) -> None:
    """Let each later read or write on `connection` wait at most `seconds` (a silent, partitioned
    server otherwise holds a call for the 60 s read timeout). PyMySQL has no public setter, but
    applies these two attributes to the socket before every read and write (connections.py)."""
    connection._read_timeout = connection._write_timeout = max(seconds, 0.1)  # type: ignore[attr-defined]


def translate(exc: BaseException) -> BaseException:
    """A PyMySQL failure as one of our kinds; anything else is returned as it is.

    Input: what PyMySQL raised (`pymysql.err.*`, which carry `(errno, message)`, or a socket error).
    Output: TransientError (retry: the connection, a deadlock, a lock wait, a failover),
    CommittedElsewhere (1062 on the ledger's key: another worker won the race, retry),
    FatalError (grants, unknown database, missing table or column: an operator must act), or
    PermanentError (the server refused this data: isolate the record, dead-letter it).
    Error numbers: MariaDB's and MySQL's server and client error references.
    """
    if isinstance(exc, (pymysql.err.InterfaceError, ConnectionError, TimeoutError)):
        return TransientError(f"database connection lost: {exc}")
    if not isinstance(exc, pymysql.err.MySQLError):
        return exc
    code = error_number(exc)
    message = exc.args[1] if len(exc.args) > 1 else str(exc)
    text = f"MySQL error {code}: {message}"
    if code == DUPLICATE_KEY and any(key in str(message) for key in LEDGER_KEYS):
        return CommittedElsewhere(text)
    if code in FATAL or any(reason in str(message) for reason in TLS_REFUSALS):
        return FatalError(text)
    if code in TRANSIENT:
        return TransientError(text)
    return PermanentError(text)


def error_number(exc: BaseException) -> int:
    """MySQL's error number of a PyMySQL exception (0 when it has none)."""
    return exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0


def setting_to_check(exc: BaseException, target: MySQLTarget, prefix: str) -> str:
    """Name the setting an operator should look at for a fatal database error."""
    code = error_number(exc)
    if code in (1146, 1054):
        return f"check PMTABOUNCE_TABLE_PREFIX={prefix!r} and that `pmtabounce setup` was run"
    if code in DENIED:
        return f"the user of PMTABOUNCE_MYSQL_URL={target.safe_url()} lacks a grant"
    return f"check PMTABOUNCE_MYSQL_URL={target.safe_url()}"


def table_exists(cursor: Cursor, table: str) -> bool:
    """Whether `table` (a Tables name, quoted) is in the connection's database (information_schema, which shows
    a table to a user with any grant on it)."""
    cursor.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                   "AND TABLE_NAME = %s", (table.strip("`"),))
    return int(cursor.fetchone()[0]) == 1


def case_of(key: str, values: Mapping) -> tuple[str, list]:
    """`CASE key WHEN k THEN v ... ELSE 0 END` and its parameters, for one set-based UPDATE
    that gives each row of a batch its own value."""
    keys = sorted(values)
    params = [item for k in keys for item in (k, values[k])]
    return f"CASE {key} {' '.join(['WHEN %s THEN %s'] * len(keys))} ELSE 0 END", params


MAX_STATEMENT = 1_000_000  # bytes; below MySQL's default max_allowed_packet, as PyMySQL's executemany

# Values are escaped a statement at a time: joined by SEPARATOR (which escaping leaves as it is) into one
# text, escaped in one call, split again. QUOTE marks where insert_rows' quotes go. A value that holds either
# character itself (a control character no address, file name or DSN carries) takes PyMySQL's own path.
SEPARATOR, QUOTE = "\x01", "\x02"
NoneType = type(None)


def escaper(connection: Any) -> Callable[[str], str]:
    """The escaping PyMySQL applies on `connection` (its `_escape_string`): backslash escapes
    (`pymysql.converters.escape_string`'s, written by `escape_backslashes`), or only a doubled quote when
    the server's sql_mode has NO_BACKSLASH_ESCAPES (the session state the server reports with every answer)."""
    if connection.server_status & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES:
        return _double_quotes
    return escape_backslashes


# pymysql.converters' table (MySQL's string literal escapes), backslash first: the backslashes the
# others add are not escaped again.
BACKSLASH_ESCAPES = (("\\", "\\\\"), ("\0", "\\0"), ("\n", "\\n"), ("\r", "\\r"), ("\x1a", "\\Z"),
                     ('"', '\\"'), ("'", "\\'"))


def escape_backslashes(text: str) -> str:
    """`pymysql.converters.escape_string(text)`, the same text, in a tenth of the time on a statement's
    values: its `str.translate` maps one character to two, which takes CPython's slow path, character by
    character; `str.replace` of each of the seven is a memory scan."""
    for character, escaped in BACKSLASH_ESCAPES:
        if character in text:
            text = text.replace(character, escaped)
    return text


def literals(values: Sequence, escape: Callable[[str], str]) -> list[str] | None:
    """`values` as SQL literals, exactly as PyMySQL's `Connection.escape` writes them (str quoted and
    escaped with `escape`, int in decimal, None as NULL), in one escaping call for all of them;
    None when a value is of another type (bool, float, bytes...) or holds SEPARATOR: the caller then
    takes PyMySQL's own path, value by value."""
    kinds = set(map(type, values))
    if not kinds <= {str, int, NoneType}:
        return None
    joined = SEPARATOR.join(map(str, values))
    if joined.count(SEPARATOR) != len(values) - 1:
        return None
    texts = escape(joined).split(SEPARATOR)
    if kinds == {int}:
        return texts
    return ["'" + text + "'" if type(value) is str else "NULL" if value is None else text
            for text, value in zip(texts, values, strict=True)]


class BindingCursor(pymysql.cursors.Cursor):
    """PyMySQL's cursor, binding a statement's parameters in one escaping call (`literals`) rather than
    four calls per value: a batch's IN lists of 500-1,000 values were a tenth of `process`'s CPU
    (issue 20). The text sent is the same as PyMySQL's, byte for byte (tests/unit/test_binding.py);
    parameters of other types, or a mapping, take PyMySQL's own `_mogrify`, which `execute` calls."""

    def _mogrify(self, query: str, args: Any) -> str:
        if type(args) in (list, tuple) and args and self.connection is not None:
            texts = literals(args, escaper(self.connection))
            if texts is not None:
                try:
                    return query % tuple(texts)
                except TypeError as exc:
                    raise pymysql.err.ProgrammingError(str(exc)) from exc
        return super()._mogrify(query, args)  # type: ignore[misc]  # PyMySQL's, not in its stubs

    # Inside writes_behind, the statements sent whose answers are not read yet: for each, the sequence number
    # its answer starts with (PyMySQL checks it, and resets its count with every command sent); None outside.
    behind: deque[int] | None = None

    def execute(self, query: str, args: Any = None) -> int:
        """PyMySQL's `execute`; inside `writes_behind`, a write (INSERT, UPDATE, DELETE, REPLACE) is sent
        without waiting for its answer (returns -1, `rowcount` -1), and any other statement first reads the
        answers owed (`catch_up`, which raises the first error among them)."""
        if self.behind is not None:
            if query.lstrip()[:7].upper().startswith(WRITES):
                text = self.mogrify(query, args)
                connection: Any = self._get_db()  # type: ignore[attr-defined]  # PyMySQL's, not in its stubs
                connection._execute_command(COMMAND.COM_QUERY, text)
                self.behind.append(connection._next_seq_id)
                self._executed = text
                self.rowcount = -1
                return -1
            self.catch_up()
        return super().execute(query, args)

    def catch_up(self) -> None:
        """Read the answers of the statements sent behind, in order. The first error the server answered is
        raised once every answer is read (the connection stays in step for the caller's ROLLBACK); a lost
        connection is raised at once."""
        first: Exception | None = None
        connection: Any = self._get_db()  # type: ignore[attr-defined]  # PyMySQL's, not in its stubs
        while self.behind:
            _ack_at_once(connection._sock)
            connection._next_seq_id = self.behind.popleft()
            try:
                connection._read_query_result()
            except pymysql.err.MySQLError as exc:
                if not _answered(exc) or connection._sock is None:
                    self.behind.clear()  # the connection is lost, or out of step: nothing more can be read
                    connection._force_close()
                    raise first or exc from None
                first = first or exc
        if first is not None:
            raise first


WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")  # statements writes_behind sends without waiting


QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only


def _ack_at_once(sock: Any) -> None:
    """Acknowledge what arrives on `sock` at once (Linux TCP_QUICKACK; elsewhere, or on a Unix socket,
    nothing). The answers owed come back to back; a relay on the way that keeps Nagle's algorithm on
    (socat, a plain TCP proxy) holds each but the first until ours is acknowledged, and the kernel delays
    that acknowledgement by up to 40 ms when we send nothing: batches were 3-4 times slower through one.
    The kernel leaves quick mode on its own, so it is asked before each answer."""
    if QUICKACK is not None and sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
        except OSError:  # a Unix socket has no TCP options
            pass


def _answered(exc: pymysql.err.MySQLError) -> bool:
    """The server's answer to a statement (an error packet: a server error number), not the client's own
    error (2xxx, or 0: a packet out of sequence), after which the connection cannot be read on."""
    number = exc.args[0] if exc.args else 0
    return isinstance(number, int) and number > 0 and not 2000 <= number < 3000


@contextmanager
def writes_behind(cursor: Cursor) -> Iterator[None]:
    """In this block `cursor`'s writes are sent without waiting for their answers (pipelining: MySQL's
    protocol answers a connection's statements in the order sent), and read when a statement with a result
    comes, or at the block's end: the server executes one while Python builds the next (issue 20).

    The first error the server answered is raised there, after every answer owed is read, as the
    statement's own execute would have raised it; the statements after it were executed meanwhile, in the
    same transaction, or, after one that ended it (a deadlock), in the next, which the caller's ROLLBACK
    undoes. So no COMMIT may be sent behind: `connection.commit()` goes after the block, which has read
    every answer. An error raised in the block reads what is owed and is raised itself; an interruption
    (KeyboardInterrupt, CallAbandoned) leaves the answers unread: the caller closes the connection.
    A cursor other than BindingCursor (a test's) executes as usual."""
    if not isinstance(cursor, BindingCursor) or cursor.behind is not None:
        yield
        return
    cursor.behind = deque()
    try:
        yield
        cursor.catch_up()
    except Exception:
        try:
            cursor.catch_up()
        except Exception:  # noqa: S110 - the block's own error says what went wrong first
            pass
        raise
    finally:
        cursor.behind = None


def catch_up(cursor: Cursor) -> None:
    """Inside `writes_behind`: wait for the statements sent so far (their first error raised); else nothing."""
    if isinstance(cursor, BindingCursor) and cursor.behind:
        cursor.catch_up()


def insert_rows(cursor: Cursor, statement: str, rows: Sequence[Sequence], *, suffix: str = "") -> None:
    """`statement` (INSERT INTO t (cols) VALUES) with the rows appended, many per statement,
    each statement ending in `suffix` (an ON DUPLICATE KEY UPDATE clause, say).

    The same text as PyMySQL's executemany (str, int and None only; anything else raises TypeError),
    built with one %-format per row (a template per row's types, QUOTE where the quotes go) and one
    escaping call per statement: value by value it was a third of a batch's time for the ledger's
    columns (issues 13 and 20). A statement's unescaped text is kept to MAX_STATEMENT / 2 characters, which
    escaping at most doubles (as before, characters are counted, not their UTF-8 bytes).
    """
    escape = escaper(cursor.connection)
    templates: dict[tuple, tuple[str, int]] = {}
    values: list[str] = []
    quotes, size = 0, len(statement)

    def send() -> None:
        text = ",".join(values)
        if text.count(QUOTE) != quotes:  # a value holds QUOTE itself: escape value by value
            text = ",".join("(" + ",".join(_literal(v, escape) for v in row) + ")" for row in pending)
        else:
            text = escape(text).replace(QUOTE, "'")
        cursor.execute(statement + text + suffix)

    pending: list[Sequence] = []
    for row in rows:
        kinds = tuple(map(type, row))
        template = templates.get(kinds)
        if template is None:
            template = templates[kinds] = _template(kinds)
        value = template[0] % tuple(row)
        if values and size + len(value) > MAX_STATEMENT // 2:
            send()
            values, pending, quotes, size = [], [], 0, len(statement)
        values.append(value)
        pending.append(row)
        quotes += template[1]
        size += len(value) + 1
    if values:
        send()


def _template(kinds: tuple[type, ...]) -> tuple[str, int]:
    """A %-format for a row of these types, and how many QUOTE marks it writes."""
    parts = []
    for kind in kinds:
        if kind is str:
            parts.append(QUOTE + "%s" + QUOTE)
        elif kind is int:
            parts.append("%d")
        elif kind is NoneType:
            parts.append("NULL%.0s")  # consumes the None, writes nothing of it
        else:
            raise TypeError(f"insert_rows takes str, int and None, not {kind.__name__}")
    return "(" + ",".join(parts) + ")", 2 * kinds.count(str)


def _literal(value: str | int | None, escape: Callable[[str], str]) -> str:
    if value is None:
        return "NULL"
    return "'" + escape(value) + "'" if type(value) is str else str(value)


def numbers_answer(columns: Sequence[str], *, counted: str = "*") -> str:
    """A SELECT list that answers integer `columns` (SQL expressions, never NULL in a row counted) of many rows
    in one row: how many (`COUNT(counted)`), their exact length as text, and the numbers as one GROUP_CONCAT
    string. Read it with `numbers_of`. PyMySQL decodes a result row in about 7 µs (issue 20); the string is
    split by C code."""
    lengths = " + ".join(f"LENGTH({column})" for column in columns)
    listed = ", ' ', ".join(columns)
    return f"COUNT({counted}), SUM({lengths} + {len(columns)}) - 1, GROUP_CONCAT({listed} SEPARATOR ' ')"


def numbers_of(answer: Sequence[Any], width: int) -> list[tuple[int, ...]] | None:
    """The rows (tuples of `width` ints) of a `numbers_answer` (`answer`: its three columns, count, length
    and text, str or bytes); None when the string is not whole: cut at the
    session's group_concat_max_len (`connect` sets it to GROUP_CONCAT_MAX; MySQL's default is 1,024 bytes) or
    missing a row that had a NULL (GROUP_CONCAT skips it, COUNT does not). The caller then reads the rows."""
    count, length, text = answer
    if text is None:
        return [] if not count else None
    if len(text) != length:
        return None
    numbers = list(map(int, text.split()))
    if len(numbers) != width * count:
        return None
    each = iter(numbers)
    return list(zip(*[each] * width, strict=True))


def int_rows(cursor: Cursor, columns: Sequence[str], source: str, params: Sequence, *,
             select: str = "") -> list[tuple]:
    """Rows of the integer `columns` (SQL expressions) of `source` (`FROM … WHERE …`), asked as one
    `numbers_answer` row and, when that is not whole (`numbers_of` None), asked again row by row.
    `select`: a modifier after SELECT (`STRAIGHT_JOIN `)."""
    cursor.execute(f"SELECT {select}{numbers_answer(columns)} {source}", params)
    rows = numbers_of(cursor.fetchone(), len(columns))
    if rows is None:
        cursor.execute(f"SELECT {select}{', '.join(columns)} {source}", params)
        return [tuple(row) for row in cursor.fetchall()]
    return rows


def _double_quotes(text: str) -> str:
    """Escaping under NO_BACKSLASH_ESCAPES: a quote is doubled, a backslash is an ordinary character."""
    return text.replace("'", "''")
