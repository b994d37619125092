"""The warehouse port: what the rest of supportstream needs from ClickHouse, and its errors.

Two adapters implement :class:`Backend`: :class:`sinks.chdb_backend.ChdbBackend` (the embedded
warehouse, a directory on disk) and :class:`sinks.native_backend.NativeBackend` (a ClickHouse
server over the native protocol). One contract suite (``tests/sinks/contract.py``) runs against
both, so code above this port never needs to know which one it talks to.

Rules every adapter keeps:

- Rows are inserted as *data*, never spliced into SQL text: values cannot change the statement.
- Query parameters use ClickHouse's own ``{name:Type}`` placeholders and are bound by the server.
- Library exceptions never escape: they become :class:`SinkError` (``retryable`` tells a caller
  whether trying the same thing again may succeed) or :class:`QueryError` (the SQL itself is
  wrong; the message is ClickHouse's, meant for the person who wrote the query).
- Results come back as plain Python values: ``int``, ``float``, ``str``, ``bool``, ``None``,
  ``datetime.date``, ``decimal.Decimal``, lists, and UTC-aware ``datetime.datetime``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "DATABASE",
    "Backend",
    "QueryError",
    "SinkError",
    "check_dedup_token",
    "check_row_width",
    "insert_into",
    "open_backend",
    "quote_identifier",
    "quote_table",
]


DATABASE = "supportstream"
"""The database every projection lives in; the migrations' SQL names it too."""


class SinkError(Exception):
    """The warehouse could not do what was asked.

    ``retryable`` is true when the same call may succeed later unchanged (a timeout, a lost
    connection, too many parts, memory pressure); false when retrying is pointless (the schema
    does not match, the warehouse directory is locked by another process). ``code`` is
    ClickHouse's numeric error code when there is one.
    """

    def __init__(self, message: str, *, retryable: bool = False, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.code = code

    def __str__(self) -> str:
        return self.message


class QueryError(SinkError):
    """The SQL is wrong (syntax, unknown table or column, type mismatch, bad parameter).

    A user's mistake, not a failure: the message is ClickHouse's own text, fit to be printed
    without a traceback. Never retryable.
    """

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message, retryable=False, code=code)


@runtime_checkable
class Backend(Protocol):
    """A ClickHouse warehouse: the embedded chdb directory or a server.

    Adapters are safe to share between threads (calls are serialised inside) but are not
    meant for concurrent heavy use; one writer per process is the expected shape.
    """

    def execute(self, sql: str) -> None:
        """Run a statement that returns nothing worth reading (DDL, OPTIMIZE, SET)."""
        ...

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        dedup_token: str | None = None,
    ) -> None:
        """Insert ``rows`` (each in ``columns`` order) into ``table`` as one INSERT.

        Values are sent as data in a row format, never as SQL. Accepted values: ``None``,
        ``bool``, ``int``, ``float``, ``str``, ``decimal.Decimal``, ``datetime.date``,
        ``datetime.datetime`` (aware; naive ones are taken as UTC) and lists of those.

        ``dedup_token`` is passed as ``insert_deduplication_token``: inserting again with the
        same token into a table whose ``non_replicated_deduplication_window`` (or replicated
        window) still remembers it writes nothing. It must match ``[A-Za-z0-9_.:-]{1,200}``.
        """
        ...

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a SELECT and return its rows as dicts (column name -> value).

        ``params`` bind ``{name:Type}`` placeholders in ``sql`` server-side.
        """
        ...

    def query_formatted(self, sql: str, fmt: str) -> str:
        """Run ``sql`` and return the result rendered in ClickHouse output format ``fmt``.

        Binary formats (Parquet, Arrow, RowBinary...) come back decoded as UTF-8 with
        ``surrogateescape``: ``text.encode("utf-8", "surrogateescape")`` restores the bytes.
        """
        ...

    def close(self) -> None:
        """Release the warehouse (for chdb: the directory lock). Idempotent."""
        ...


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TOKEN = re.compile(r"[A-Za-z0-9_.:\-]{1,200}\Z")


def quote_identifier(name: str) -> str:
    """Back-quote one identifier after checking it is a plain name.

    Table and column names come from code, not from users, so anything unusual is refused
    rather than escaped: a strange name is a bug worth hearing about.
    """
    if not _IDENT.match(name):
        raise QueryError(f"not a valid identifier: {name!r}")
    return f"`{name}`"


def quote_table(table: str) -> str:
    """``table`` or ``database.table``, each part checked and back-quoted."""
    parts = table.split(".")
    if not 1 <= len(parts) <= 2:
        raise QueryError(f"not a valid table name: {table!r}")
    return ".".join(quote_identifier(part) for part in parts)


def check_dedup_token(token: str) -> str:
    """Return ``token`` if it is safe to place in a SETTINGS clause, else raise."""
    if not _TOKEN.match(token):
        raise SinkError(f"invalid insert deduplication token: {token!r}")
    return token


def insert_into(table: str, columns: Sequence[str]) -> str:
    """``INSERT INTO db.table (c1, c2, ...)``, every name quoted: the head of an adapter's
    insert statement (each adds its own format or ``VALUES`` and settings)."""
    return f"INSERT INTO {quote_table(table)} ({', '.join(quote_identifier(c) for c in columns)})"


def check_row_width(row: Sequence[Any], width: int) -> None:
    """A row must have one value per column."""
    if len(row) != width:
        raise SinkError(f"row has {len(row)} values for {width} columns: {row!r}")


def open_backend(url: str) -> Backend:
    """Open the warehouse named by ``url``.

    - ``chdb:///abs/path``, ``chdb:rel/path`` or a bare filesystem path: the embedded warehouse;
    - ``clickhouse://user:pass@host:9000/db`` (or ``clickhouses://`` for TLS): a server.
    """
    # Imported here so that importing the port never loads chdb (a large native library) or
    # the driver for a process that only needs the other one.
    if url.startswith(("clickhouse://", "clickhouses://")):
        from sinks.native_backend import NativeBackend

        return NativeBackend(url)
    if url.startswith("chdb:"):
        path = url[len("chdb:") :]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise SinkError(f"no warehouse path in {url!r}")
        from sinks.chdb_backend import ChdbBackend

        return ChdbBackend(path)
    if "://" in url:
        raise SinkError(
            f"unsupported warehouse URL {url!r}: use a directory path, chdb:///abs/path "
            "or clickhouse://user:password@host:9000/database"
        )
    if not url:
        raise SinkError("empty warehouse path")
    from sinks.chdb_backend import ChdbBackend

    return ChdbBackend(url)


# ClickHouse error codes (src/Common/ErrorCodes.cpp) after which the same call may succeed.
RETRYABLE_CODES: frozenset[int] = frozenset(
    {
        3,  # UNEXPECTED_END_OF_FILE: the connection dropped mid-packet
        32,  # ATTEMPT_TO_READ_AFTER_EOF
        159,  # TIMEOUT_EXCEEDED
        160,  # TOO_SLOW
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        203,  # NO_FREE_CONNECTION
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        236,  # ABORTED
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY (a replica lost its keeper session)
        252,  # TOO_MANY_PARTS: back off, merges catch up
        285,  # TOO_FEW_LIVE_REPLICAS
        319,  # UNKNOWN_STATUS_OF_INSERT: retry with the same dedup token
        394,  # QUERY_WAS_CANCELLED
        425,  # SYSTEM_ERROR
        473,  # DEADLOCK_AVOIDED
        999,  # KEEPER_EXCEPTION
        1000,  # POCO_EXCEPTION (network layer)
    }
)

# Codes that mean the statement itself is wrong: the author of the SQL has to change it.
BAD_SQL_CODES: frozenset[int] = frozenset(
    {
        10,  # NOT_FOUND_COLUMN_IN_BLOCK
        16,  # NO_SUCH_COLUMN_IN_TABLE
        35,  # TOO_FEW_ARGUMENTS_FOR_FUNCTION
        34,  # TOO_MANY_ARGUMENTS_FOR_FUNCTION
        42,  # NUMBER_OF_ARGUMENTS_DOESNT_MATCH
        43,  # ILLEGAL_TYPE_OF_ARGUMENT
        46,  # UNKNOWN_FUNCTION
        47,  # UNKNOWN_IDENTIFIER
        50,  # UNKNOWN_TYPE
        53,  # TYPE_MISMATCH
        60,  # UNKNOWN_TABLE
        62,  # SYNTAX_ERROR
        63,  # UNKNOWN_AGGREGATE_FUNCTION
        73,  # UNKNOWN_FORMAT
        81,  # UNKNOWN_DATABASE
        115,  # UNKNOWN_SETTING
        179,  # MULTIPLE_EXPRESSIONS_FOR_ALIAS
        184,  # ILLEGAL_AGGREGATION
        215,  # NOT_AN_AGGREGATE
        352,  # AMBIGUOUS_COLUMN_NAME
        386,  # NO_COMMON_TYPE
        456,  # UNKNOWN_QUERY_PARAMETER
        457,  # BAD_QUERY_PARAMETER
    }
)

_CODE = re.compile(r"Code: (\d+)\.")


def error_code(message: str) -> int | None:
    """The ClickHouse error code named in ``message`` (``Code: 62. DB::Exception: ...``)."""
    match = _CODE.search(message)
    return int(match.group(1)) if match else None


def clickhouse_message(message: str) -> str:
    """ClickHouse's own text, without wrappers a client library put in front of it."""
    start = message.find("Code: ")
    text = message[start:] if start > 0 else message
    return text.strip()


def classify_error(message: str, code: int | None, *, user_sql: bool) -> SinkError:
    """Turn a ClickHouse failure into the project's exception.

    ``user_sql`` is true for :meth:`Backend.query` / :meth:`Backend.query_formatted`, whose SQL
    a person typed: anything not transient is then their query's problem (:class:`QueryError`).
    For the project's own statements only the codes that say "this SQL is wrong" are.
    """
    text = clickhouse_message(message)
    if code is None:
        code = error_code(text)
    if code in RETRYABLE_CODES:
        return SinkError(text, retryable=True, code=code)
    if user_sql or code in BAD_SQL_CODES:
        return QueryError(text, code=code)
    return SinkError(text, retryable=False, code=code)
