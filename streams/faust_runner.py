"""What the Faust workers run, without Faust: raw messages, desk state in tables, and time.

``streams.faust_app`` wires this module into a Faust app; everything here is plain Python so
it can be tested, and compared with the local runner, without a broker.

* **Raw messages.** A connector publishes each input record to ``raw-contacts`` as an Avro
  ``RawContact`` (``schemas/raw_contact.avsc``): ``payload`` is the source's payload as text,
  JSON (``application/json``) or, for e-mail, the RFC 5322 message (``message/rfc822``).
  :func:`encode_raw` writes one (``streams.connectors.envelope.decode_sequenced`` reads it);
  :func:`publish_jsonl` loads a JSON Lines file into the topic in replay order (a backfill,
  or the tests' scenario).
* **Desk state in tables.** The desk's mappings (``DeskStores``, the SLA states, the assigner
  state) live in Faust tables with changelog topics. :class:`TableStore` puts the domain
  objects in front of a table: reads decode the JSON the table holds, writes are kept until
  the end of the record and then written once per key (:meth:`TableStore.flush`), so one
  input costs one changelog message per key it touched, not one per intermediate change.
  The values are JSON, never pickle: a changelog is read back into a worker and must not be
  able to run code, and the format is readable when an operator inspects it. The table holds
  them as the JSON bytes themselves (:func:`encode_value`): the desk encodes what it writes
  and decodes a key when it first reads it, so neither the store nor a standby replica, which
  applies every write of the changelog, decodes values nobody reads.
* **The desk of a partition.** :class:`PartitionDesk` is the local runner (the reference
  semantics) with its desk's state in those stores: a raw message is applied exactly as
  ``replay`` applies a record (timers due before its instant fire first), and a tick moves
  event time to the wall clock (CONTRACT §3, live mode).
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import orjson
import structlog

from processors.assignment import AssignerState
from processors.calendar import BusinessCalendar
from processors.desk import Desk, DeskStores, Ticket
from processors.identity import Profile
from processors.ids import Pseudonymizer
from processors.model import DeadLetter, Identity, Ignored, Millis, Output, RawRecord
from processors.pii import Masker
from processors.rules import Rules
from processors.sla import Cycle, SlaTerms, SlaTicket
from processors.slabook import SlaBook
from schemas.codec import CODEC, RAW_CONTACT
from streams.connectors.envelope import conversation_key
from streams.intake import IntakeError, decode_inputs
from streams.local import LocalRunner, ParseStage, wall_clock_ms
from streams.metrics import PipelineMetrics
from streams.replay_input import index_records, open_input, records_in_order
from streams.sequencer import Merge

log = structlog.get_logger("supportstream.worker")

V = TypeVar("V")

Message = tuple[str, bytes, bytes]
"""(topic, key, value) to publish."""

JSON_PAYLOAD = "application/json"
MAIL_PAYLOAD = "message/rfc822"


# --------------------------------------------------------------------------------------------
# Raw messages
# --------------------------------------------------------------------------------------------


def encode_raw(
    record: RawRecord,
    *,
    connector: str,
    received_at: Millis | None = None,
    channel_message_id: str = "",
    sequence: int | None = None,
) -> bytes:
    """One input record as a ``RawContact`` message. An e-mail's payload string travels as
    the message itself; every other payload as JSON text."""
    if record.source == "email" and isinstance(record.payload, str):
        payload, content_type = record.payload, MAIL_PAYLOAD
    else:
        payload = json.dumps(record.payload, ensure_ascii=False, separators=(",", ":"))
        content_type = JSON_PAYLOAD
    return CODEC.encode(
        RAW_CONTACT,
        {
            "at": record.at,
            "source": record.source,
            "payload": payload,
            "received_at": record.at if received_at is None else received_at,
            "connector": connector,
            "channel_message_id": channel_message_id,
            "content_type": content_type,
            "sequence": sequence,
        },
    )


@dataclass(frozen=True)
class Published:
    records: int
    dead_letters: int


def publish_jsonl(
    path: Path,
    send_raw: Callable[[bytes, bytes], None],
    send_dead_letter: Callable[[bytes, bytes], None],
    pseudo: Pseudonymizer,
    *,
    connector: str = "publish",
) -> Published:
    """Load a JSON Lines file into the raw topic in ``replay`` order (``at``, file order among
    equals), each record stamped with its place in that order (``sequence``) so the desk puts
    records of one instant back in file order whichever partitions they land on. Keys are the
    connectors' (the conversation, as far as one record tells). Lines that are not records at
    all go straight to the dead-letter topic, redacted as replay redacts them. The file is
    read as ``replay`` reads it (``streams.replay_input``: a byte-order mark skipped, lines
    split on ``\n`` only, ``-`` and FIFOs, control characters as dead letters; a missing file
    or a directory raises ``InputError``). ``send_*`` take (key, value)."""
    parser = ParseStage(pseudo)
    records = 0
    with open_input(path) as (handle, name):
        index = index_records(handle, name, parser.redact)
        for letter in index.dead_letters:
            send_dead_letter(letter.source.encode(), CODEC.encode_dead_letter(letter))
        for sequence, record in enumerate(records_in_order(handle, index, parser.redact)):
            acted = [
                item for item in parser.parse(record) if not isinstance(item, Ignored | DeadLetter)
            ]
            key = conversation_key(acted[0], pseudo) if acted else f"{record.source}:unparsed"
            send_raw(key.encode(), encode_raw(record, connector=connector, sequence=sequence))
            records += 1
    return Published(records, len(index.dead_letters))


# --------------------------------------------------------------------------------------------
# State in tables
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValueCodec(Generic[V]):
    """A domain value <-> the JSON value its table holds."""

    encode: Callable[[V], Any]
    decode: Callable[[Any], V]


def _same(value: Any) -> Any:
    return value


_TICKET_FIELDS = tuple(f.name for f in fields(Ticket))


def _encode_ticket(ticket: Ticket) -> dict[str, Any]:
    return {name: getattr(ticket, name) for name in _TICKET_FIELDS}


def _decode_ticket(value: Any) -> Ticket:
    # Tuples (the ticket's skills) come back from the table as lists.
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
    ticket = Ticket(**fields)
    # The reply tally (CONTRACT §7) comes back from JSON as lists; the desk compares tuples.
    return replace(ticket, replies=tuple((a, int(n), int(q)) for a, n, q in ticket.replies))


def _encode_profile(profile: Profile) -> dict[str, Any]:
    return {
        "customer_id": profile.customer_id,
        "tier": profile.tier,
        "status": profile.status,
        "identities": [[i.kind, i.value] for i in profile.identities],
        "mrr": profile.mrr,
    }


def _decode_profile(value: Any) -> Profile:
    return Profile(
        customer_id=value["customer_id"],
        tier=value["tier"],
        status=value["status"],
        identities=tuple(Identity(kind, text) for kind, text in value["identities"]),
        mrr=value["mrr"],
    )


def _encode_assigner(state: AssignerState) -> dict[str, Any]:
    return {"loads": dict(state.loads), "last_pick": dict(state.last_pick)}


def _decode_assigner(value: Any) -> AssignerState:
    return AssignerState(loads=dict(value["loads"]), last_pick=dict(value["last_pick"]))


def sla_codec(rules: Rules) -> ValueCodec[SlaTicket]:
    """SLA states hold their policy's terms (targets and the business calendar): the table
    keeps the policy's name, and decoding binds the terms built once from the rules."""
    calendars = {name: BusinessCalendar.from_spec(spec) for name, spec in rules.calendars.items()}
    terms = {p.name: SlaTerms.of(p, calendars[p.calendar]) for p in rules.sla_policies}

    def encode(state: SlaTicket) -> dict[str, Any]:
        return {
            "ticket_id": state.ticket_id,
            "policy": state.terms.policy,
            "status": state.status,
            "replied": state.replied,
            "next_response_count": state.next_response_count,
            "cycles": [list(cycle) for cycle in state.cycles],
        }

    def decode(value: Any) -> SlaTicket:
        return SlaTicket(
            ticket_id=value["ticket_id"],
            terms=terms[value["policy"]],
            status=value["status"],
            replied=value["replied"],
            next_response_count=value["next_response_count"],
            cycles=tuple(Cycle(*cycle) for cycle in value["cycles"]),
        )

    return ValueCodec(encode, decode)


def _encode_outbox(messages: list[Message]) -> dict[str, Any]:
    # How the release before this one stored an input's outbox (no longer written; the tests
    # build such a table with it): base64, not hex.
    return {"b64": [[topic, _b64(key), _b64(value)] for topic, key, value in messages]}


def _decode_outbox(value: Any) -> list[Message]:
    if isinstance(value, dict):
        return [(t, base64.b64decode(k), base64.b64decode(v)) for t, k, v in value["b64"]]
    # Written by an earlier release: hex pairs.
    return [(topic, bytes.fromhex(key), bytes.fromhex(data)) for topic, key, data in value]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


TICKETS: ValueCodec[Ticket] = ValueCodec(_encode_ticket, _decode_ticket)
PROFILES: ValueCodec[Profile] = ValueCodec(_encode_profile, _decode_profile)
ASSIGNER: ValueCodec[AssignerState] = ValueCodec(_encode_assigner, _decode_assigner)
TEXT: ValueCodec[str] = ValueCodec(_same, str)
NUMBER: ValueCodec[int] = ValueCodec(_same, int)
JSON: ValueCodec[Any] = ValueCodec(_same, _same)

DESK_STORES: tuple[str, ...] = (
    "tickets",
    "latest",
    "seen",
    "profiles",
    "identities",
    "message_ids",
    "customer_seq",
    "promise_history",
    "promises",
    "incidents",
    "incident_openings",
    "presence",
    "waiting",
    "held_new",
    "sla",
    "assigner",
    "progress",
    "outbox",
    "intake",
    "buffer",
)
"""The desk's stores, namespaces of one table: one per ``DeskStores`` mapping, the SLA states
(the durable due index: every pending timer is a function of a state here), the assigner state
(key ``"state"``), ``progress`` (per input stream, ``in:P`` or ``tick:P``, the next offset not
yet applied), ``outbox`` (what each input published, as an earlier release kept it: read if
such an input is redelivered, deleted ``OUTBOX_WINDOW`` inputs later, no longer written), and the
merge of the raw partitions (``streams.sequencer``): ``intake`` (per raw partition its next
offset and frontier, and which entries wait: they are read back from ``desk-input`` when the
desk is built) and ``buffer`` (where an earlier release kept the waiting entries)."""

OUTBOX_WINDOW = 50_000
"""Inputs after which an earlier release's outbox of an input is deleted (it kept them to
publish them again if they were redelivered; redelivery starts at the last committed offset,
and Faust commits every few seconds)."""


def encode_value(value: Any) -> bytes:
    """A table value as the table holds it: JSON bytes, as Faust's own JSON serializer wrote
    them before the table kept bytes (orjson, keys that are not strings written as strings),
    so a changelog written by either is read by both."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def decode_value(data: bytes) -> Any:
    """A table value (JSON bytes) as the JSON value it holds."""
    return orjson.loads(data)


SEP = "\x1f"
_UNDO = f"meta{SEP}undo"
_DONE = f"meta{SEP}done"
_DELETED = object()


class Namespace(MutableMapping[str, Any]):
    """Keys ``{name}\x1f{key}`` of the desk table, seen as a mapping of their own."""

    def __init__(self, table: MutableMapping[str, Any], name: str) -> None:
        self.table = table
        self.prefix = f"{name}{SEP}"

    def __getitem__(self, key: str) -> Any:
        return self.table[self.prefix + key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.table.get(self.prefix + key, default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (self.prefix + key) in self.table

    def __setitem__(self, key: str, value: Any) -> None:
        self.table[self.prefix + key] = value

    def __delitem__(self, key: str) -> None:
        del self.table[self.prefix + key]

    def __iter__(self) -> Iterator[str]:
        cut = len(self.prefix)
        return iter([k[cut:] for k in list(self.table.keys()) if k.startswith(self.prefix)])

    def __len__(self) -> int:
        return sum(1 for _ in self)


class TableStore(MutableMapping[str, V]):
    """A domain-typed, write-back view of one namespace of the desk table.

    Reads see this input's own writes first, then the values decoded already, then the
    table (decoded, and kept). Writes stay here until the desk commits the input
    (:meth:`PartitionDesk.commit`), which writes each changed key once: one changelog message
    per key an input touched, not one per intermediate change; :meth:`committed` then keeps
    their values. The desk is the table's only writer while it owns it, and its values are
    immutable (frozen dataclasses, or JSON it replaces rather than changes), so a value kept
    is the value the table holds; a desk built again (a rebalance, a failed delivery) starts
    with none kept. At most ``KEPT`` values are kept; beyond that they start over.

    The namespace's keys are listed from the table once, the first time the store is iterated
    (the table holds every namespace, so a listing reads all of its keys), and then kept up to
    date by :meth:`committed`: the desk iterates some stores at every agent going offline
    (its held tickets), which read the whole table each time before, a cost that grew with
    the desk's state. The listing is in the table's order, later keys after it, as a dict
    keeps them (replay's stores are dicts).
    """

    KEPT = 100_000

    def __init__(self, space: Namespace, codec: ValueCodec[V]) -> None:
        self.space = space
        self._codec = codec
        self.dirty: dict[str, Any] = {}
        self._kept: dict[str, V] = {}
        self._keys: dict[str, None] | None = None  # the namespace's keys in the table, once listed

    def __getitem__(self, key: str) -> V:
        if key in self.dirty:
            value = self.dirty[key]
            if value is _DELETED:
                raise KeyError(key)
            return cast(V, value)
        kept = self._kept.get(key, _DELETED)
        if kept is not _DELETED:
            return cast(V, kept)
        try:
            stored = self.space[key]
        except KeyError:
            raise KeyError(key) from None
        return self._keep(key, stored)

    def get(self, key: str, default: Any = None) -> Any:
        """``self[key]``, or ``default`` without raising: the desk asks for absent keys often
        (a message id not seen yet, a customer's first contact), and a missing key raised
        through every layer down to Faust's table cost more than the lookup."""
        if key in self.dirty:
            value = self.dirty[key]
            return default if value is _DELETED else value
        kept = self._kept.get(key, _DELETED)
        if kept is not _DELETED:
            return kept
        if self._keys is not None and key not in self._keys:
            return default
        stored = self.space.get(key, _DELETED)
        if stored is _DELETED:
            return default
        return self._keep(key, stored)

    def _keep(self, key: str, stored: bytes) -> V:
        decoded = self._codec.decode(decode_value(stored))
        if len(self._kept) >= self.KEPT:
            self._kept.clear()
        self._kept[key] = decoded
        return decoded

    def __contains__(self, key: object) -> bool:
        if key in self.dirty:
            return self.dirty[key] is not _DELETED
        return key in self._kept or self._in_table(key)

    def __setitem__(self, key: str, value: V) -> None:
        self.dirty[key] = value

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        if self._in_table(key):
            self.dirty[key] = _DELETED
        else:  # written and deleted within one input: the table never sees it
            del self.dirty[key]

    def __iter__(self) -> Iterator[str]:
        stored = self._stored_keys()
        for key in list(stored):
            if self.dirty.get(key) is not _DELETED:
                yield key
        for key, value in list(self.dirty.items()):
            if value is not _DELETED and key not in stored:
                yield key

    def _stored_keys(self) -> dict[str, None]:
        if self._keys is None:
            self._keys = dict.fromkeys(self.space)
        return self._keys

    def _in_table(self, key: object) -> bool:
        if self._keys is not None:
            return key in self._keys
        return key in self.space

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def changes(self) -> Iterator[tuple[str, bytes | None]]:
        """(full table key, the value as the table holds it, or None for a deletion) of every
        pending write."""
        encode = self._codec.encode
        for key, value in self.dirty.items():
            encoded = None if value is _DELETED else encode_value(encode(value))
            yield self.space.prefix + key, encoded

    def committed(self) -> None:
        """The pending writes are in the table: keep their values, start the next input's."""
        kept = self._kept
        if len(kept) + len(self.dirty) > self.KEPT:
            kept.clear()
        keys = self._keys
        for key, value in self.dirty.items():
            if value is _DELETED:
                kept.pop(key, None)
                if keys is not None:
                    keys.pop(key, None)
            else:
                kept[key] = value
                if keys is not None:
                    keys[key] = None
        self.dirty.clear()


# --------------------------------------------------------------------------------------------
# The desk of one partition
# --------------------------------------------------------------------------------------------


class PartitionDesk:
    """The desk: the one partition of ``desk-input``, its state in ``table``.

    It *is* the local runner (``streams.local.LocalRunner``) with a desk whose mappings are
    :class:`TableStore` views, fed by the merge of the raw partitions
    (``streams.sequencer.Merge``): the entries the parse stage forwarded are applied in
    ``replay``'s order, each as replay applies a record (timers due before its instant fire
    first), and a tick moves event time to the wall clock as far as the merge allows
    (CONTRACT §3, live mode). ``prepare_input`` and ``prepare_tick`` return the messages to
    publish and keep the input's table writes until :meth:`commit`, which the worker calls
    once those messages are delivered; ``apply_input`` and ``tick`` do both at once.

    **One input, all or nothing.** Under at-least-once delivery a worker can die after some
    of an input's table writes reached the changelog and others did not. Applying that input
    again on top of half of its own effects would not be what replay computes (a contact
    would, for one, find its own message id already "seen"). So every input is committed as
    a small transaction in the table's own changelog, which is one partition and therefore
    ordered: first an *undo entry* (step number and the previous value of every key the input
    changes), then the changes, then ``done = step``. A recovered table in which the undo
    entry is newer than ``done`` holds a prefix of an unfinished input: the desk restores the
    previous values before doing anything else (:meth:`_recover`), and the input, whose offset
    was never committed, is delivered again and applied once. ``progress`` (written with the
    input's changes) makes an input whose changes *are* complete a no-op when it is
    redelivered (:meth:`_prepare` skips offsets below it). The merge's partition frontiers and
    its list of waiting entries are a store of the same table, so they are part of each
    input's transaction; the waiting entries themselves are read back from ``desk-input``
    when a desk is built (:meth:`restore_range`, :meth:`restore_waiting`).
    """

    def __init__(
        self,
        rules: Rules,
        pseudo: Pseudonymizer,
        table: MutableMapping[str, Any],
        metrics: PipelineMetrics | None = None,
    ) -> None:
        self.table = table
        self._recover()
        self._outputs: list[Output] = []
        codecs: dict[str, ValueCodec[Any]] = {
            "tickets": TICKETS,
            "latest": TEXT,
            "seen": TEXT,
            "profiles": PROFILES,
            "identities": TEXT,
            "message_ids": TEXT,
            "customer_seq": NUMBER,
            "promise_history": JSON,
            "promises": NUMBER,
            "incidents": JSON,
            "incident_openings": JSON,
            "presence": TEXT,
            "waiting": NUMBER,
            "held_new": TEXT,
            "sla": sla_codec(rules),
            "assigner": ASSIGNER,
            "progress": NUMBER,
            "outbox": JSON,
            "intake": JSON,
            "buffer": JSON,
        }
        self.stores: dict[str, TableStore[Any]] = {
            name: TableStore(Namespace(table, name), codecs[name]) for name in DESK_STORES
        }
        s = self.stores
        desk_stores = DeskStores(
            tickets=s["tickets"],
            latest=s["latest"],
            seen=s["seen"],
            profiles=s["profiles"],
            identities=s["identities"],
            message_ids=s["message_ids"],
            customer_seq=s["customer_seq"],
            promise_history=s["promise_history"],
            promises=s["promises"],
            incidents=s["incidents"],
            incident_openings=s["incident_openings"],
            presence=s["presence"],
            waiting=s["waiting"],
            held_new=s["held_new"],
        )
        # The SlaBook rebuilds its timer queue from the stored states: after a restart or a
        # rebalance the due index of this partition is exactly what the changelog recovered.
        sla = SlaBook(rules, states=s["sla"])
        desk = Desk(rules, pseudo, Masker(), stores=desk_stores, sla=sla)
        # The assigner state is a plain attribute of the desk; it is restored here and saved
        # with every input that changed it (see commit).
        desk.assignments = s["assigner"].get("state", desk.assignments)
        self._assignments = desk.assignments
        # The local runner drives it (event time, timers, dead letters) with no warehouse:
        # what it emits is collected here and published (``output_messages``).
        self._runner = LocalRunner(
            rules,
            pseudo,
            None,
            on_output=self._outputs.append,
            metrics=metrics,
            logger=log,
            desk=desk,
        )
        self.merge = Merge(s["intake"], s["buffer"])

    @property
    def desk(self) -> Desk:
        return self._runner.desk

    def next_offset(self, stream: str) -> int | None:
        """The next offset of ``stream`` (``in:P``, ``tick:P``) not applied yet, or None."""
        value = self.stores["progress"].get(stream)
        return None if value is None else int(value)

    def apply_input(self, data: bytes, partition: int, offset: int) -> list[Message]:
        """:meth:`prepare_input` and :meth:`commit` at once (the caller publishes the
        messages after the input is committed: for tests and benchmarks, not a worker)."""
        messages = self.prepare_input(data, partition, offset)
        self.commit()
        return messages

    def prepare_input(self, data: bytes, partition: int, offset: int) -> list[Message]:
        """One ``desk-input`` message: its entries (or its mark) go into the merge, and every
        entry the merge lets through is applied, in order, as ``replay`` applies a record.
        Returns what it publishes; its table writes wait for :meth:`commit`, which the worker
        calls once those messages are delivered. The whole message is one transaction of
        the table (below)."""

        def apply() -> None:
            try:
                messages = decode_inputs(data)
            except IntakeError as exc:
                ref = f"desk-input/{partition}/{offset}"
                at = self._runner.now if self._runner.now is not None else wall_clock_ms()
                self._runner.dead_letter(DeadLetter(at, "", str(exc), "", ref))
                return
            for message in messages:
                for entry in self.merge.accept(message, offset):
                    record: Callable[[], str]
                    if entry.text:  # redacted only if the desk refuses an item (Entry)
                        record = functools.partial(self._runner.redact, entry.text)
                    else:
                        record = _constant(entry.record)
                    self._runner.apply_parsed(entry.at, entry.items, record)

        return self._prepare(f"in:{partition}", offset, apply)

    def restore_range(self, partition: int) -> tuple[int, int] | None:
        """The ``desk-input`` offsets [start, stop) to read back into the merge
        (:meth:`restore_waiting`) before this desk applies anything, or None. The merge keeps
        its waiting entries in memory; the table lists which they are."""
        start = self.merge.restore_from()
        stop = self.next_offset(f"in:{partition}")
        if start is None or stop is None:
            return None
        return start, stop

    def restore_waiting(self, messages: Iterable[tuple[int, bytes]]) -> list[str]:
        """Read back the waiting entries from the ``desk-input`` messages (offset, value) of
        :meth:`restore_range`. Returns the ``P:O`` slots of entries still missing after them
        (given up, so the desk goes on; the caller logs them as lost)."""
        for offset, data in messages:
            try:
                decoded = decode_inputs(data)
            except IntakeError:
                continue  # a dead letter when it was first applied; nothing waits from it
            for message in decoded:
                self.merge.restore(offset, message)
        return self.merge.abandon_restore()

    def tick(self, now: Millis, partition: int, offset: int) -> list[Message]:
        """:meth:`prepare_tick` and :meth:`commit` at once (as :meth:`apply_input`)."""
        messages = self.prepare_tick(now, partition, offset)
        self.commit()
        return messages

    def prepare_tick(self, now: Millis, partition: int, offset: int) -> list[Message]:
        """Event time moves to ``now`` (the wall clock), no further than the merge allows:
        fire every timer due by then. Idempotent: a tick repeated, or older than time
        already reached, fires nothing. Committed by :meth:`commit`."""

        def apply() -> None:
            bound = self.merge.fire_bound()
            if bound is not None:
                self._runner.advance_to(min(now, bound), inclusive=True)

        return self._prepare(f"tick:{partition}", offset, apply)

    def _prepare(self, stream: str, offset: int, apply: Callable[[], None]) -> list[Message]:
        applied = self.next_offset(stream)
        outbox = self.stores["outbox"]
        if applied is not None and offset < applied:
            # Delivered again after a crash: its effects are in the table already, and its
            # messages were delivered before it was committed. An input an earlier release
            # committed kept them in its outbox instead: publish those again.
            return [m for part in _outbox_parts(outbox, f"{stream}:{offset}") for m in part]
        apply()
        self.merge.checkpoint()
        messages = list(input_messages(self._outputs))
        self._outputs.clear()
        self.stores["progress"][stream] = offset + 1
        # Outboxes an earlier release wrote expire as they did.
        expired = f"{stream}:{offset - OUTBOX_WINDOW}"
        number = 0
        while (key := _outbox_key(expired, number)) in outbox:
            del outbox[key]
            number += 1
        return messages

    def commit(self) -> None:
        """Write the prepared input's transaction to the table. Called once its messages are
        delivered: an input the table says is applied has published everything, so a
        redelivered one publishes nothing again (no outbox to keep)."""
        if self.desk.assignments is not self._assignments:
            self._assignments = self.desk.assignments
            self.stores["assigner"]["state"] = self._assignments
        changes = [change for store in self.stores.values() for change in store.changes()]
        if changes:
            step = self._done() + 1
            # The previous values as the table holds them (JSON bytes), into the undo entry
            # as they are: neither decoded nor encoded again.
            before = {key: self.table.get(key) for key, _ in changes}
            parts = _undo_parts(before, UNDO_PART_BYTES)
            # The further parts first, the head (which names the step) last: until the head
            # is written nothing of this input is, and a recovered head finds all its parts.
            for number, part in enumerate(parts[1:], start=1):
                self.table[_undo_key(number)] = _undo_value(step, part)
            self.table[_UNDO] = _undo_value(step, parts[0], parts=len(parts))
            for key, value in changes:
                if value is None:
                    if key in self.table:
                        del self.table[key]
                else:
                    self.table[key] = value
            self.table[_DONE] = encode_value(step)
        for store in self.stores.values():
            store.committed()

    def _done(self) -> int:
        """The step of the last input committed whole (0: none yet)."""
        done = self.table.get(_DONE)
        return 0 if done is None else int(decode_value(done))

    def _recover(self) -> None:
        """Undo the prefix of an input that did not finish (see the class docstring)."""
        stored = self.table.get(_UNDO)
        if stored is None:
            return
        undo = decode_value(stored)
        if int(undo["step"]) <= self._done():
            return
        befores = [undo["before"]]
        for number in range(1, int(undo.get("parts", 1))):
            stored_part = self.table.get(_undo_key(number))
            part = None if stored_part is None else decode_value(stored_part)
            if part is None or int(part["step"]) != int(undo["step"]):
                # Cannot happen (parts are written before their head); restoring what there
                # is beats stopping the desk for good.
                log.error("desk undo entry incomplete", step=undo["step"], part=number)
                continue
            befores.append(part["before"])
        for before in befores:
            for key, value in before.items():
                if value is None:
                    if key in self.table:
                        del self.table[key]
                else:
                    self.table[key] = encode_value(value)
        self.table[_DONE] = encode_value(int(undo["step"]))


UNDO_PART_BYTES = 400_000
"""An input's undo entry is stored in parts of about this many bytes of JSON: a tick that
fires the timers of thousands of tickets, or an outbox expiring, changes keys whose previous
values add up to more than one changelog message may hold (Kafka's 1 MB)."""


def _undo_key(number: int) -> str:
    return f"{_UNDO}{SEP}{number}"


def _undo_parts(before: dict[str, bytes | None], limit: int) -> list[dict[str, bytes | None]]:
    """``before`` (table values, JSON bytes, None for an absent key) split into mappings of
    about ``limit`` bytes of JSON each (at least one)."""
    parts: list[dict[str, bytes | None]] = [{}]
    size = 0
    for key, value in before.items():
        weight = len(key) + 8 + (4 if value is None else len(value))
        if parts[-1] and size + weight > limit:
            parts.append({})
            size = 0
        parts[-1][key] = value
        size += weight
    return parts


def _undo_value(step: int, before: dict[str, bytes | None], parts: int | None = None) -> bytes:
    """One part of an undo entry as the table holds it: ``{"step", "before"}`` (the head also
    ``"parts"``), each previous value embedded as the JSON it is stored as."""
    value: dict[str, Any] = {
        "step": step,
        "before": {k: None if v is None else orjson.Fragment(v) for k, v in before.items()},
    }
    if parts is not None:
        value["parts"] = parts
    return encode_value(value)


def _outbox_key(name: str, number: int) -> str:
    # The first part keeps the old key, so outboxes written before parts existed still read.
    return name if number == 0 else f"{name}:{number}"


def _outbox_parts(outbox: MutableMapping[str, Any], name: str) -> Iterator[list[Message]]:
    number = 0
    while (key := _outbox_key(name, number)) in outbox:
        yield _decode_outbox(outbox[key])
        number += 1


def _constant(text: str) -> Callable[[], str]:
    return lambda: text


def input_messages(outputs: Iterable[Output]) -> Iterator[Message]:
    """What one input publishes: every domain event and dead letter, in order, and of the
    ticket and cycle snapshots only the latest of each ticket and cycle. ``ticket-state`` and
    ``sla-state`` are compacted snapshot topics and the warehouse keeps the highest version
    (``FINAL``), so an intermediate state of the same input (a contact, then the ticket it
    opened, then its assignment) would be encoded, sent, stored and thrown away."""
    tickets: dict[str, Any] = {}
    cycles: dict[tuple[str, str, int], Any] = {}
    for output in outputs:
        yield from output_messages(Output(events=output.events, dead_letters=output.dead_letters))
        for ticket in output.tickets:
            tickets[ticket.ticket_id] = ticket
        for cycle in output.cycles:
            cycles[(cycle.ticket_id, cycle.metric, cycle.cycle)] = cycle
    snapshots = Output(tickets=tuple(tickets.values()), cycles=tuple(cycles.values()))
    yield from output_messages(snapshots)


def output_messages(output: Output) -> Iterable[tuple[str, bytes, bytes]]:
    """(topic, key, value) of everything one output publishes, keyed as the topology says:
    events and ticket states by ticket (customer events by customer), cycle states by
    ticket/metric/cycle, dead letters by source."""
    for event in output.events:
        key = event.ticket_id or f"customer:{event.customer_id}"
        if event.event_type.startswith("incident."):
            key = event.ticket_id or f"incident:{event.data['incident_id']}"
        yield "domain-events", key.encode(), CODEC.encode_event(event)
        if event.event_type == "ticket.acknowledged":
            # For the gateway that sends the auto-reply (CONTRACT §7, docs/PROMISES.md).
            yield "acknowledgements", event.conversation_id.encode(), CODEC.encode_event(event)
    for ticket in output.tickets:
        yield "ticket-state", ticket.ticket_id.encode(), CODEC.encode_ticket(ticket)
    for cycle in output.cycles:
        cycle_key = f"{cycle.ticket_id}/{cycle.metric}/{cycle.cycle}"
        yield "sla-state", cycle_key.encode(), CODEC.encode_cycle(cycle)
    for letter in output.dead_letters:
        yield "dead-letters", letter.source.encode(), CODEC.encode_dead_letter(letter)
