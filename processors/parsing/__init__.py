"""Parsing: input records (CONTRACT §1) to what the processors act on. Pure, no I/O.

``parse_line`` takes one JSON Lines line of a replay file; ``parse_record`` a record whose
envelope is already read (by ``parse_envelope``, or by a connector). Both return what the
record means: ``Contact`` (a WhatsApp body may hold several, in order), ``AgentAction``,
``SurveyAnswer``, ``CrmUpsert``, ``QaReview``, ``Ignored`` (understood, deliberately not acted
on) or ``DeadLetter`` (not understood, with a reason naming the path). None of the three ever raises
on bad input: a record that cannot be understood must not stop the run.

One module per source owns that source's payload format; this module owns the envelope
``{"at", "source", "payload"}`` and the dispatch. Conversation ids come out final (with the
keyed pseudonyms of CONTRACT §1) for every channel but e-mail, whose conversation the threading
processor decides. Contacts keep clear text; masking of stored text happens later in the
pipeline. Only the ``record`` text of a dead letter is masked here, with the ``mask`` given.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson

from processors.ids import Pseudonymizer
from processors.model import DeadLetter, Millis, Parsed, RawRecord
from processors.parsing._common import Parser, Reject, json_type, show
from processors.parsing.agent import parse_agent
from processors.parsing.chat import parse_chat
from processors.parsing.crm import parse_crm
from processors.parsing.form import parse_form
from processors.parsing.mail import parse_email
from processors.parsing.phone import parse_phone
from processors.parsing.qa import parse_qa
from processors.parsing.survey import parse_survey
from processors.parsing.telegram import parse_telegram
from processors.parsing.vk import parse_vk
from processors.parsing.whatsapp import parse_whatsapp
from processors.timeutil import parse_rfc3339, to_rfc3339

__all__ = [
    "PARSERS",
    "UNKNOWN_AT",
    "load_json_text",
    "parse_envelope",
    "parse_line",
    "parse_record",
    "record_instant",
    "record_line",
]

PARSERS: Final[Mapping[str, Parser]] = {
    "telegram": parse_telegram,
    "whatsapp": parse_whatsapp,
    "email": parse_email,
    "chat": parse_chat,
    "form": parse_form,
    "vk": parse_vk,
    "phone": parse_phone,
    "agent": parse_agent,
    "survey": parse_survey,
    "crm": parse_crm,
    "qa": parse_qa,
}
"""Each source of CONTRACT §1 and its parser."""

Mask = Callable[[str], str]

UNKNOWN_AT: Final[Millis] = -1
"""The ``at`` of an envelope dead letter whose own instant could not be read. Negative, so no
support record (all after 1970) is mistaken for one; a runner may re-date such a letter by its
neighbours in the file."""


def parse_line(line: str, ref: str, pseudo: Pseudonymizer, mask: Mask) -> list[Parsed]:
    """One line of a JSON Lines input file: ``parse_envelope``, then ``parse_record``."""
    envelope = parse_envelope(line, ref, mask)
    if isinstance(envelope, DeadLetter):
        return [envelope]
    return parse_record(envelope, pseudo, mask)


def parse_envelope(line: str, ref: str, mask: Mask) -> RawRecord | DeadLetter:
    """The envelope ``{"at", "source", "payload"}`` of one line, payload left undecided.

    Replay needs this step on its own: records are applied in the order of ``at``, so every
    line's instant must be known before any payload is acted on. Bad JSON, a line that is not
    an object, a missing or unreadable ``at`` (RFC 3339 with an offset), an unknown ``source``
    or a missing ``payload`` give a ``DeadLetter`` whose ``record`` is the masked line; its
    ``at`` is ``UNKNOWN_AT`` when the line's own instant could not be read.
    """
    text = line.rstrip("\r\n")
    at = UNKNOWN_AT
    source = ""
    try:
        try:
            envelope = load_json_text(text)
        except json.JSONDecodeError as exc:
            raise Reject(f"invalid json: {exc.msg} at column {exc.colno}") from None
        except ValueError as exc:  # NaN / Infinity
            raise Reject(str(exc)) from None
        except RecursionError:
            raise Reject("invalid json: nested too deeply") from None
        if not isinstance(envelope, dict):
            raise Reject(f"record must be a json object, got {json_type(envelope)}")
        raw_at = envelope.get("at")
        if raw_at is None:
            raise Reject("missing field at")
        if not isinstance(raw_at, str):
            raise Reject(f"field at must be a string, got {json_type(raw_at)}")
        try:
            at = parse_rfc3339(raw_at)
        except ValueError as exc:
            raise Reject(f"field at: {exc}") from None
        raw_source = envelope.get("source")
        if raw_source is None:
            raise Reject("missing field source")
        if not isinstance(raw_source, str):
            raise Reject(f"field source must be a string, got {json_type(raw_source)}")
        if raw_source not in PARSERS:
            raise Reject(f"unknown source {show(raw_source)}")
        source = raw_source
        if "payload" not in envelope:
            raise Reject("missing field payload")
    except Reject as problem:
        return DeadLetter(at=at, source=source, reason=problem.reason, record=mask(text), ref=ref)
    return RawRecord(at=at, source=source, payload=envelope["payload"], ref=ref, text=text)


def record_instant(line: bytes) -> Millis | None:
    """The ``at`` of one line's envelope, read fast, when ``parse_envelope`` would accept the
    line; None when it might not (``parse_envelope`` then reads the line and says why).

    A replay reads every line's instant before it applies anything (it orders the records by
    ``at``, ``streams.replay_input``), and most lines are records: orjson reads the bytes in
    a fraction of the json module's time. It is never laxer than ``load_json_text``: what it
    accepts, the json module accepts with the same value for the envelope's fields (it refuses
    NaN, a lone surrogate, invalid UTF-8 and a byte order mark, which that function refuses or
    repairs, and those lines go the slow way). The one limit it has that the json module has
    not, nesting, is the other way round: the json module gives up on nesting orjson reads
    (below 1,024 levels, depending on the stack), so a line with many brackets goes the slow
    way too. On what orjson read, the checks are ``parse_envelope``'s.
    """
    if line.count(b"[") + line.count(b"{") > _FAST_BRACKETS:
        return None
    try:
        envelope = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if type(envelope) is not dict or "payload" not in envelope:
        return None
    raw_at, source = envelope.get("at"), envelope.get("source")
    if type(raw_at) is not str or type(source) is not str or source not in PARSERS:
        return None
    try:
        return parse_rfc3339(raw_at)
    except ValueError:
        return None


_FAST_BRACKETS: Final = 200
"""Brackets (``[`` and ``{``) a line may hold for ``record_instant``: far from any nesting the
json module refuses, far above a record's own (a few levels). Brackets inside texts count too,
which only sends such a line (CSS in a mail, say) the slow way."""


def load_json_text(text: str) -> Any:
    """``json.loads`` for input records and payloads. ``NaN`` and ``Infinity`` are refused
    (``ValueError``): JSON has no such values, and a NaN score or mrr would compare false with
    everything and slip through every range check. Half of a surrogate pair, which JSON can
    escape (``"\\ud83d"``, a truncated emoji) but no UTF-8 text can hold, becomes U+FFFD:
    kept, it would make every later encoding of the text fail (a warehouse insert, a topic)."""
    if text.startswith("\ufeff"):  # as json.loads refuses it
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    value = _DECODER.decode(text)
    # A surrogate comes only from an escape, and an ASCII string holds none: an object of
    # ASCII strings (an e-mail's envelope, whose payload is the long part of the line) needs
    # no scan of the text. Else the pattern alone: it scans for its leading backslash quickly,
    # where `"\\u" in text` first was twice as slow on long lines full of escapes.
    if not _ascii_strings(value) and _SURROGATE_ESCAPE.search(text):
        value = _without_surrogates(value)
    return value


def _ascii_strings(value: Any) -> bool:
    """Whether value is an object whose keys and values are all ASCII strings (str.isascii
    reads a flag, it does not scan). An envelope whose payload is an object (most sources)
    is told at its payload, before any loop."""
    if type(value) is not dict or type(value.get("payload")) is not str:
        return False
    for key, item in value.items():
        if type(item) is not str or not item.isascii() or not key.isascii():
            return False
    return True


def _refuse_constant(name: str) -> object:
    raise ValueError(f"invalid json: {name} is not a json value")


# One decoder for every line: json.loads with an option builds a new decoder (and its scanner)
# per call.
_DECODER: Final = json.JSONDecoder(parse_constant=_refuse_constant)
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89abcdefABCDEF]")
_SURROGATE: Final = re.compile(r"[\ud800-\udfff]")


def _without_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    return value


def parse_record(record: RawRecord, pseudo: Pseudonymizer, mask: Mask) -> list[Parsed]:
    """A decoded record: dispatched on ``record.source`` to that source's parser."""
    parser = PARSERS.get(record.source)
    try:
        if parser is None:
            raise Reject(f"unknown source {show(record.source)}")
        return parser(record, pseudo)
    except Reject as problem:
        reason = problem.reason
    except RecursionError:
        reason = "payload nested too deeply"
    except Exception as exc:  # the run must go on whatever the input holds
        # A parser bug or a library choking on hostile input (the MIME header parser has had
        # such bugs). The record is kept as a dead letter with the exception's type only: its
        # message may quote personal data.
        reason = f"{record.source} payload could not be parsed ({type(exc).__name__})"
    known = record.source if record.source in PARSERS else ""
    return [
        DeadLetter(
            at=record.at,
            source=known,
            reason=reason,
            record=mask(record_line(record)),
            ref=record.ref,
        )
    ]


def record_line(record: RawRecord) -> str:
    """The record as a dead letter keeps it: its line as it came, or, for a record that came
    without one (a raw-topic message: its line is written only if a dead letter needs it), its
    envelope as a compact JSON line."""
    if record.text:
        return record.text
    try:
        envelope = {"at": to_rfc3339(record.at), "source": record.source, "payload": record.payload}
        return json.dumps(envelope, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError, OverflowError):
        return repr(record.payload)
