"""Keyed pseudonyms and deterministic ids.

``Pseudonymizer.h`` is the ``h`` of CONTRACT §1: the first 20 lower-case hex digits of
HMAC-SHA256 keyed with the PII key over the UTF-8 text. Event ids are derived from the
aggregate they belong to and its sequence number, so processing the same input again (a
replay, a redelivery under at-least-once) yields the same ids and idempotent sinks write
nothing new.

A text holding a lone surrogate (half of a UTF-16 pair, which JSON can escape as ``"\\ud800"``
but UTF-8 cannot encode) is hashed as the parsers read it: each lone surrogate replaced by
U+FFFD (``processors.parsing.load_json_text`` does the same to every decoded record), so the
identity in a dead letter and the conversation id of the same record agree, and ``h`` never
fails (docs/DEAD_LETTERS.md).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

DEV_PII_KEY = "supportstream-dev-key"

_NON_DIGITS = re.compile(r"\D+")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


_STR_LOWER: Final[Callable[[str], str]] = str.lower


def lower(text: str) -> str:
    """``text.lower()`` as the interpreter computes it. Compiled code (processors.native)
    lower-cases a text typed ``str`` one character at a time and misses Unicode's final sigma
    ("ΟΔΟΣ" gives "οδοσ", not "οδος"); the interpreter's method, called as an object, does not
    (docs/REPLAY.md, "What runs compiled")."""
    return text.lower() if text.isascii() else _STR_LOWER(text)


def utf8(text: str) -> bytes:
    """``text`` as UTF-8, each lone surrogate (which UTF-8 cannot hold) as U+FFFD."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text).encode("utf-8")


@dataclass(frozen=True)
class Pseudonymizer:
    """Keyed hashing of personal values. Built once from the PII key; ``h`` is memoised per
    value because the same senders recur constantly on the hot path."""

    key: bytes
    _cache: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_text(cls, key: str) -> Pseudonymizer:
        return cls(key.encode("utf-8"))

    def h(self, text: str) -> str:
        cached = self._cache.get(text)
        if cached is None:
            digest = hmac.new(self.key, utf8(text), hashlib.sha256).hexdigest()
            cached = digest[:20]
            if len(self._cache) < 1_000_000:
                self._cache[text] = cached
        return cached


def normalize_phone(raw: str) -> str:
    """A phone as ``+`` and its digits (CONTRACT §1). An international ``00`` prefix becomes
    ``+``; nothing else is guessed (no national trunk prefixes), so the same caller must be sent
    the same way by the telephony system. Returns ``""`` when there are no digits."""
    text = raw.strip()
    digits = _NON_DIGITS.sub("", text)
    if not digits:
        return ""
    if not text.startswith("+") and digits.startswith("00"):
        digits = digits[2:]
    return "+" + digits


def normalize_email(raw: str) -> str:
    """An e-mail address as compared for identity: surrounding space removed, lower-cased."""
    return lower(raw.strip())


def normalize_message_id(raw: str) -> str:
    """A Message-ID as compared for threading: angle brackets removed, lower-cased."""
    return lower(raw.strip().strip("<>").strip())


def event_id(aggregate: str, seq: int) -> str:
    """The id of the ``seq``-th event of an aggregate (a ticket, a customer): 32 hex digits."""
    return hashlib.sha256(utf8(f"{aggregate}\x1f{seq}")).hexdigest()[:32]
