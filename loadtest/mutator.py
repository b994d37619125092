"""Seeded mutations of input records, for fuzzing the pipeline with what real channels and
broken producers send (docs/DEAD_LETTERS.md).

``mutate(line, rng)`` takes one JSON Lines record (CONTRACT §1) and returns a damaged copy, the
way records get damaged in the wild: a field removed, nulled or of another type, an id that is
a huge number or a boolean, a string holding half a surrogate pair, control characters or ten
thousand characters, a payload nested hundreds of levels deep, an instant at the edges of the
calendar or of the stored range, a truncated line, a stray byte, a mangled e-mail header or
MIME boundary. Everything comes from ``rng``: the same seed gives the same mutations.

The fuzz test (``tests/streams/test_fuzz_records.py``) feeds generated traffic
(``loadtest.generator``) mutated this way through the parse stage and the desk, and a part of it
through ``replay`` into the embedded warehouse. By hand::

    python -m loadtest.generator --start 2026-03-02T00:00:00+03:00 --days 2 --tickets 100 \\
        --seed 1 --out week.jsonl
    python -m loadtest.mutator --input week.jsonl --count 10000 --seed 1 --out fuzzed.jsonl
    supportstream replay --rules examples/rules.yaml --input fuzzed.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

_INSTANTS = (
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-12:00",
    "0001-01-01T00:00:00+14:00",
    "1899-12-31T23:59:59.999Z",
    "1900-01-01T00:00:00Z",
    "2299-12-31T23:59:59.999Z",
    "2300-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "2030-01-01T00:00:00Z",
    "2026-02-30T10:00:00Z",
    "2026-03-02T24:00:00Z",
    "2026-03-02T10:00:60Z",
    "2026-03-02T10:00:00",
    "2026-03-02T10:00:00+25:00",
    "2026-03-02T10:00:00.123456789123Z",
    "",
)
_STRINGS = (
    "",
    " ",
    "\ud800",
    "\udfff tail",
    "\ud83d",
    "a\x00b",
    "\x1c\x1d\x1e\x1f\x0b\x0c",
    "\r",
    "line\rbreak",
    "\u2028\u2029",
    "\ufeff",
    "😀" * 3,
    "+7 916 123-45-67",
    "4111 1111 1111 1111",
    "ivan@example.com",
    "@handle_name",
    "t.me/someone",
    "=?utf-8?B?0J/RgNC40LLQtdGC?=",
    "<!--" * 50,
    "x" * 10_000,
    "NaN",
    "null",
    "true",
    "[]",
    "{}",
    '{"from": {"id": 5}}',
)
_NUMBERS = (0, -1, 1, 2**31, -(2**63), 2**63, 2**64, 10**30, 0.5, -0.0, 1e308, 3.0)
_NASTY_LINES = (
    "",
    "{",
    "[]",
    "null",
    '"text"',
    "{}",
    '{"at": null}',
    '{"at": "2026-03-02T10:00:00Z"}',
    '{"at": "2026-03-02T10:00:00Z", "source": "chat"}',
    '{"at": "2026-03-02T10:00:00Z", "source": "chat", "payload": NaN}',
    '{"at": "2026-03-02T10:00:00Z", "source": "chat", "payload": Infinity}',
    '{"at": "2026-03-02T10:00:00Z", "source": "instagram", "payload": {"text": "\\ud800"}}',
    "\x1c",
    "\x0b",
    "\ufeff{}",
)


def _deep(depth: int) -> Any:
    value: Any = "bottom +7 916 123-45-67"
    for level in range(depth):
        value = [value] if level % 2 else {"from": {"id": level}, "x": value}
    return value


def _value(rng: random.Random) -> Any:
    kind = rng.randrange(9)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice((True, False))
    if kind == 2:
        return rng.choice(_NUMBERS)
    if kind in (3, 4):
        return rng.choice(_STRINGS)
    if kind == 5:
        return []
    if kind == 6:
        return {}
    if kind == 7:
        return _deep(rng.choice((3, 70, 300, 900)))
    return [rng.choice(_STRINGS), rng.choice(_NUMBERS)]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The paths to values inside ``value`` (keys and indexes), the root included, down to a
    depth that every channel's payload fits in (a planted deep value is not walked)."""
    found = [prefix]
    if len(prefix) >= 12:
        return found
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value[:20]):
            found.extend(_paths(item, (*prefix, index)))
    return found


def _parent(root: Any, path: tuple[Any, ...]) -> Any:
    node = root
    for step in path[:-1]:
        node = node[step]
    return node


def _replace(record: dict[str, Any], rng: random.Random) -> None:
    path = rng.choice([p for p in _paths(record) if p])
    _parent(record, path)[path[-1]] = _value(rng)


def _delete(record: dict[str, Any], rng: random.Random) -> None:
    paths = [p for p in _paths(record) if p and isinstance(_parent(record, p), dict)]
    path = rng.choice(paths)
    del _parent(record, path)[path[-1]]


def _add(record: dict[str, Any], rng: random.Random) -> None:
    objects = [p for p in _paths(record) if isinstance(_parent(record, (*p, None)), dict)]
    path = rng.choice(objects)
    target = _parent(record, (*path, None))
    target[rng.choice(("from", "id", "text", "errors", "interactive", "type", "\ud800"))] = _value(
        rng
    )


def _instant(record: dict[str, Any], rng: random.Random) -> None:
    record["at"] = rng.choice(_INSTANTS)


def _source(record: dict[str, Any], rng: random.Random) -> None:
    record["source"] = rng.choice(
        ("telegram", "whatsapp", "email", "chat", "vk", "phone", "agent", "crm", "qa", "fax", "")
    )


def _mail(record: dict[str, Any], rng: random.Random) -> None:
    """Damage an e-mail's text where MIME parsers trip: headers, boundaries, encodings."""
    text = record.get("payload")
    if not isinstance(text, str):
        _replace(record, rng)
        return
    damage = rng.randrange(8)
    if damage == 0:
        text = text.replace("boundary=", "boundary=x", 1)
    elif damage == 1:
        text = text.replace("Message-ID:", "Message-ID: <<", 1)
    elif damage == 2:
        text = text.replace("\n\n", "\n", 1)  # headers run into the body
    elif damage == 3:
        text = text.replace("base64", "base64\n\n!!!***", 1)
    elif damage == 4:
        text = text.replace(
            "Subject:", "Subject: =?x-unknown?Q?=FF=FE?= " + "=?utf-8?B?==?=" * 5, 1
        )
    elif damage == 5:
        text = text.replace("From:", "From: \ud800 <", 1)
    elif damage == 6:
        text = text[: rng.randrange(len(text) + 1)]
    else:
        text = text.replace("charset=", "charset=utf-\ud800", 1)
    record["payload"] = text


_STRUCTURAL: tuple[Callable[[dict[str, Any], random.Random], None], ...] = (
    _replace,
    _replace,
    _replace,
    _delete,
    _delete,
    _add,
    _instant,
    _source,
    _mail,
)


def _textual(line: str, rng: random.Random) -> str:
    damage = rng.randrange(6)
    position = rng.randrange(len(line) + 1)
    if damage == 0:
        return line[:position]  # truncated
    if damage == 1:
        return (
            line[:position]
            + rng.choice(("\x00", "\x1c", "\r", "\ufffd", "\\", '"'))
            + line[position:]
        )
    if damage == 2:
        return line.replace('"', "'", 1)
    if damage == 3:
        return line[:position] + "\\ud800" + line[position:]  # maybe inside a string
    if damage == 4:
        return rng.choice(_NASTY_LINES)
    return line + line  # two records on one line


def mutate(line: str, rng: random.Random) -> str:
    """One damaged copy of the JSON Lines record ``line`` (one line, no newline)."""
    if rng.random() < 0.2:
        return _textual(line, rng).replace("\n", "\\n")
    try:
        record = json.loads(line)
    except ValueError:
        return _textual(line, rng).replace("\n", "\\n")
    if not isinstance(record, dict):
        return _textual(line, rng)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        rng.choice(_STRUCTURAL)(record, rng)
    # ensure_ascii keeps lone surrogates as escapes, as a producer's JSON would carry them.
    return json.dumps(record, ensure_ascii=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, required=True, help="JSON Lines to mutate")
    parser.add_argument("--count", type=int, default=10_000, help="mutated records to write")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    lines = [line for line in args.input.read_text(encoding="utf-8").splitlines() if line]
    rng = random.Random(args.seed)
    with args.out.open("w", encoding="utf-8", errors="surrogatepass") as out:
        for _ in range(args.count):
            out.write(mutate(rng.choice(lines), rng) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
