"""Durations as the rules file writes them: ``45s``, ``15m``, ``2h``, ``3d`` or combined ``1h30m``.

``parse_duration`` turns such a text into milliseconds (the unit of every instant and target in
the processors); ``format_duration`` writes milliseconds back in the same notation, so a value
read from the rules file can be shown to a user the way they would have written it.

The grammar is deliberately narrow: whole numbers, units ``d h m s`` in descending order, each
at most once, no spaces, a positive total. Anything looser (``1.5h``, ``90``, ``1h1h``) is
ambiguous to somebody reading the file, so it is refused with a reason rather than guessed at.
"""

from __future__ import annotations

import json
import re
from typing import Final

__all__ = ["UNIT_MS", "format_duration", "parse_duration"]

UNIT_MS: Final[dict[str, int]] = {
    "d": 86_400_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1_000,
}
"""Milliseconds per unit. A day is 24 hours of absolute time; business days are the calendars'."""

_HINT: Final = "use 45s, 15m, 2h, 3d or 1h30m"

# One optional group per unit, in descending order: this is what enforces "descending, each at
# most once" without any bookkeeping. The surrounding check for an empty match rejects "".
_DURATION: Final = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_TOKEN: Final = re.compile(r"(\d+)([a-z])")


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def parse_duration(text: str) -> int:
    """Return the duration written in ``text`` in milliseconds.

    Raises ``ValueError`` whose message names the text and what is wrong with it, ready to be
    shown to the user (``"1x" is not a duration (use 45s, 15m, 2h, 3d or 1h30m)``).
    """
    if not isinstance(text, str):
        # YAML turns an unquoted ``30`` into an int; say so instead of failing obscurely.
        raise ValueError(f"{text!r} is not a duration ({_HINT}; a bare number has no unit)")
    match = _DURATION.fullmatch(text)
    if match is None or not text:
        raise ValueError(_refusal(text, _why_not(text)))
    total = sum(
        int(amount) * UNIT_MS[unit]
        for amount, unit in zip(match.groups(), UNIT_MS, strict=True)
        if amount is not None
    )
    if total <= 0:
        raise ValueError(_refusal(text, "it must be longer than zero"))
    return total


def _refusal(text: str, why: str) -> str:
    # The hint comes first so that every refusal reads the same way; the specific mistake, when
    # one can be told, follows it.
    detail = f"{_HINT}; {why}" if why else _HINT
    return f"{_quoted(text)} is not a duration ({detail})"


def _why_not(text: str) -> str:
    """The most likely mistake in a text the grammar refused, or "" when nothing more specific
    than the hint can be said (``1x``: the hint already lists the units)."""
    if not text.strip():
        return "it is empty"
    if text != text.strip() or " " in text:
        return "no spaces"
    if text.startswith("-"):
        return "it must be positive"
    if re.fullmatch(r"\d+", text):
        return "a bare number has no unit"
    if re.fullmatch(r"[a-z]+", text):
        return "a unit needs a number in front of it"
    if text != text.lower() and _DURATION.fullmatch(text.lower()):
        return "units are lower-case"
    if re.search(r"\d[.,]\d", text):
        return "whole numbers only, e.g. 1h30m instead of 1.5h"
    tokens = _TOKEN.findall(text)
    if "".join(a + u for a, u in tokens) == text:
        units = [u for _, u in tokens]
        if any(u not in UNIT_MS for u in units):
            return ""
        if len(set(units)) != len(units):
            return "each unit may appear only once"
        return "units must go from largest to smallest (d, h, m, s)"
    return ""


def format_duration(ms: int) -> str:
    """Write ``ms`` in the rules file's notation: ``5400000`` -> ``"1h30m"``.

    Whole seconds round-trip through ``parse_duration``. A remainder below a second, which the
    rules file cannot express, is shown as a trailing ``ms`` component (``"1m500ms"``) so that
    measured durations can be displayed too; zero is ``"0s"``.
    """
    if ms < 0:
        raise ValueError(f"a duration cannot be negative: {ms} ms")
    if ms == 0:
        return "0s"
    parts: list[str] = []
    rest = ms
    for unit, size in UNIT_MS.items():
        amount, rest = divmod(rest, size)
        if amount:
            parts.append(f"{amount}{unit}")
    if rest:
        parts.append(f"{rest}ms")
    return "".join(parts)
