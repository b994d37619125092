"""The warehouse schema: numbered SQL files in ``sinks/migrations``, applied in order, once.

``migrate(backend)`` creates the ``supportstream`` database and the ``schema_migrations``
ledger, then runs every ``NNNN_name.sql`` whose version the ledger does not hold, statement by
statement, and records it. Every statement is itself idempotent (``CREATE ... IF NOT EXISTS``,
``CREATE OR REPLACE VIEW``), so a run that stopped half-way, or two processes migrating at
once, converge on the same schema: running it again is always safe.

A migration is never edited once released; a change is a new file (a changed view is
``CREATE OR REPLACE VIEW`` in a later migration). The ledger keeps each file's checksum so a
changed file can be noticed (:func:`pending_changes`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import zoneinfo
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from processors.rules import DEFAULT_QA_SAMPLE_PER_AGENT_WEEK
from sinks.backend import DATABASE, Backend, SinkError

__all__ = [
    "Migration",
    "apply_reporting_views",
    "load_migrations",
    "migrate",
    "pending_changes",
]

LEDGER = f"{DATABASE}.schema_migrations"

_BOOTSTRAP = (
    f"CREATE DATABASE IF NOT EXISTS {DATABASE}",
    f"""CREATE TABLE IF NOT EXISTS {LEDGER}
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version""",
)

_FILE_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql\Z")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()

    def statements(self) -> list[str]:
        return split_statements(self.sql)


def load_migrations(directory: Traversable | None = None) -> list[Migration]:
    """The migration files in version order (default: the ones shipped in this package)."""
    root = directory if directory is not None else resources.files("sinks") / "migrations"
    found: dict[int, Migration] = {}
    for entry in root.iterdir():
        match = _FILE_NAME.match(entry.name)
        if not match:
            continue
        version = int(match.group(1))
        if version in found:
            raise SinkError(f"two migrations numbered {version:04d}: {entry.name}")
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def applied_versions(backend: Backend) -> dict[int, str]:
    """version -> checksum of the migrations recorded as applied."""
    rows = backend.query(
        f"SELECT version, argMax(checksum, applied_at) AS checksum FROM {LEDGER} GROUP BY version"
    )
    return {int(row["version"]): str(row["checksum"]) for row in rows}


def migrate(
    backend: Backend,
    migrations: list[Migration] | None = None,
    *,
    reporting_timezone: str | None = None,
    qa_sample_per_agent_week: int | None = None,
) -> list[int]:
    """Bring the schema up to date; return the versions applied by this call (``[]`` when
    there was nothing to do). With ``reporting_timezone`` (the rules' one), the daily views are
    (re)created with days in that time zone; without it they are created in UTC only where they
    do not exist yet, so a plain ``migrate`` never undoes the time zone a run set."""
    for statement in _BOOTSTRAP:
        backend.execute(statement)
    todo = load_migrations() if migrations is None else migrations
    done = applied_versions(backend)
    applied: list[int] = []
    for migration in todo:
        if migration.version in done:
            continue
        for statement in migration.statements():
            backend.execute(statement)
        # Recorded only after every statement succeeded: a failure part-way leaves the version
        # unrecorded and the next run repeats the (idempotent) statements.
        backend.insert(
            LEDGER,
            ("version", "name", "checksum", "applied_at"),
            [(migration.version, migration.name, migration.checksum, dt.datetime.now(dt.UTC))],
        )
        applied.append(migration.version)
    apply_reporting_views(
        backend, reporting_timezone, qa_sample_per_agent_week=qa_sample_per_agent_week
    )
    return applied


def apply_reporting_views(
    backend: Backend, timezone: str | None, *, qa_sample_per_agent_week: int | None = None
) -> None:
    """Create the views whose days are days in the reporting time zone (CONTRACT §2:
    ``reporting_timezone`` sets the days of the daily projections). ClickHouse needs the time
    zone as a constant, so the views are written from ``sinks/reporting_views.sql`` with it.
    ``None`` creates missing views in UTC and leaves existing ones as they are."""
    if timezone is not None and not _known_timezone(timezone):
        raise SinkError(f"unknown reporting time zone {timezone!r}")
    if qa_sample_per_agent_week is not None and qa_sample_per_agent_week <= 0:
        raise SinkError(f"qa sample size must be above zero, got {qa_sample_per_agent_week}")
    # The agents' views (CONTRACT §7) also take the rules' QA sample size as a constant.
    template = "\n".join(
        (resources.files("sinks") / name).read_text(encoding="utf-8")
        for name in ("reporting_views.sql", "agent_views.sql")
    )
    replace = timezone is not None
    sample = qa_sample_per_agent_week or DEFAULT_QA_SAMPLE_PER_AGENT_WEEK
    sql = (
        template.replace("{reporting_timezone}", timezone or "UTC")
        .replace("{qa_sample_per_agent_week}", str(int(sample)))
        .replace("{or_replace}", "OR REPLACE" if replace else "")
        .replace("{if_not_exists}", "" if replace else "IF NOT EXISTS")
    )
    for statement in split_statements(sql):
        backend.execute(statement)


def _known_timezone(name: str) -> bool:
    # Checked against the IANA database (it also keeps quotes out of the view's SQL).
    if not re.fullmatch(r"[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*", name):
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def pending_changes(backend: Backend, migrations: list[Migration] | None = None) -> list[int]:
    """Versions applied from a file whose text has changed since (a released migration was
    edited: its change will not reach this warehouse)."""
    todo = load_migrations() if migrations is None else migrations
    done = applied_versions(backend)
    return [m.version for m in todo if m.version in done and done[m.version] != m.checksum]


def split_statements(sql: str) -> list[str]:
    """Split a SQL script on ``;`` outside quotes and comments; drop empty statements.

    Knows ClickHouse's lexical forms: '...' strings (backslash escapes and doubled quotes),
    "..." and `...` identifiers, ``--`` and ``#`` line comments, ``/* */`` block comments.
    """
    statements: list[str] = []
    start = 0
    i = 0
    n = len(sql)
    has_code = False
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            i = _skip_quoted(sql, i, ch)
            has_code = True
            continue
        if sql.startswith("--", i) or ch == "#":
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            if end < 0:
                raise SinkError("unterminated /* comment in migration")
            i = end + 2
            continue
        if ch == ";":
            if has_code:
                statements.append(sql[start:i].strip())
            start, has_code = i + 1, False
        elif not ch.isspace():
            has_code = True
        i += 1
    if has_code:
        statements.append(sql[start:].strip())
    return statements


def _skip_quoted(sql: str, i: int, quote: str) -> int:
    """Index just past the quoted token that starts at ``i``."""
    j = i + 1
    while j < len(sql):
        ch = sql[j]
        if ch == "\\":
            j += 2
            continue
        if ch == quote:
            if j + 1 < len(sql) and sql[j + 1] == quote:  # doubled quote
                j += 2
                continue
            return j + 1
        j += 1
    raise SinkError("unterminated quoted text in migration")
