"""A ClickHouse server as :class:`Backend`, over the native protocol (clickhouse-driver).

``clickhouse://user:password@host:9000/database`` (``clickhouses://`` for TLS; query-string
options as clickhouse-driver reads them, e.g. ``?connect_timeout=5&compression=zstd``). The
database in the URL must exist; the project's own SQL always names ``supportstream.`` itself.

Rows travel as native-protocol blocks (``INSERT INTO t (cols) VALUES`` with the rows handed to
the driver), parameters as server-side ``{name:Type}`` values: neither is ever formatted into
SQL. Blocks are compressed with LZ4 when the optional ``lz4`` and ``clickhouse-cityhash``
packages are installed, and sent uncompressed otherwise.

The native protocol has no server-side output formats (clickhouse-client renders them itself),
so :meth:`NativeBackend.query_formatted` renders the common text formats in Python and refuses
the others with a clear message.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import importlib.util
import io
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from sinks.backend import (
    QueryError,
    SinkError,
    check_dedup_token,
    check_row_width,
    classify_error,
    insert_into,
)

__all__ = ["NativeBackend"]


def _lz4_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("lz4", "clickhouse_cityhash"))


class NativeBackend:
    """A ClickHouse server at ``url``. Connects lazily, on the first call, and reconnects
    after a network error on the next one (clickhouse-driver's behaviour)."""

    def __init__(self, url: str, *, settings: Mapping[str, Any] | None = None) -> None:
        from clickhouse_driver import Client
        from clickhouse_driver.util.helpers import parse_url

        try:
            host, kwargs = parse_url(url)
        except ValueError as exc:
            raise SinkError(f"bad ClickHouse URL: {exc}") from exc
        if not host:
            raise SinkError("bad ClickHouse URL: no host")
        if "compression" not in kwargs:
            kwargs["compression"] = "lz4" if _lz4_available() else False
        client_settings: dict[str, Any] = dict(kwargs.pop("settings", {}) or {})
        # {name:Type} placeholders bound by the server, exactly as chdb does; and UTC as the
        # session time zone so toDate(x) means the same day on both backends.
        client_settings["server_side_params"] = True
        client_settings.setdefault("session_timezone", "UTC")
        client_settings.update(settings or {})
        self.url = url
        self._host = host
        self._client = Client(host, settings=client_settings, **kwargs)
        self._lock = threading.Lock()
        self._closed = False

    # -- the port --------------------------------------------------------------------------

    def execute(self, sql: str) -> None:
        self._call(lambda c: c.execute(sql), user_sql=False)

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        dedup_token: str | None = None,
    ) -> None:
        if not rows:
            return
        statement = f"{insert_into(table, columns)} VALUES"
        settings: dict[str, Any] = {}
        if dedup_token is not None:
            settings["insert_deduplication_token"] = check_dedup_token(dedup_token)
        # Columnar: the driver serialises each column as one block column, no per-row work.
        data = _columns_to_wire(rows, len(columns))
        self._call(
            lambda c: c.execute(statement, data, settings=settings, columnar=True), user_sql=False
        )

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        names, _types, rows = self._select(sql, params)
        return [dict(zip(names, row, strict=True)) for row in rows]

    def query_formatted(self, sql: str, fmt: str) -> str:
        render = _RENDERERS.get(fmt.lower())
        if render is None:
            raise QueryError(
                f"output format {fmt} is not available over the native protocol; use one of "
                + ", ".join(sorted(_RENDERER_NAMES))
            )
        names, types, rows = self._select(sql, None)
        return render(names, types, rows)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            # Closing must not fail: the socket is gone either way.
            with contextlib.suppress(Exception):
                self._client.disconnect()

    def __enter__(self) -> NativeBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"NativeBackend(host={self._host!r})"

    # -- internals -------------------------------------------------------------------------

    def _select(
        self, sql: str, params: Mapping[str, Any] | None
    ) -> tuple[list[str], list[str], list[list[Any]]]:
        result = self._call(
            lambda c: c.execute(sql, dict(params or {}), with_column_types=True), user_sql=True
        )
        rows, meta = result
        names = [name for name, _ in meta]
        types = [ch_type for _, ch_type in meta]
        return names, types, [[_from_wire(v) for v in row] for row in rows]

    def _call(self, fn: Callable[[Any], Any], *, user_sql: bool) -> Any:
        from clickhouse_driver import errors

        with self._lock:
            if self._closed:
                raise SinkError(f"the connection to {self._host} is closed")
            try:
                return fn(self._client)
            except (errors.NetworkError, errors.SocketTimeoutError) as exc:
                raise SinkError(
                    f"ClickHouse at {self._host}: {exc}", retryable=True, code=exc.code
                ) from exc
            except errors.Error as exc:
                code = exc.code if isinstance(exc.code, int) else None
                raise classify_error(str(exc), code, user_sql=user_sql) from exc
            except (OSError, EOFError) as exc:
                raise SinkError(f"ClickHouse at {self._host}: {exc}", retryable=True) from exc
            except (TypeError, ValueError, OverflowError, KeyError, AttributeError) as exc:
                # The driver serialises rows client-side: a value that does not fit its
                # column surfaces here, before anything reached the server.
                raise SinkError(f"rows do not fit the columns: {exc!r}") from exc


def _columns_to_wire(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """The rows as ``width`` columns, as the driver's ``columnar=True`` takes them."""
    for row in rows:
        if len(row) != width:
            check_row_width(row, width)
    return [[_to_wire(value) for value in column] for column in zip(*rows, strict=True)]


def _to_wire(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)  # the port's rule: naive means UTC
    return value


def _from_wire(value: Any) -> Any:
    """The driver's values, normalised to the port's: UTC-aware datetimes, lists for arrays."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)  # session_timezone is UTC
        return value.astimezone(dt.UTC)
    if isinstance(value, tuple | list):
        return [_from_wire(v) for v in value]
    return value


# -- client-side rendering of the common text formats --------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        text = value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        return text[:-3]
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False, default=_text)
    return str(value)


def _json(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return _text(value)
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def _render_json_each_row(names: list[str], _types: list[str], rows: list[list[Any]]) -> str:
    return "".join(
        json.dumps(dict(zip(names, row, strict=True)), ensure_ascii=False, default=_json) + "\n"
        for row in rows
    )


def _render_json_compact_each_row(
    _names: list[str], _types: list[str], rows: list[list[Any]]
) -> str:
    return "".join(json.dumps(row, ensure_ascii=False, default=_json) + "\n" for row in rows)


_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"})


def _tsv(with_names: bool) -> Callable[[list[str], list[str], list[list[Any]]], str]:
    def render(names: list[str], _types: list[str], rows: list[list[Any]]) -> str:
        lines = ["\t".join(n.translate(_TSV_ESCAPES) for n in names)] if with_names else []
        for row in rows:
            lines.append(
                "\t".join("\\N" if v is None else _text(v).translate(_TSV_ESCAPES) for v in row)
            )
        return "".join(line + "\n" for line in lines)

    return render


def _csv(with_names: bool) -> Callable[[list[str], list[str], list[list[Any]]], str]:
    def render(names: list[str], _types: list[str], rows: list[list[Any]]) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        if with_names:
            writer.writerow(names)
        for row in rows:
            writer.writerow(["\\N" if v is None else _text(v) for v in row])
        return out.getvalue()

    return render


_RENDERERS: dict[str, Callable[[list[str], list[str], list[list[Any]]], str]] = {
    "jsoneachrow": _render_json_each_row,
    "jsoncompacteachrow": _render_json_compact_each_row,
    "tabseparated": _tsv(False),
    "tsv": _tsv(False),
    "tabseparatedwithnames": _tsv(True),
    "tsvwithnames": _tsv(True),
    "csv": _csv(False),
    "csvwithnames": _csv(True),
}
_RENDERER_NAMES = (
    "JSONEachRow",
    "JSONCompactEachRow",
    "TabSeparated",
    "TSV",
    "TabSeparatedWithNames",
    "TSVWithNames",
    "CSV",
    "CSVWithNames",
)
