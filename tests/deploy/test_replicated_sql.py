"""deploy/clickhouse/replicated.sql against the single-node migrations, textually: every core
table has a replicated `_local` table with the same columns (names, types, defaults, codecs),
the same ORDER BY and version column, and a Distributed table under the original name whose
sharding key is part of the table's key, so FINAL per shard still sees every copy of a key."""

from __future__ import annotations

import re

from sinks.migrate import load_migrations, split_statements
from tests.deploy.paths import DEPLOY

REPLICATED = DEPLOY / "clickhouse" / "replicated.sql"
CREATE_TABLE = re.compile(
    r"CREATE TABLE IF NOT EXISTS supportstream\.(\w+)(?: ON CLUSTER '\{cluster\}')?\s*", re.S
)


def strip_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*", "", sql)


def balanced(text: str, start: int) -> tuple[str, int]:
    """The text inside the parentheses opening at ``start``, and the index after them."""
    assert text[start] == "("
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
    raise AssertionError("unbalanced parentheses")


def split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        current += ch
    parts.append(current)
    return [" ".join(p.split()) for p in parts if p.strip()]


def tables(sql: str) -> dict[str, dict[str, str]]:
    """name -> {"columns": ..., "engine": ..., "order_by": ...} of every CREATE TABLE."""
    found = {}
    for statement in split_statements(sql):
        text = strip_comments(statement)
        match = CREATE_TABLE.search(text)
        if not match:
            continue
        rest = text[match.end() :]
        info = {"columns": "", "engine": "", "order_by": ""}
        if rest.startswith("("):
            columns, end = balanced(rest, 0)
            info["columns"] = "\n".join(split_top_level(columns))
            rest = rest[end:]
        engine = re.search(r"ENGINE = (\w+)(\((.*?)\))?\s*(\n|$)", rest, re.S)
        assert engine, statement
        info["engine"] = engine.group(0).strip()
        order = re.search(r"ORDER BY (.+)", rest)
        info["order_by"] = " ".join(order.group(1).split()) if order else ""
        info["as"] = (re.search(r"AS supportstream\.(\w+)", rest) or [None, ""])[1]
        found[match.group(1)] = info
    return found


SINGLE = tables("\n;\n".join(m.sql for m in load_migrations()))
REPL = tables(REPLICATED.read_text())
CORE = [name for name, info in SINGLE.items() if info["columns"]]


def test_the_single_node_schema_is_parsed() -> None:
    assert set(CORE) >= {"events", "tickets", "sla_metrics", "dead_letters"}


def test_every_table_has_a_replicated_local_twin_with_the_same_columns_and_key() -> None:
    for name in CORE:
        local = REPL[f"{name}_local"]
        assert local["columns"] == SINGLE[name]["columns"], name
        assert local["order_by"] == SINGLE[name]["order_by"], name
        assert local["engine"].startswith("ENGINE = ReplicatedReplacingMergeTree("), name
        assert "'{replica}'" in local["engine"] and "{shard}" in local["engine"], name
        single_version = re.search(r"ReplacingMergeTree\((\w+)\)", SINGLE[name]["engine"])
        if single_version:
            assert local["engine"].rstrip(")").endswith(single_version.group(1)), name


def test_every_table_is_served_under_its_name_by_a_distributed_table() -> None:
    for name in CORE:
        dist = REPL[name]
        assert dist["as"] == f"{name}_local", name
        engine = re.fullmatch(
            r"ENGINE = Distributed\('\{cluster\}', supportstream, (\w+), sipHash64\((\w+)\)\)",
            dist["engine"],
        )
        assert engine, dist["engine"]
        assert engine.group(1) == f"{name}_local"
        sharding_column = engine.group(2)
        key = SINGLE[name]["order_by"]
        # a key's copies must meet on one shard: shard by a column of the key, or by ticket_id,
        # which every event and cycle row carries and never changes for a given key
        assert sharding_column in key or sharding_column == "ticket_id", name
        assert sharding_column in SINGLE[name]["columns"].split() or re.search(
            rf"^{sharding_column} ", SINGLE[name]["columns"], re.M
        ), name


def test_no_other_tables_are_invented() -> None:
    expected = set(CORE) | {f"{name}_local" for name in CORE}
    assert set(REPL) == expected


def test_replicated_tables_keep_an_insert_deduplication_window() -> None:
    text = REPLICATED.read_text()
    assert text.count("replicated_deduplication_window = 10000") == len(CORE)
    assert "non_replicated_deduplication_window" not in strip_comments(text)
