"""Stage ``parse`` of the production path: raw-contacts partitions, in parallel, to the desk.

``raw-contacts`` has ``SUPPORTSTREAM_PARTITIONS`` partitions, keyed by conversation (the
connectors' key), and the workers split them in their consumer group. Each worker parses the
raw messages of the partitions it owns (Avro envelope, the channel's native payload, e-mail
MIME, identities and their keyed hashes) and forwards what each message means as one
:class:`Entry` on ``desk-input``, the desk's one partition; the entries of one raw partition
parsed in one batch travel as one message (``encode_entries``). The desk merges the entries
of all partitions back into the order ``replay`` applies records (``streams.sequencer``); for that,
each entry carries its position (raw partition and offset) and its order key (``at``, then
the publisher's ``sequence``), and an owner whose partition holds nothing more sends a
:class:`Mark` instead (its committed offset and the wall clock).

``desk-input`` is internal, like a changelog: JSON values (``FORMAT``), written and read only by
the workers of one deployment. It carries what ``raw-contacts`` carries (clear identities and
text; the desk masks and hashes them), so it is as sensitive and has its retention.

A raw message that cannot be read still yields an entry, holding its dead letter, dated by the
message's Kafka timestamp: it is never dropped, and a redelivered message yields the same entry.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar, get_args

import orjson

from processors.model import (
    AgentAction,
    DeadLetter,
    EmailThreading,
    Identity,
    Millis,
    Parsed,
    QaReview,
    SurveyAnswer,
    field_names,
)
from processors.parsing import record_line
from streams.connectors.envelope import decode_sequenced
from streams.local import ParseStage

FORMAT: Final = 1
"""Version of a ``desk-input`` message holding one entry or one mark; a desk refuses
(dead-letters) any version it does not know."""

BATCH_FORMAT: Final = 2
"""Version of a ``desk-input`` message holding the entries the intake parsed in one batch,
those of each raw partition in offset order (``encode_entries``): the desk then pays its
per-message costs (the Faust event, the input's table transaction) once per batch."""

Key = tuple[int, ...]
"""An entry's place in the desk's order: (at, sequence, partition, offset)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One raw message, parsed: what the desk applies at ``at``.

    When the desk may refuse an item (an agent, survey or review record naming a conversation
    without a ticket), ``text`` is the record's text as received, which the desk redacts into
    its dead letter only if it does refuse one: redacting every such record at the intake
    (most of the week's records are agents') cost a sixth of the intake's time for a handful
    of dead letters. ``record`` is that dead letter's record redacted already, as entries of
    earlier releases carry it; a desk uses whichever the entry has.
    """

    partition: int
    offset: int
    partitions: int
    at: Millis
    sequence: int
    ref: str
    record: str
    items: tuple[Parsed, ...]
    text: str = ""

    @property
    def key(self) -> Key:
        return (self.at, self.sequence, self.partition, self.offset)


@dataclass(frozen=True, slots=True)
class Mark:
    """The owner of a raw partition has forwarded every message before ``offset`` (its
    committed offset, so those entries are in ``desk-input`` already) and the partition held
    nothing more; what comes later is received after the wall-clock instant ``upto``."""

    partition: int
    offset: int
    partitions: int
    upto: Millis


class IntakeError(ValueError):
    """A ``desk-input`` message this desk cannot read."""


Raw = tuple[bytes, int, int, int, Millis]
"""One raw message as the intake agent takes it from Faust: its value, raw partition, offset,
the raw partition count the worker knows, and its Kafka timestamp."""


@dataclass(frozen=True)
class IntakeBatch:
    """What a batch of raw messages becomes: the ``desk-input`` messages to send, in order,
    and the raw messages taken per raw partition."""

    messages: list[bytes]
    lanes: dict[int, int]


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------


class Intake:
    """Parses the raw messages of the partitions a worker owns into entries."""

    def __init__(self, parser: ParseStage) -> None:
        self.parser = parser

    def entry(
        self, data: bytes, *, partition: int, offset: int, partitions: int, timestamp: Millis
    ) -> Entry:
        ref = f"raw-contacts/{partition}/{offset}"
        decoded, sequence = decode_sequenced(data, ref, self.parser.redact, at_if_unknown=timestamp)
        if isinstance(decoded, DeadLetter):
            return Entry(partition, offset, partitions, decoded.at, 0, ref, "", (decoded,))
        items = tuple(self.parser.parse(decoded))
        refusable = any(isinstance(item, AgentAction | SurveyAnswer | QaReview) for item in items)
        at = decoded.at
        if all(isinstance(item, DeadLetter) for item in items):
            # A dead letter moves no time; its place in the desk's order is at most its
            # arrival, so one dated far ahead (a wrong clock) is not held back until then.
            at = min(at, timestamp)
        text = record_line(decoded) if refusable else ""
        return Entry(partition, offset, partitions, at, sequence, ref, "", items, text)

    def batch(self, raws: Sequence[Raw]) -> IntakeBatch:
        """A batch of raw messages as the intake agent forwards it: its entries as
        ``desk-input`` messages (``desk_input_messages``), in the order given."""
        entries = [
            self.entry(
                value, partition=partition, offset=offset, partitions=count, timestamp=timestamp
            )
            for value, partition, offset, count, timestamp in raws
        ]
        lanes = Counter(partition for _, partition, _, _, _ in raws)
        return IntakeBatch(desk_input_messages(entries) if entries else [], dict(lanes))


# --------------------------------------------------------------------------------------------
# desk-input messages
# --------------------------------------------------------------------------------------------


def encode_input(message: Entry | Mark) -> bytes:
    if isinstance(message, Mark):
        value: dict[str, Any] = {
            "format": FORMAT,
            "mark": [message.partition, message.offset, message.partitions, message.upto],
        }
    else:
        value = {"format": FORMAT, "entry": entry_to_json(message)}
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def encode_entries(entries: Sequence[Entry]) -> bytes:
    """Several entries as one ``desk-input`` message: of one raw partition or several, those
    of each partition in offset order (the merge takes them one by one)."""
    value = {"format": BATCH_FORMAT, "entries": [entry_to_json(entry) for entry in entries]}
    try:
        return orjson.dumps(value)  # the same JSON, several times faster (a busy intake's)
    except (TypeError, orjson.JSONEncodeError):  # what orjson refuses (a huge int) json writes
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


DESK_INPUT_BYTES = 512 * 1024
"""The most one desk-input message holds (JSON); a batch above it is split, so the message
stays well below Kafka's 1 MB (its undo entry is stored in parts, ``streams.faust_runner``)."""


def desk_input_messages(entries: list[Entry], limit: int = DESK_INPUT_BYTES) -> list[bytes]:
    """``entries`` as desk-input messages of at most ``limit`` bytes each (halved until they
    fit; one entry alone is what it is: a raw message is below 1 MB, and its entry too)."""
    value = encode_entries(entries)
    if len(value) <= limit or len(entries) == 1:
        return [value]
    half = len(entries) // 2
    return desk_input_messages(entries[:half], limit) + desk_input_messages(entries[half:], limit)


def decode_input(data: bytes) -> Entry | Mark:
    """A ``desk-input`` message of one entry or mark (``FORMAT``); ``IntakeError`` names
    what is wrong with one that is not."""
    return _guarded(lambda: _single(json.loads(data)))


def decode_inputs(data: bytes) -> list[Entry | Mark]:
    """What any ``desk-input`` message holds, in order: one entry or mark (``FORMAT``) or
    the entries of a batch (``BATCH_FORMAT``). ``IntakeError`` names what is wrong with a
    message that is neither; nothing of such a message is applied."""

    def decode() -> list[Entry | Mark]:
        try:
            value = orjson.loads(data)  # several times faster than json (a busy desk's)
        except orjson.JSONDecodeError:
            value = json.loads(data)  # what orjson refuses (a huge int), or json's own error
        if isinstance(value, dict) and value.get("format") == BATCH_FORMAT:
            entries = value["entries"]
            if not isinstance(entries, list) or not entries:
                raise IntakeError("desk-input batch without entries")
            return [entry_from_json(entry) for entry in entries]
        return [_single(value)]

    return _guarded(decode)


T = TypeVar("T")


def _guarded(decode: Callable[[], T]) -> T:
    try:
        return decode()
    except IntakeError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError) as exc:
        raise IntakeError(f"unreadable desk-input message: {type(exc).__name__}: {exc}") from exc


def _single(value: Any) -> Entry | Mark:
    if value.get("format") != FORMAT:
        raise IntakeError(f"desk-input format {value.get('format')!r}, expected {FORMAT}")
    if "mark" in value:
        partition, offset, partitions, upto = value["mark"]
        return Mark(int(partition), int(offset), int(partitions), int(upto))
    return entry_from_json(value["entry"])


def entry_to_json(entry: Entry) -> dict[str, Any]:
    value = {
        "p": entry.partition,
        "o": entry.offset,
        "n": entry.partitions,
        "at": entry.at,
        "seq": entry.sequence,
        "ref": entry.ref,
        "record": entry.record,
        "items": [item_to_json(item) for item in entry.items],
    }
    if entry.text:
        value["text"] = entry.text  # a desk of an earlier release ignores it (its "record" is "")
    return value


def entry_from_json(value: dict[str, Any]) -> Entry:
    return Entry(
        partition=int(value["p"]),
        offset=int(value["o"]),
        partitions=int(value["n"]),
        at=int(value["at"]),
        sequence=int(value["seq"]),
        ref=str(value["ref"]),
        record=str(value["record"]),
        items=tuple(item_from_json(item) for item in value["items"]),
        text=str(value.get("text", "")),
    )


def item_to_json(item: Parsed) -> dict[str, Any]:
    """A parsed item as JSON: its type's name (``@item``) and its fields (identities as
    pairs, an e-mail's threading as a triple)."""
    value: dict[str, Any] = {"@item": type(item).__name__}
    for name in field_names(type(item)):
        field_value = getattr(item, name)
        if name == "identities":
            field_value = [[i.kind, i.value] for i in field_value]
        elif name == "threading" and field_value is not None:
            field_value = [
                field_value.message_id,
                list(field_value.references),
                list(field_value.in_reply_to),
            ]
        value[name] = field_value
    return value


def item_from_json(value: dict[str, Any]) -> Parsed:
    fields = dict(value)
    kind = fields.pop("@item")
    if "identities" in fields:
        fields["identities"] = tuple(Identity(k, v) for k, v in fields["identities"])
    if fields.get("threading") is not None:
        message_id, references, in_reply_to = fields["threading"]
        fields["threading"] = EmailThreading(message_id, tuple(references), tuple(in_reply_to))
    if kind == "QaReview":
        fields["scores"] = tuple((name, score) for name, score in fields["scores"])
    cls = _ITEM_TYPES.get(kind)
    if cls is None:
        raise IntakeError(f"unknown parsed item type {kind!r}")
    item: Parsed = cls(**fields)
    return item


_ITEM_TYPES: Final[dict[str, Any]] = {cls.__name__: cls for cls in get_args(Parsed)}
