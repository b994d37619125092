"""What the parser tests share, handed out as the ``kit`` fixture (a fixture rather than an
importable helper module, so the tests work under any pytest import mode).

``kit.h`` computes CONTRACT §1's ``h`` independently of the code under test, with a known key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from processors.ids import Pseudonymizer
from processors.model import Parsed, RawRecord
from processors.parsing import parse_line, parse_record

_FIXTURES = Path(__file__).parent / "fixtures"
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_DIGITS = re.compile(r"\d{7,}")


def _mask(text: str) -> str:
    """A stand-in for the PII masker: e-mail addresses and long digit runs."""
    return _DIGITS.sub("<digits>", _EMAIL.sub("<email>", text))


@dataclass(frozen=True)
class Kit:
    pii_key: str = "test-pii-key"
    at: str = "2026-03-02T09:15:00+03:00"
    at_ms: int = 1_772_432_100_000  # `at` worked out by hand: 2026-03-02T06:15:00Z
    ref: str = "input.jsonl:7"
    pseudo: Pseudonymizer = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pseudo", Pseudonymizer.from_text(self.pii_key))

    def h(self, text: str) -> str:
        return hmac.new(self.pii_key.encode(), text.encode(), hashlib.sha256).hexdigest()[:20]

    def mask(self, text: str) -> str:
        return _mask(text)

    def line(self, source: str, payload: Any, at: str | None = None) -> str:
        envelope = {"at": self.at if at is None else at, "source": source, "payload": payload}
        return json.dumps(envelope, ensure_ascii=False)

    def parse(self, text: str) -> list[Parsed]:
        return parse_line(text, self.ref, self.pseudo, _mask)

    def parse_payload(self, source: str, payload: Any) -> list[Parsed]:
        return self.parse(self.line(source, payload))

    def parse_record(self, record: RawRecord) -> list[Parsed]:
        return parse_record(record, self.pseudo, _mask)

    def json(self, name: str) -> Any:
        return json.loads((_FIXTURES / name).read_text(encoding="utf-8"))

    def text(self, name: str) -> str:
        return (_FIXTURES / name).read_text(encoding="utf-8")


@pytest.fixture(scope="session")  # stateless, so one serves every test (and hypothesis)
def kit() -> Kit:
    return Kit()
