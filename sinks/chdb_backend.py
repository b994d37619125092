"""The embedded warehouse: :class:`Backend` over chdb (ClickHouse in-process, data in a directory).

chdb runs one embedded server per process, bound to one data directory, and the directory is
locked (``<path>/status``) against other processes for as long as a session is open. Opening
takes a few tens of milliseconds, so a command opens the warehouse once and keeps it.

Inserts are sent as JSONCompactColumns *data* through chdb's streaming insert: the statement
is ``INSERT INTO t (cols) SETTINGS ...`` and the batch follows as bytes the engine parses with
the input format, so a value can never become SQL. The batch goes column by column (one
``orjson.dumps`` per column of plain values, ``json.dumps`` for the rest: a large batch costs
a few C calls, not a Python callback per value). Instants are written as ISO 8601 with their
offset and parsed with ``date_time_input_format='best_effort'``, which makes them independent
of the column's time zone. Results are read as JSONCompact (names, types, rows) and converted
by column type, so callers get the same Python values as from the native adapter.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import math
import operator
import os
import re
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from sinks.backend import (
    DATABASE,
    SinkError,
    check_dedup_token,
    check_row_width,
    classify_error,
    insert_into,
    quote_identifier,
)

__all__ = ["ChdbBackend"]


_FORMAT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


class ChdbBackend:
    """The embedded warehouse in directory ``path`` (created if missing).

    ``database`` is created if missing and made the session's current database, so ad-hoc
    SQL (``supportstream sql``) can say ``tickets`` instead of ``supportstream.tickets``; the
    project's own SQL always names the database. The session's time zone is UTC, so
    ``toDate(x)`` in ad-hoc SQL means the UTC day, as in the views.
    """

    def __init__(self, path: str | os.PathLike[str], *, database: str = DATABASE) -> None:
        self.path = str(Path(path).expanduser().absolute())
        self._lock = threading.Lock()
        try:
            Path(self.path).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"cannot create warehouse directory {self.path}: {exc}") from exc
        self._session = _open_session(self.path)
        try:
            # Denormal floats as "nan"/"inf" strings, not null, so NaN survives a query.
            self.execute("SET output_format_json_quote_denormals = 1")
            self.execute("SET session_timezone = 'UTC'")
            if database:
                db = quote_identifier(database)
                self.execute(f"CREATE DATABASE IF NOT EXISTS {db}")
                self.execute(f"USE {db}")
        except BaseException:
            self.close()
            raise

    # -- the port --------------------------------------------------------------------------

    def execute(self, sql: str) -> None:
        self._call(lambda s: s.query(sql, "CSV"), user_sql=False)

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        dedup_token: str | None = None,
    ) -> None:
        if not rows:
            return
        width = len(columns)
        settings = ["date_time_input_format = 'best_effort'"]
        if dedup_token is not None:
            settings.append(f"insert_deduplication_token = '{check_dedup_token(dedup_token)}'")
        statement = f"{insert_into(table, columns)} SETTINGS {', '.join(settings)}"
        document = _json_columns(rows, width)

        def run(session: Any) -> None:
            inserter = session.send_insert(statement, "JSONCompactColumns")
            try:
                inserter.append(document)
                inserter.finish()
            except BaseException:
                # No implicit commit: a failed insert leaves nothing half-written behind.
                with contextlib.suppress(Exception):
                    inserter.cancel()
                raise

        self._call(run, user_sql=False)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        bound = {name: _param_text(value) for name, value in (params or {}).items()}
        raw = self._call(lambda s: s.query(sql, "JSONCompact", params=bound).bytes(), user_sql=True)
        if not raw.strip():
            return []  # a statement without a result set
        try:
            doc = json.loads(raw, parse_float=Decimal)
            names = [col["name"] for col in doc["meta"]]
            converters = [_converter(col["type"]) for col in doc["meta"]]
            data = doc["data"]
        except (ValueError, KeyError, TypeError) as exc:
            raise SinkError(
                "query() reads rows as JSONCompact; a query with its own FORMAT clause "
                "belongs in query_formatted()"
            ) from exc
        return [
            {name: conv(value) for name, conv, value in zip(names, converters, row, strict=True)}
            for row in data
        ]

    def query_formatted(self, sql: str, fmt: str) -> str:
        if not _FORMAT_NAME.match(fmt):
            raise SinkError(f"not a ClickHouse format name: {fmt!r}")
        raw: bytes = self._call(lambda s: s.query(sql, fmt).bytes(), user_sql=True)
        return raw.decode("utf-8", "surrogateescape")

    def close(self) -> None:
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(Exception):
                session.close()

    def __enter__(self) -> ChdbBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ChdbBackend({self.path!r})"

    # -- internals -------------------------------------------------------------------------

    def _call(self, fn: Callable[[Any], Any], *, user_sql: bool) -> Any:
        with self._lock:
            session = self._session
            if session is None:
                raise SinkError(f"the warehouse {self.path} is closed")
            try:
                return fn(session)
            except RuntimeError as exc:  # chdb's ChdbError is a RuntimeError
                message = str(exc)
                raise classify_error(message, None, user_sql=user_sql) from exc


def _open_session(path: str) -> Any:
    session_class = _session_class()
    try:
        return session_class(path)
    except RuntimeError as exc:
        message = str(exc)
        if "already initialized with path" in message:
            raise SinkError(
                f"cannot open warehouse {path}: this process already has another warehouse "
                "open (chdb serves one directory per process); close it first"
            ) from exc
        holder = _lock_holder(path)
        if holder is not None:
            raise SinkError(
                f"warehouse {path} is in use by another process{holder}; stop it or "
                "choose another directory with --warehouse"
            ) from exc
        raise SinkError(f"cannot open warehouse {path}: {message}") from exc


def _session_class() -> Any:
    """chdb's ``Session``, imported when a warehouse is first opened (loading chdb takes a few
    tenths of a second and ~100 MB).

    chdb imports pyarrow, and numpy with it, when it is imported, for its Arrow and DataFrame
    results only (``chdb/state/sqlitelike.py`` takes pyarrow as optional); this adapter reads
    JSONCompact and raw bytes, so unless the process already has pyarrow the import is skipped
    (it was about half of chdb's import time). pyarrow stays importable afterwards."""
    if "chdb.session" in sys.modules or "pyarrow" in sys.modules:
        from chdb.session import Session
    else:
        modules: dict[str, Any] = sys.modules  # a None entry makes "import pyarrow" fail
        modules["pyarrow"] = None
        try:
            from chdb.session import Session
        finally:
            if modules.get("pyarrow", False) is None:
                del modules["pyarrow"]
    return Session


def _lock_holder(path: str) -> str | None:
    """`` (pid N)`` if another process holds the warehouse lock, ``""`` if held by an unknown
    process, None if nobody holds it. ClickHouse takes an exclusive ``flock`` on
    ``<path>/status`` and writes its pid there."""
    status = Path(path) / "status"
    try:
        with open(status, "rb") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                text = fh.read(4096).decode("utf-8", "replace")
                match = re.search(r"PID:\s*(\d+)", text)
                return f" (pid {match.group(1)})" if match else ""
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            return None
    except OSError:
        return None


# -- rows out: Python values -> JSONCompactColumns ------------------------------------------

# The types orjson writes as the json module's way below does: text, integers, booleans, nulls,
# finite floats, dates, and instants in UTC or naive (taken as UTC). Exact types only: a subclass
# (an enum, say) goes the json module's way, as it always did. orjson rounds an offset to whole
# minutes (a zone's local mean time, +00:19:32, would move the instant), so only UTC's.
_ORJSON_TYPES = frozenset({str, int, bool, float, type(None), dt.date})
_ORJSON_INSTANTS = frozenset({dt.datetime, type(None)})
_ORJSON_ZONES = frozenset({None, dt.UTC})
_ORJSON_OPTIONS = orjson.OPT_NAIVE_UTC
_TZINFO = operator.attrgetter("tzinfo")


def _json_columns(rows: Sequence[Sequence[Any]], width: int) -> bytes:
    """Rows as one JSONCompactColumns document (``[[column 1 values], [column 2 values], ...]``),
    each column encoded by one C call and no Python callback per value.

    A column of plain values and UTC instants goes through ``orjson``; anything else, or what
    orjson refuses or would write differently from the json module (a lone surrogate, an
    integer beyond 64 bits, a NaN or infinity, which orjson writes as null, an offset with
    seconds), goes through :func:`_json_column`, so every column reaches ClickHouse as it did
    before orjson (``tests/sinks/test_chdb_encoding.py`` checks that against the earlier
    encoder on chdb).
    """
    for row in rows:
        if len(row) != width:
            check_row_width(row, width)
    parts: list[bytes] = []
    for column in zip(*rows, strict=True):
        if _orjson_writes(column):
            try:
                parts.append(orjson.dumps(column, option=_ORJSON_OPTIONS))
                continue
            except orjson.JSONEncodeError:
                pass  # a lone surrogate or an integer beyond 64 bits: the json module's way
        parts.append(_json_column(column))
    return b"[" + b",".join(parts) + b"]"


def _orjson_writes(column: tuple[Any, ...]) -> bool:
    """Whether orjson writes ``column`` as the json module's way would reach ClickHouse."""
    kinds = set(map(type, column))
    if kinds <= _ORJSON_INSTANTS:  # instants and nulls: filter(None) keeps the instants
        return set(map(_TZINFO, filter(None, column))) <= _ORJSON_ZONES
    if not kinds <= _ORJSON_TYPES:
        return False
    # orjson writes NaN and infinities as null; a sum of finite floats that overflows says
    # no too, which only sends the column the slower way.
    return float not in kinds or math.isfinite(sum(v for v in column if type(v) is float))


def _json_column(column: tuple[Any, ...]) -> bytes:
    """One column through the json module: instants and dates as ISO 8601 text, decimals as
    quoted numbers (ClickHouse reads those into a Decimal column exactly), arrays element by
    element, NaN and infinities as ``NaN``/``Infinity`` (which ClickHouse reads back).

    ``ensure_ascii=False`` keeps text readable and small; lone surrogates (which cannot be
    UTF-8) are the one thing that must be escaped, so a column holding one falls back to ASCII
    escapes.
    """
    values = [value if type(value) in _JSON_NATIVE else _json_value(value) for value in column]
    try:
        return json.dumps(values, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(values).encode("ascii")
    except (TypeError, ValueError) as exc:
        raise SinkError(f"cannot insert a value: {exc}") from exc


_JSON_NATIVE = frozenset({str, int, float, bool, type(None)})


def _json_value(value: Any) -> Any:
    """A value of a type JSON has no literal for, as JSON can hold it."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return value.isoformat() + "Z"  # naive instants are taken as UTC
        return value.isoformat()  # the offset tells ClickHouse the instant
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)  # ClickHouse reads a quoted number into a Decimal column exactly
    if isinstance(value, list | tuple | set | frozenset):
        return [v if type(v) in _JSON_NATIVE else _json_value(v) for v in value]
    raise SinkError(f"cannot insert a value of type {type(value).__name__}: {value!r}")


# -- parameters: Python values -> ClickHouse's escaped text --------------------------------

_ESCAPES = str.maketrans(
    {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0", "\b": "\\b", "\f": "\\f"}
)


def _param_text(value: Any) -> str:
    """A parameter value in the text form ClickHouse parses ``{name:Type}`` values from
    (the TSV "escaped" form; ``\\N`` is NULL)."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return _literal(value).translate(_ESCAPES)
    return _scalar_text(value).translate(_ESCAPES)


def _scalar_text(value: Any) -> str:
    if isinstance(value, dt.datetime):
        aware: dt.datetime = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return aware.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, int | float | Decimal | str):
        return str(value)
    raise SinkError(f"cannot bind a parameter of type {type(value).__name__}: {value!r}")


def _literal(value: Any) -> str:
    """A quoted literal, the form elements take inside an ``Array``/``Tuple`` parameter."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        inner = ", ".join(_literal(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    if isinstance(value, int | float | Decimal):
        return str(value)
    text = _scalar_text(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


# -- results: JSONCompact values -> Python values by column type ---------------------------

_WRAPPER = re.compile(r"(LowCardinality|Nullable)\((.*)\)\Z")
_TZ_ARG = re.compile(r"'([^']*)'")


@lru_cache(maxsize=512)
def _converter(ch_type: str) -> Callable[[Any], Any]:
    """A function turning one JSON value of ClickHouse type ``ch_type`` into Python."""
    inner = ch_type.strip()
    while match := _WRAPPER.match(inner):
        inner = match.group(2)
    if inner.startswith(("Int", "UInt")):
        return _nullable(int)
    if inner.startswith(("Float", "BFloat")):
        return _nullable(float)
    if inner.startswith("Decimal"):
        return _nullable(lambda v: Decimal(str(v)))
    if inner == "Bool":
        return _nullable(bool)
    if inner in ("Date", "Date32"):
        return _nullable(dt.date.fromisoformat)
    if inner.startswith("DateTime"):
        tz_match = _TZ_ARG.search(inner)
        zone: dt.tzinfo = ZoneInfo(tz_match.group(1)) if tz_match else dt.UTC
        return _nullable(lambda v: _instant(v, zone))
    if inner.startswith("Array("):
        element = _converter(inner[len("Array(") : -1])
        return _nullable(lambda v: [element(x) for x in v])
    return _plain


def _nullable(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: None if v is None else fn(v)


def _instant(text: str, zone: dt.tzinfo) -> dt.datetime:
    # The session time zone is UTC, so a DateTime without its own zone prints in UTC.
    local = dt.datetime.fromisoformat(text).replace(tzinfo=zone)
    return local.astimezone(dt.UTC)


def _plain(value: Any) -> Any:
    """Values of types without a converter (String, Enum, UUID, Map, Tuple, JSON...): as
    parsed, with the Decimals that ``parse_float`` made turned back into floats."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
