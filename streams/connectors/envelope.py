"""The raw envelope a connector publishes (``schemas/raw_contact.avsc``), checked before it goes.

``check_json`` runs the project's own parsers (``processors.parsing.parse_record``) over the
would-be record: a body that would be ignored (a Telegram edit, WhatsApp statuses, a VK
``group_join``) is acknowledged and not published; a well-formed JSON body the parsers cannot
understand is published all the same (key ``{source}:unparsed``) and becomes a dead letter
downstream, because refusing an authenticated delivery loses the message once the channel stops
retrying; only a body that is not JSON at all is refused. What is published is byte-exact:
``payload`` is the request body as it came (the parsers downstream read the very same text), so
a redelivered webhook carries the same channel message id and the desk recognises it as a
duplicate.

The message key keeps one conversation on one partition, in order: the conversation id as the
parsers compute it; for e-mail, whose conversation the threading processor decides later, it is
``email:{h(root)}`` with root the first id of ``References``, else of ``In-Reply-To``, else the
mail's own ``Message-ID`` (every mail of a thread names the same root, so a thread stays in
order); agent and survey records use the conversation they name; a crm upsert
``crm:{customer_id}``. A WhatsApp body holding several senders goes whole (it must stay
byte-exact) under the first message's conversation.

E-mail payloads are text in the Avro schema but mail is bytes: the message is decoded as UTF-8
when it is valid UTF-8 (all 7-bit MIME mail, and 8-bit UTF-8 mail), otherwise as ISO-8859-1,
which maps every byte to one character and back. ``content_type`` names the charset used
(``message/rfc822; charset=utf-8`` or ``...; charset=iso-8859-1``), so ``email_bytes`` gives the
exact bytes back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from processors.ids import Pseudonymizer
from processors.model import (
    AgentAction,
    Contact,
    CrmUpsert,
    DeadLetter,
    Ignored,
    Millis,
    Parsed,
    QaReview,
    RawRecord,
    SurveyAnswer,
)
from processors.parsing import load_json_text, parse_record
from processors.timeutil import in_range
from schemas.codec import CODEC, RAW_CONTACT, CodecError

JSON_CONTENT_TYPE: Final = "application/json"
EMAIL_UTF8: Final = "message/rfc822; charset=utf-8"
EMAIL_LATIN1: Final = "message/rfc822; charset=iso-8859-1"

Clock = Callable[[], Millis]
Mask = Callable[[str], str]


def wall_clock() -> Millis:
    """The production clock: now, in milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Envelope:
    """One ``raw_contact`` record and the key it is published under."""

    key: str
    at: Millis
    source: str
    payload: str
    received_at: Millis
    connector: str
    channel_message_id: str
    content_type: str

    def record(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "source": self.source,
            "payload": self.payload,
            "received_at": self.received_at,
            "connector": self.connector,
            "channel_message_id": self.channel_message_id,
            "content_type": self.content_type,
            "sequence": None,  # a connector's records of one instant go by partition
        }

    def encode(self) -> bytes:
        return CODEC.encode(RAW_CONTACT, self.record())


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the parsers make of a received body: an envelope to publish, or not.

    ``refused`` is set when the body will be a dead letter: with an ``envelope`` when it is
    published all the same (well-formed JSON or a mail the parsers cannot understand, which
    downstream becomes a dead letter with the reason), without one when there is nothing that
    could be published (not JSON at all: the HTTP connector answers 400 with the reason).
    ``envelope`` is None too when there is nothing to publish (only ignored items)."""

    envelope: Envelope | None
    contacts: tuple[Contact, ...] = ()
    ignored: tuple[Ignored, ...] = ()
    refused: DeadLetter | None = None


def check_json(
    source: str,
    text: str,
    *,
    at: Millis,
    received_at: Millis,
    connector: str,
    ref: str,
    pseudo: Pseudonymizer,
    mask: Mask,
) -> Verdict:
    """A JSON body of ``source`` (everything but e-mail), checked by the source's parser."""
    try:
        payload = load_json_text(text)
    except json.JSONDecodeError as exc:
        return _refused(at, source, f"invalid json: {exc.msg} at column {exc.colno}", ref)
    except ValueError as exc:  # NaN / Infinity
        return _refused(at, source, str(exc), ref)
    except RecursionError:
        return _refused(at, source, "invalid json: nested too deeply", ref)
    record = RawRecord(at=at, source=source, payload=payload, ref=ref, text="")
    items = parse_record(record, pseudo, mask)
    verdict = _verdict(items, source, text, JSON_CONTENT_TYPE, at, received_at, connector, pseudo)
    if verdict.refused is not None:
        # Authenticated, well-formed JSON is published whatever its shape: refused, the
        # channel would retry and then drop it (Meta for days, VK stops delivering), and the
        # message would be lost. Downstream it is a dead letter with the parser's reason,
        # visible in dead_letters and replayable once a parser learns the shape.
        return Verdict(
            _unparsed(source, text, JSON_CONTENT_TYPE, at, received_at, connector),
            refused=verdict.refused,
        )
    return verdict


def check_email(
    raw: bytes,
    *,
    at: Millis,
    received_at: Millis,
    connector: str,
    ref: str,
    pseudo: Pseudonymizer,
    mask: Mask,
) -> Verdict:
    """A whole RFC 5322 message. A mailbox cannot refuse mail, so a mail the parser cannot
    understand is still published (``envelope`` set, ``refused`` too): downstream it becomes a
    dead letter with the reason, which is where an operator looks for lost mail."""
    payload, content_type = email_text(raw)
    record = RawRecord(at=at, source="email", payload=payload, ref=ref, text="")
    items = parse_record(record, pseudo, mask)
    verdict = _verdict(items, "email", payload, content_type, at, received_at, connector, pseudo)
    if verdict.refused is not None:
        envelope = _unparsed("email", payload, content_type, at, received_at, connector)
        return Verdict(envelope, refused=verdict.refused)
    return verdict


def _unparsed(
    source: str, payload: str, content_type: str, at: Millis, received_at: Millis, connector: str
) -> Envelope:
    """The envelope of a body the parsers cannot understand: published all the same, under
    ``{source}:unparsed``, to become a dead letter downstream."""
    return Envelope(
        key=f"{source}:unparsed",
        at=at,
        source=source,
        payload=payload,
        received_at=received_at,
        connector=connector,
        channel_message_id="",
        content_type=content_type,
    )


def email_text(raw: bytes) -> tuple[str, str]:
    """A mail's bytes as the envelope's payload text, and the content type naming the charset."""
    try:
        return raw.decode("utf-8"), EMAIL_UTF8
    except UnicodeDecodeError:
        return raw.decode("iso-8859-1"), EMAIL_LATIN1


def email_bytes(payload: str, content_type: str) -> bytes:
    """The exact bytes of a mail published with ``email_text``."""
    charset = "iso-8859-1" if "iso-8859-1" in content_type.lower() else "utf-8"
    return payload.encode(charset)


def _refused(at: Millis, source: str, reason: str, ref: str) -> Verdict:
    return Verdict(
        None, refused=DeadLetter(at=at, source=source, reason=reason, record="", ref=ref)
    )


def _verdict(
    items: Sequence[Parsed],
    source: str,
    payload: str,
    content_type: str,
    at: Millis,
    received_at: Millis,
    connector: str,
    pseudo: Pseudonymizer,
) -> Verdict:
    for item in items:
        if isinstance(item, DeadLetter):
            return Verdict(None, refused=item)
    contacts = tuple(item for item in items if isinstance(item, Contact))
    ignored = tuple(item for item in items if isinstance(item, Ignored))
    acted = [item for item in items if not isinstance(item, Ignored)]
    if not acted:
        return Verdict(None, ignored=ignored)
    envelope = Envelope(
        key=conversation_key(acted[0], pseudo),
        at=at,
        source=source,
        payload=payload,
        received_at=received_at,
        connector=connector,
        channel_message_id=",".join(_message_id(item) for item in acted if _message_id(item)),
        content_type=content_type,
    )
    return Verdict(envelope, contacts=contacts, ignored=ignored)


def conversation_key(item: Parsed, pseudo: Pseudonymizer) -> str:
    """The raw topic's key of a record whose first acted item is ``item``: its conversation
    (an e-mail's thread root, a crm record's customer)."""
    if isinstance(item, Contact):
        if item.threading is not None:
            threading = item.threading
            root = (threading.references or threading.in_reply_to or (threading.message_id,))[0]
            return f"email:{pseudo.h(root)}"
        return item.conversation_id
    if isinstance(item, AgentAction) and item.type == "presence":
        return f"agent:{item.agent_id}"  # names no conversation (CONTRACT §7)
    if isinstance(item, AgentAction | SurveyAnswer):
        return item.conversation_id
    if isinstance(item, CrmUpsert):
        return f"crm:{item.customer_id}"
    if isinstance(item, QaReview):
        # The ticket's conversation: a review travels with the records of its ticket.
        return item.ticket_id.rsplit("#", 1)[0]
    return f"{item.source}:unparsed"  # pragma: no cover - Ignored and DeadLetter never get here


def _message_id(item: Parsed) -> str:
    if isinstance(item, Contact):
        return item.channel_message_id
    if isinstance(item, AgentAction):
        return item.message_id
    return ""


# --------------------------------------------------------------------------------------------
# The consuming side: a raw-topic message back to the record the parsers take
# --------------------------------------------------------------------------------------------


def decode_raw_contact(
    data: bytes, ref: str, mask: Mask, *, at_if_unknown: Millis = 0
) -> RawRecord | DeadLetter:
    """A ``raw_contact`` message as the ``RawRecord`` a runner feeds to ``parse_record``.

    ``ref`` names the message's position (``raw-contacts/3/1042``). A message that cannot be
    decoded becomes a dead letter dated ``at_if_unknown`` rather than stopping the consumer."""
    return decode_sequenced(data, ref, mask, at_if_unknown=at_if_unknown)[0]


def decode_sequenced(
    data: bytes, ref: str, mask: Mask, *, at_if_unknown: Millis = 0
) -> tuple[RawRecord | DeadLetter, int]:
    """:func:`decode_raw_contact`, and the publisher's ``sequence`` among records of the
    same instant (0 when it set none: a connector)."""
    try:
        name, fields = CODEC.decode(data)
    except CodecError as exc:
        reason = f"unreadable raw message: {exc}"
        return DeadLetter(at=at_if_unknown, source="", reason=reason, record="", ref=ref), 0
    if name != RAW_CONTACT:
        reason = f"expected a raw_contact message, got {name}"
        return DeadLetter(at=at_if_unknown, source="", reason=reason, record="", ref=ref), 0
    if not in_range(int(fields["at"])):
        # A producer's clock (or a bug) can put any long in ``at``; the warehouse stores
        # 1900..2299 only, and such an instant would stop whatever tries to write it.
        reason = f"field at: {fields['at']} ms is outside the instants the warehouse stores"
        return DeadLetter(at=at_if_unknown, source="", reason=reason, record="", ref=ref), 0
    return raw_record(fields, ref, mask), int(fields.get("sequence") or 0)


def raw_record(fields: Mapping[str, Any], ref: str, mask: Mask) -> RawRecord | DeadLetter:
    at, source, text = fields["at"], fields["source"], fields["payload"]
    payload: Any = text
    if str(fields.get("content_type", "")).startswith(JSON_CONTENT_TYPE):
        try:
            payload = load_json_text(text)
        except (ValueError, RecursionError) as exc:
            return DeadLetter(at=at, source=source, reason=str(exc), record=mask(text), ref=ref)
    # No text: the line (processors.parsing.record_line) is written only for a record that
    # may become a dead letter, a third of the cost of taking a message in otherwise.
    return RawRecord(at=at, source=source, payload=payload, ref=ref)
