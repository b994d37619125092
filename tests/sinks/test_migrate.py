"""Migration files: found in order, split into statements without breaking quoted text."""

from __future__ import annotations

from sinks.backend import Backend
from sinks.migrate import load_migrations, migrate, pending_changes, split_statements


def test_migrations_are_numbered_in_order() -> None:
    # Numbers are handed out ahead of the work (several branches land in parallel), so a
    # number may stay free for a while; they only have to be unique, ascending, from 1.
    versions = [m.version for m in load_migrations()]
    assert versions[0] == 1
    assert versions == sorted(set(versions))


def test_statements_split_on_semicolons_outside_quotes_and_comments() -> None:
    sql = """
    -- a comment; with a semicolon
    CREATE TABLE a (s String DEFAULT 'x;y') ENGINE = Memory;
    /* block; comment */
    SELECT 'it''s; fine', "we;ird", `col;umn`, 'esc\\';aped';
    # hash comment;
    ;
    SELECT 2
    """
    assert split_statements(sql) == [
        "-- a comment; with a semicolon\n"
        "    CREATE TABLE a (s String DEFAULT 'x;y') ENGINE = Memory",
        "/* block; comment */\n    SELECT 'it''s; fine', \"we;ird\", `col;umn`, 'esc\\';aped'",
        "SELECT 2",
    ]


def test_a_migration_stopped_half_way_completes_on_the_next_run(chdb_backend: Backend) -> None:
    migrations = load_migrations()
    chdb_backend.execute(migrations[0].statements()[0])  # as if a run died after one statement
    chdb_backend.execute(migrations[0].statements()[1])
    assert migrate(chdb_backend) == [m.version for m in migrations]
    assert pending_changes(chdb_backend) == []
