"""Deterministic, realistic multi-channel support traffic in the input format of CONTRACT §1.

``generate_week`` builds a week (or any number of days) of traffic for a made-up shop: customers
write through Telegram, WhatsApp, e-mail, the web chat, the feedback form and VK (direct messages
and wall comments), and call the call centre; agents assign, answer, ask and solve; customers
answer surveys; the CRM syncs profiles (and changes some mid-week). Conversations are multi-message
stories: pending questions answered hours later, e-mail threads where the customer answers the
agent's reply, tickets reopened within the window and follow-ups after it, missed calls called back,
slow first responses that breach an SLA, tickets that span nights and weekends. Personal data is
planted in texts and identities and listed in ``planted_pii`` so tests can prove none of it reaches
the warehouse. A chosen number of records is malformed on purpose (dead letters).

``generate_stream`` produces an endless stream of the same kind of records at a given rate for the
live demo.

Everything is drawn from one ``random.Random(seed)``: the same arguments give the same output,
byte for byte; the wall clock is never read. The texts live in ``loadtest.corpus``.

CLI::

    python -m loadtest.generator --start 2026-03-02T00:00:00+03:00 --days 7 --tickets 400 \
        --seed 1 --out week.jsonl
"""

from __future__ import annotations

import argparse
import base64
import heapq
import html
import json
import os
import quopri
import random
import string
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.header import Header
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any, TypeVar

from loadtest import corpus as C
from processors.ids import DEV_PII_KEY, Pseudonymizer, normalize_message_id

Record = dict[str, Any]
T = TypeVar("T")

MSK = timezone(timedelta(hours=3), "MSK")
"""The shop's office time zone (Moscow has no DST)."""

CHANNEL_WEIGHTS: dict[str, int] = {
    "email": 24,
    "telegram": 16,
    "chat": 14,
    "phone": 14,
    "whatsapp": 12,
    "form": 7,
    "vk_dm": 6,
    "vk_wall": 3,
}
"""How contacts spread over channels (``vk_dm``/``vk_wall`` are both the ``vk`` source)."""

MESSENGERS = frozenset({"telegram", "whatsapp", "chat", "vk_dm"})
SHIFT_FREE = frozenset({"a.ivanova"})
"""Agents without presence records: the VIP line, online round the clock."""
WEEKEND_DUTY = ("e.kuznetsova", "i.popov")
"""Who is on weekend duty (Saturday, Sunday), serving the general queue."""
HOUR_WEIGHTS = (
    1.0, 0.6, 0.4, 0.3, 0.3, 0.4, 0.8, 1.6, 3.0, 5.0, 6.0, 6.0,
    5.5, 5.0, 5.5, 5.0, 4.5, 4.0, 3.5, 3.0, 3.0, 2.5, 2.0, 1.5,
)  # fmt: skip
"""Contacts per local (Moscow) hour of the day: busy late mornings, quiet nights."""
DAY_WEIGHTS = (1.0, 1.0, 1.0, 0.95, 0.9, 0.45, 0.4)
"""Contacts per weekday, Monday first: weekends are quieter, never silent."""

MALFORMED_KINDS = (
    "bad_json",
    "unknown_source",
    "missing_fields",
    "score_out_of_range",
    "broken_mime",
    "whatsapp_wrong_object",
    "unknown_conversation",
    "unknown_agent_type",
    "unknown_crm_tier",
    "survey_unknown_conversation",
)
"""Every way a generated record is broken on purpose; each goes to the dead-letter stream."""

QA_REVIEW_SHARE = 0.3
"""The share of solved tickets a team lead reviews (the demo rules' ``qa`` scorecard)."""
QA_REVIEWERS = ("lead.orlova", "lead.kim")
QA_COMMENTS = (
    "Решение верное, но без извинений за задержку",
    "Хорошо: проверил заказ до ответа",
    "Не уточнил номер заказа, клиенту пришлось писать ещё раз",
    "Good tone, solution incomplete",
)

WABA_ID = "104582337915601"
WA_PHONE_NUMBER_ID = "109876543210987"
VK_SECRET = "sovushka-callback"
VK_API_VERSION = "5.199"
_ALNUM = string.ascii_letters + string.digits
_IPS = ("192.0.2.", "198.51.100.", "203.0.113.")  # documentation ranges (RFC 5737)
_RU_WEEKDAYS = ("пн", "вт", "ср", "чт", "пт", "сб", "вс")
_RU_MONTHS = ("янв.", "февр.", "мар.", "апр.", "мая", "июн.", "июл.", "авг.", "сент.", "окт.",
              "нояб.", "дек.")  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Public result
# ---------------------------------------------------------------------------------------------


def dump_record(record: Record) -> str:
    """One JSON Lines line: UTF-8 text kept readable (``ensure_ascii=False``)."""
    return json.dumps(record, ensure_ascii=False)


@dataclass(frozen=True)
class Malformed:
    """A line that is broken on purpose: ``kind`` is one of ``MALFORMED_KINDS``, ``line`` the exact
    text ``GeneratedTraffic.lines()`` yields for it."""

    kind: str
    line: str


DEMO_CATEGORIES = ("billing", "access", "outage", "delivery", "account", "bug", "feature_request")
"""The contact reasons in the order the demo rules try them (the first that matches wins)."""
OUTAGE_CHANNELS = frozenset({"chat", "telegram", "email", "whatsapp", "vk"})
"""The channels on which the demo rules file ``outage`` (its ``channels:``)."""

REOPEN_WITHIN = timedelta(hours=72)
"""The reopen window the ledger assumes (``reopen_within`` of the demo rules, the contract's
default): a contact on a solved ticket within it reopens the ticket, later it opens the next."""


@dataclass(frozen=True)
class PlannedTicket:
    """A ticket the generated traffic opens, as the generator decided it (its ground truth).

    ``channel`` is the record's ``source``; ``category`` and ``kind`` are the contact reason and
    kind the generator wrote the opening text for, as the demo rules name them (``other`` and
    ``question`` for a text that says nothing: a Telegram ``/start``, a call without
    transcript); ``tier_at_opening`` is what the CRM records emitted before the opening record
    (in file order) say about the first of the contact's identities a profile names, in the
    contract's order, ``prospect`` when none does; ``opened_at`` is the opening record's ``at``.
    A conversation's tickets are numbered in time order: a contact opens the next one when the
    conversation has none, or when its latest was solved more than ``REOPEN_WITHIN`` before.
    """

    conversation_id: str
    number: int
    channel: str
    category: str
    kind: str
    tier_at_opening: str
    opened_at: datetime
    customer_key: int

    @property
    def ticket_id(self) -> str:
        return f"{self.conversation_id}#{self.number}"


@dataclass
class GeneratedTraffic:
    """A generated stretch of traffic.

    ``records`` holds every line that is a JSON object (what a reader sees), malformed ones
    included, in file order: sorted by ``at``, stable. ``lines()`` also yields the lines that are
    not even JSON. ``planted_pii`` lists every phone number, e-mail address, card number and
    messenger handle or profile link written into a text or an identity, exactly as written;
    ``planted_ids`` the messenger user ids and customers' e-mail Message-IDs, which must be stored
    only as keyed hashes. ``stories`` is the number of stories started; ``tickets`` the ledger of
    the tickets the traffic opens, in file order of their opening records (a story whose first
    contact lands on a conversation's ticket that is still open, or solved within the reopen
    window, opens none; a follow-up after the window opens one).
    """

    records: list[Record]
    planted_pii: list[str]
    planted_ids: list[str]
    malformed: list[Malformed]
    stories: int = 0
    tickets: list[PlannedTicket] = field(default_factory=list)
    _entries: list[tuple[Record | None, str | None]] = field(default_factory=list, repr=False)

    def lines(self) -> Iterator[str]:
        """The JSON Lines text, one line per record, without line terminators."""
        for record, raw in self._entries:
            yield raw if raw is not None else dump_record(record or {})

    def write_jsonl(self, path: str | Path) -> int:
        """Writes ``lines()`` to ``path`` (UTF-8, ``\\n`` after each line); returns the count."""
        count = 0
        with Path(path).open("w", encoding="utf-8", newline="\n") as out:
            for line in self.lines():
                out.write(line)
                out.write("\n")
                count += 1
        return count

    def counts(self) -> dict[str, int]:
        """Records per ``source`` (malformed ones included; bad JSON counted as ``"?"``)."""
        result: Counter[str] = Counter()
        for record, _raw in self._entries:
            result[str(record.get("source")) if record is not None else "?"] += 1
        return dict(sorted(result.items()))


# ---------------------------------------------------------------------------------------------
# Internal model
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Opening:
    """What the ledger needs of a contact that opens a ticket; the tier is settled once all
    records (CRM changes included) are in file order."""

    conversation_id: str
    number: int
    channel: str
    category: str
    kind: str
    customer_key: int
    identities: tuple[str, ...]  # "kind:value" in the order the contract tries them


@dataclass(slots=True)
class _Conversation:
    """The ledger's view of a conversation's latest ticket: only what decides the next one."""

    tickets: int = 0
    solved_at: datetime | None = None  # None while the latest ticket is not solved


@dataclass(slots=True)
class _Entry:
    at: datetime
    seq: int
    record: Record | None
    raw: str | None = None
    malformed: str | None = None
    opening: _Opening | None = None


@dataclass(eq=False)
class _Customer:
    key: int
    customer_id: str
    lang: str
    first: str
    last: str
    slug: str
    email: str  # as the customer types it in From (may have capitals)
    alt_email: str | None
    phone: str | None  # E.164
    telegram_id: int | None
    telegram_username: str | None
    wa_id: str | None
    vk_id: int | None
    tier: str  # in the initial CRM snapshot; "prospect" also for customers the CRM does not know
    in_crm: bool
    crm_lists_messengers: bool
    preferred: str
    telegram_user: Record = field(default_factory=dict)
    vip_from: datetime | None = None
    contacts: list[datetime] = field(default_factory=list)

    def is_vip(self, at: datetime) -> bool:
        return self.tier == "vip" or (self.vip_from is not None and at >= self.vip_from)

    @property
    def full_name(self) -> str:
        return f"{self.first} {self.last}"


@dataclass(eq=False)
class _Thread:
    channel: str  # a key of CHANNEL_WEIGHTS
    conv: str
    cust: _Customer
    lang: str
    reason: str = "other"
    subject: str = ""
    from_addr: str = ""
    root_mid: str = ""  # the first e-mail's own Message-ID, or the unknown id it answers
    refs: list[str] = field(default_factory=list)  # ids of the e-mail thread, oldest first
    last_agent_mid: str | None = None
    last_agent_text: str = ""
    session_id: str = ""
    visitor: Record = field(default_factory=dict)
    submission_id: str = ""
    post_id: int = 0
    last_at: datetime | None = None
    opened_at: datetime | None = None
    agent: str = ""
    meant: tuple[str, str] | None = None  # (reason, kind) the story's opening text is written for
    subject_meant: tuple[str, str] | None = None  # the same for the e-mail thread's subject


def _filed_as(meant: Sequence[tuple[str, str]], source: str, text: str) -> tuple[str, str]:
    """(category, kind) the demo rules give an opening contact on ``source`` whose ``text``
    (subject, newline, body) carries corpus texts written for the (reason, kind) pairs ``meant``:
    the opener, and for an e-mail the subject of the thread it answers. Besides its reason, what
    the generator knows its texts say to those rules: an outage text that mentions an error
    ("ошибка 500") is also a ``bug`` (for calls and the web form, where ``outage`` is not filed);
    a number filled in (an order, a track, a phone, a card) that happens to contain ``502`` is an
    ``outage`` keyword. The earliest reason in ``DEMO_CATEGORIES`` wins; complaint beats thanks."""
    found = {reason for reason, _ in meant}
    if "outage" in found and "ошибк" in text.lower():
        found.add("bug")
    if "502" in text:
        found.add("outage")
    if source not in OUTAGE_CHANNELS:
        found.discard("outage")
    kinds = {kind for _, kind in meant}
    kind = "complaint" if "complaint" in kinds else "thanks" if "thanks" in kinds else "question"
    return next((c for c in DEMO_CATEGORIES if c in found), "other"), kind


def _typed_e164(typed: str | None) -> str | None:
    """The identity a phone typed into a form gives: only an international form (``+7 (916)
    ...``, ``+44 7700 ...``) is E.164; a national one (``8 (916) ...``, ``07700 ...``) names no
    country, and nothing guesses one (docs of ``processors.ids.normalize_phone``)."""
    if typed is None or not typed.startswith("+"):
        return None
    return "+" + "".join(ch for ch in typed if ch.isdigit())


def _in_office(at: datetime) -> bool:
    local = at.astimezone(MSK)
    return local.weekday() < 5 and 9 <= local.hour < 18


def _next_office(at: datetime) -> datetime:
    """``at`` if the office is open then, else the next opening (Mon–Fri 09:00 Moscow)."""
    if _in_office(at):
        return at
    local = at.astimezone(MSK)
    opening = local.replace(hour=9, minute=0, second=0, microsecond=0)
    if local.weekday() < 5 and local.hour < 9:
        return opening
    opening += timedelta(days=1)
    while opening.weekday() >= 5:
        opening += timedelta(days=1)
    return opening


def _next_duty(at: datetime) -> datetime:
    """The start of the weekend duty shift (Sat/Sun 10:00–16:00 Moscow) that is running at
    ``at`` or comes next: ``at`` itself inside a shift."""
    local = at.astimezone(MSK)
    for days in range(8):
        day = (local + timedelta(days=days)).replace(hour=10, minute=0, second=0, microsecond=0)
        if day.weekday() >= 5 and local < day + timedelta(hours=6):
            return max(day, local)
    raise AssertionError("a weekend comes within a week")


def _s(seconds: float) -> timedelta:
    return timedelta(seconds=int(seconds))


def _luhn_check_digit(partial: str) -> str:
    total = 0
    for index, char in enumerate(reversed(partial)):
        digit = int(char)
        if index % 2 == 0:  # the digit next to the check digit is doubled
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    """True when the digits of ``number`` (separators ignored) pass the Luhn check."""
    digits = "".join(ch for ch in number if ch.isdigit())
    return len(digits) > 1 and _luhn_check_digit(digits[:-1]) == digits[-1]


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


# ---------------------------------------------------------------------------------------------
# The engine: customers, conversations, records
# ---------------------------------------------------------------------------------------------


class _Sequencer:
    """Numbers what the channels number in arrival order (Telegram ``update_id``, VK message and
    comment ids, web-chat message ids). Stories are generated one after another, not in time
    order, so records get placeholders and are numbered here once sorted."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def take(self, name: str, first: int) -> int:
        self.counts[name] += 1
        return first + self.counts[name] - 1

    def __call__(self, record: Record) -> None:
        source, payload = record["source"], record["payload"]
        if source == "telegram":
            payload["update_id"] = self.take("telegram", 804_311_000)
        elif source == "chat":
            payload["message_id"] = f"cm_{self.take('chat', 500_000)}"
        elif source == "vk":
            obj = payload["object"]
            if payload["type"] == "message_new":
                obj["message"]["id"] = self.take("vk_message", 91_200)
                obj["message"]["version"] = self.take("vk_version", 10_400_000)
            elif payload["type"] == "message_reply":
                obj["id"] = self.take("vk_message", 91_200)
            elif payload["type"] == "wall_reply_new":
                obj["id"] = self.take("vk_comment", 7_300)


class _Engine:
    """Builds records into ``entries``; ``end`` (exclusive) cuts stories off at the window's end."""

    def __init__(
        self, rng: random.Random, pii_key: str, start: datetime, end: datetime | None
    ) -> None:
        self.rng = rng
        self.h = Pseudonymizer.from_text(pii_key).h
        self.start = start
        self.end = end
        self.entries: list[_Entry] = []
        self.seq = 0
        self.track = True
        self.pii: dict[str, None] = {}
        self.ids: dict[str, None] = {}
        self._pending: list[tuple[dict[str, None], str]] = []
        self.customers: list[_Customer] = []
        self._cum_weights: list[float] = []
        self._channels = tuple(CHANNEL_WEIGHTS)
        self._channel_weights = tuple(CHANNEL_WEIGHTS.values())
        self.busy: dict[str, datetime] = {}
        self.opened: list[tuple[datetime, str]] = []
        self.counter: Counter[str] = Counter()
        self.tg_message_ids: Counter[int] = Counter()
        self.vk_conv_message_ids: Counter[int] = Counter()
        self.conversations: dict[str, _Conversation] = {}
        # QA reviews draw from their own generator, seeded from this one's state without
        # advancing it: the rest of the traffic stays what it was before reviews existed.
        self.qa_rng = random.Random(repr(rng.getstate()[1][:8]))

    # -- primitives ---------------------------------------------------------------------------

    def plant(self, value: str) -> str:
        """Notes personal data about to be written; it counts once its record is emitted."""
        if self.track:
            self._pending.append((self.pii, value))
        return value

    def plant_id(self, value: str) -> str:
        if self.track:
            self._pending.append((self.ids, value))
        return value

    def next(self, name: str, first: int = 1) -> int:
        self.counter[name] += 1
        return first + self.counter[name] - 1

    def hex(self, digits: int) -> str:
        return f"{self.rng.getrandbits(digits * 4):0{digits}x}"

    def pick(self, options: Sequence[T]) -> T:
        return options[self.rng.randrange(len(options))]

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def stamp(self, at: datetime, source: str) -> str:
        """RFC 3339: Moscow offset mostly; some systems (telephony, CRM) send UTC with ``Z``."""
        z_share = {"phone": 0.5, "crm": 0.3}.get(source, 0.05)
        spec = "milliseconds" if at.microsecond else "seconds"
        if self.chance(z_share):
            return at.astimezone(UTC).isoformat(timespec=spec).replace("+00:00", "Z")
        return at.astimezone(MSK).isoformat(timespec=spec)

    def emit(
        self,
        at: datetime,
        source: str,
        payload: Any,
        *,
        thread: _Thread | None = None,
        malformed: str | None = None,
    ) -> bool:
        """Adds a record; returns False (and adds nothing) when ``at`` is past the window."""
        pending, self._pending = self._pending, []
        if self.end is not None and at >= self.end:
            return False
        for registry, value in pending:
            registry[value] = None
        record = {"at": self.stamp(at, source), "source": source, "payload": payload}
        self.seq += 1
        self.entries.append(_Entry(at, self.seq, record, malformed=malformed))
        if thread is not None:
            thread.last_at = at if thread.last_at is None else max(thread.last_at, at)
        return True

    # -- the ledger ---------------------------------------------------------------------------

    def contact(
        self,
        th: _Thread,
        at: datetime,
        identities: Sequence[tuple[str, str | None]],
        text: str,
        meant: tuple[str, str] | None = None,
    ) -> None:
        """Notes that the record just emitted is an inbound contact in ``th`` saying ``text``
        (subject, newline, body); if it opens a ticket, the entry carries the opening. ``meant``
        is the (reason, kind) its text is written for (None: the story's opener, ``th.meant``;
        only a story's first contact can open a ticket). Within a conversation the
        generator emits contacts and status changes in time order (a conversation's next story
        starts after its previous one has ended), so this state is the one the desk sees."""
        conv = self.conversations.setdefault(th.conv, _Conversation())
        if conv.tickets and (conv.solved_at is None or at - conv.solved_at <= REOPEN_WITHIN):
            conv.solved_at = None  # goes on, or reopens
            return
        conv.tickets += 1
        conv.solved_at = None
        source = "vk" if th.channel.startswith("vk_") else th.channel
        said = [meant or th.meant or ("other", "question")]
        if source == "email" and th.subject_meant is not None:
            said.append(th.subject_meant)
        category, kind = _filed_as(said, source, text)
        self.entries[-1].opening = _Opening(
            conversation_id=th.conv,
            number=conv.tickets,
            channel=source,
            category=category,
            kind=kind,
            customer_key=th.cust.key,
            identities=tuple(f"{k}:{v}" for k, v in identities if v),
        )

    def status(self, th: _Thread, at: datetime, status: str) -> None:
        """An agent ``status`` record just emitted in ``th``."""
        conv = self.conversations.get(th.conv)
        if conv is None or not conv.tickets:
            return
        if status == "solved":
            if conv.solved_at is None:  # setting the status a ticket already has changes nothing
                conv.solved_at = at
        else:
            conv.solved_at = None  # open or pending reopens a solved ticket

    def emit_raw(self, at: datetime, raw: str, kind: str) -> None:
        self.seq += 1
        self.entries.append(_Entry(at, self.seq, None, raw=raw, malformed=kind))

    # -- people -------------------------------------------------------------------------------

    def populate(self, count: int) -> None:
        rng = self.rng
        for key in range(count):
            lang = "ru" if rng.random() < 0.78 else "en"
            first, last, slug = self.pick(C.NAMES_RU if lang == "ru" else C.NAMES_EN)
            domains = C.MAIL_DOMAINS_RU if lang == "ru" else C.MAIL_DOMAINS_EN
            domain = rng.choices([d for d, _ in domains], [w for _, w in domains])[0]
            local = self.pick((slug, slug.replace(".", "_"), slug.split(".")[0] + slug[-3:]))
            local += str(rng.randrange(10, 99)) if rng.random() < 0.7 else ""
            email = f"{local}@{domain}"
            if rng.random() < 0.08:  # typed with capitals; identities compare lower-cased
                email = ".".join(p.capitalize() for p in local.split(".")) + "@" + domain
            phone = self._new_phone(lang) if rng.random() < 0.9 else None
            telegram_id = rng.randrange(120_000_000, 7_900_000_000) if rng.random() < 0.5 else None
            username = None
            if telegram_id is not None and rng.random() < 0.75:
                username = slug.replace(".", "_") + str(rng.randrange(10, 999))
            wa_id = phone[1:] if phone and rng.random() < 0.4 else None
            vk_id = (
                rng.randrange(1_000_000, 890_000_000)
                if lang == "ru" and rng.random() < 0.4
                else None
            )
            roll = rng.random()
            tier, in_crm = (
                ("vip", True) if roll < 0.08 else
                ("active", True) if roll < 0.66 else
                ("prospect", True) if roll < 0.76 else
                ("prospect", False)
            )  # fmt: skip
            cust = _Customer(
                key=key,
                customer_id=f"crm-{100_000 + key * 7 + rng.randrange(7)}",
                lang=lang,
                first=first,
                last=last,
                slug=slug,
                email=email,
                alt_email=self.work_email(slug) if rng.random() < 0.15 else None,
                phone=phone,
                telegram_id=telegram_id,
                telegram_username=username,
                wa_id=wa_id,
                vk_id=vk_id,
                tier=tier,
                in_crm=in_crm,
                crm_lists_messengers=rng.random() < 0.85,
                preferred="email",
            )
            available = [ch for ch in CHANNEL_WEIGHTS if self.reachable(cust, ch)]
            cust.preferred = rng.choices(available, [CHANNEL_WEIGHTS[c] for c in available])[0]
            if telegram_id is not None:
                user: Record = {"id": telegram_id, "is_bot": False, "first_name": first}
                if rng.random() < 0.7:
                    user["last_name"] = last
                if username:
                    user["username"] = username
                user["language_code"] = lang
                cust.telegram_user = user
            self.customers.append(cust)
        # A few customers write far more often than the rest.
        weights = [1.0 / (1 + (i % 53) * 0.15) for i in range(count)]
        rng.shuffle(weights)
        total = 0.0
        self._cum_weights = []
        for w in weights:
            total += w
            self._cum_weights.append(total)

    def work_email(self, slug: str) -> str:
        """A second address the customer sometimes writes from (the CRM does not know it)."""
        first, last = slug.split(".")
        return f"{first}.{last[0]}@{self.pick(('work.example', 'corp-mail.example'))}"

    def _new_phone(self, lang: str) -> str:
        rng = self.rng
        if lang == "en" or rng.random() < 0.03:
            weights = [w for _, _, w in C.FOREIGN_PHONES]
            prefix, count, _ = rng.choices(C.FOREIGN_PHONES, weights)[0]
            return prefix + "".join(rng.choice(string.digits) for _ in range(count))
        return "+7" + self.pick(C.RU_MOBILE_CODES) + f"{rng.randrange(10_000_000):07d}"

    def plant_telegram(self, cust: _Customer) -> None:
        """Registers what a Telegram ``User`` object shows of the customer."""
        if cust.telegram_username:
            self.plant(cust.telegram_username)
        self.plant_id(str(cust.telegram_id))

    @staticmethod
    def reachable(cust: _Customer, channel: str) -> bool:
        """Whether the customer has what ``channel`` needs (an account, a phone)."""
        if channel == "telegram":
            return cust.telegram_id is not None
        if channel == "whatsapp":
            return cust.wa_id is not None
        if channel in ("vk_dm", "vk_wall"):
            return cust.vk_id is not None
        if channel == "phone":
            return cust.phone is not None
        return True

    def customer(self) -> _Customer:
        return self.rng.choices(self.customers, cum_weights=self._cum_weights)[0]

    def crm_payload(self, cust: _Customer, tier: str, *, status: str = "active") -> Record:
        messengers = cust.crm_lists_messengers
        identities = {
            "email": [cust.email.lower()],
            "phone": [cust.phone] if cust.phone else [],
            "telegram": [str(cust.telegram_id)] if cust.telegram_id and messengers else [],
            # some profiles know the phone only: a WhatsApp sender is then found as "+{wa_id}"
            "whatsapp": [cust.wa_id] if cust.wa_id and messengers and cust.key % 3 else [],
            "vk": [str(cust.vk_id)] if cust.vk_id and messengers else [],
        }
        payload: Record = {"customer_id": cust.customer_id, "tier": tier, "identities": identities}
        if tier != "prospect":
            payload["mrr"] = (
                0.0 if status == "churned" else float(self.pick((990, 2490, 4900, 14900)))
            )
        payload["status"] = status
        for kind, values in identities.items():
            for value in values:
                (self.plant_id if kind in ("telegram", "vk") else self.plant)(value)
        return payload

    # -- texts --------------------------------------------------------------------------------

    def fill(self, template: str, cust: _Customer, at: datetime) -> str:
        rng = self.rng
        track = (
            f"RA{rng.randrange(10**9):09d}RU"
            if rng.random() < 0.5
            else f"{rng.randrange(10**13, 10**14 - 1)}"
        )
        past = (at - timedelta(days=rng.randrange(1, 20))).astimezone(MSK)
        values = {
            "order": f"{rng.randrange(1_000_000, 9_999_999)}",
            "amount": f"{rng.choice((490, 1290, 2990, 4590, 7990, 12490, 35900))}",
            "track": track,
            "date": past.strftime("%d.%m.%Y"),
            "name": cust.first,
        }
        return template.format(**values)

    def phone_text(self, e164: str) -> str:
        """A phone as a person would type it: several national and international formats."""
        if e164.startswith("+7"):
            d = e164[2:]
            code, a, b, c = d[:3], d[3:6], d[6:8], d[8:]
            return self.pick(
                (
                    f"+7 ({code}) {a}-{b}-{c}",
                    f"8 ({code}) {a}-{b}-{c}",
                    f"+7{d}",
                    f"8{d}",
                    f"+7 {code} {a} {b} {c}",
                    f"+7-{code}-{a}-{b}-{c}",
                    f"8-{code}-{a}-{b}{c}",
                )
            )
        if e164.startswith("+44"):
            d = e164[3:]
            return self.pick((f"+44 {d[:4]} {d[4:]}", f"0{d[:4]} {d[4:]}", e164))
        d = e164[2:]
        return self.pick((f"+1 ({d[:3]}) {d[3:6]}-{d[6:]}", f"+1 {d[:3]} {d[3:6]} {d[6:]}", e164))

    def card_text(self) -> str:
        rng = self.rng
        prefix = self.pick(("4276", "5469", "2202", "4000", "5536", "4279"))
        partial = prefix + "".join(rng.choice(string.digits) for _ in range(11))
        number = partial + _luhn_check_digit(partial)
        groups = [number[i : i + 4] for i in range(0, 16, 4)]
        roll = rng.random()
        return " ".join(groups) if roll < 0.6 else "-".join(groups) if roll < 0.9 else number

    def pii_snippet(self, cust: _Customer, lang: str, reason: str) -> tuple[str, str, str]:
        """(sentence, entity type for Telegram, value) with one planted personal value; card
        numbers only where money is the subject."""
        rng = self.rng
        kinds = C.PII_KIND_WEIGHTS
        kind = rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0]
        if kind == "card" and reason != "billing" and rng.random() < 0.85:
            kind = "phone"
        if kind == "phone":
            e164 = cust.phone if cust.phone and rng.random() < 0.7 else self._new_phone(lang)
            value, entity = self.phone_text(e164), "phone_number"
        elif kind == "email":
            value = (cust.alt_email or cust.email) if rng.random() < 0.5 else cust.email
            if rng.random() < 0.3:  # an address the profile does not know
                box = self.pick(("mail.ru", "gmail.com", "yandex.ru"))
                value = f"{cust.slug.split('.')[0]}{rng.randrange(1970, 2005)}@{box}"
            entity = "email"
        elif kind == "card":
            value, entity = self.card_text(), ""
        elif kind == "handle":
            name = cust.telegram_username or f"{cust.slug.replace('.', '_')}{rng.randrange(10, 99)}"
            value, entity = "@" + name, "mention"
        elif kind == "vk":
            value, entity = f"vk.com/id{cust.vk_id or rng.randrange(1_000_000, 890_000_000)}", "url"
        else:
            digits = (cust.wa_id or (cust.phone or self._new_phone(lang))[1:]).lstrip("+")
            value, entity = f"wa.me/{digits}", "url"
        template = self.pick(C.PII_SNIPPETS[kind][lang])
        self.plant(value)
        return template.replace("{" + kind + "}", value), entity, value

    def compose(
        self, th: _Thread, body: str, at: datetime, pii: float
    ) -> tuple[str, list[tuple[str, str]]]:
        """Fills placeholders and maybe appends a sentence with personal data. Returns the text
        and the (entity type, value) pairs a Telegram client would mark up."""
        text = self.fill(body, th.cust, at)
        entities: list[tuple[str, str]] = []
        if self.chance(pii):
            sentence, entity, value = self.pii_snippet(th.cust, th.lang, th.reason)
            text = f"{text} {sentence}" if self.chance(0.7) else f"{text}\n{sentence}"
            if entity:
                entities.append((entity, value))
        return text, entities

    def opener(self, reason: str, kind: str, lang: str) -> tuple[str, str]:
        if kind == "thanks":
            return self.pick(C.THANKS_OPENERS[lang])
        subject, body = self.pick(C.OPENERS[reason][lang])
        if kind == "complaint":
            body = f"{self.pick(C.COMPLAINT_LEADS[lang])} {body}"
            if self.chance(0.5):
                body = f"{body} {self.pick(C.COMPLAINT_TAILS[lang])}"
        return subject, body

    # -- conversations ------------------------------------------------------------------------

    def thread(self, channel: str, cust: _Customer, at: datetime, reason: str) -> _Thread | None:
        """A conversation for a new story, or None if that conversation is still busy with one."""
        h = self.h
        th = _Thread(channel=channel, conv="", cust=cust, lang=cust.lang, reason=reason)
        if channel == "telegram":
            th.conv = f"telegram:{h(str(cust.telegram_id))}"
        elif channel == "whatsapp":
            th.conv = f"whatsapp:{h(str(cust.wa_id))}"
        elif channel == "vk_dm":
            th.conv = f"vk:dm:{h(str(cust.vk_id))}"
        elif channel == "vk_wall":
            th.post_id = self.pick(C.VK_POSTS)
            th.conv = f"vk:wall:{-C.VK_GROUP_ID}_{th.post_id}:{h(str(cust.vk_id))}"
        elif channel == "phone":
            th.conv = f"phone:{h(str(cust.phone))}"
        elif channel == "chat":
            th.session_id = f"cs_{self.hex(16)}"
            th.conv = f"chat:{th.session_id}"
            visitor: Record = {"id": f"v_{cust.key:05d}{self.hex(6)}"}
            if self.chance(0.5):
                visitor["name"] = cust.first
            if self.chance(0.45):
                visitor["email"] = self.plant(cust.email.lower())
            if cust.phone and self.chance(0.2):
                visitor["phone"] = self.plant(cust.phone)
            th.visitor = visitor
        elif channel == "form":
            th.submission_id = f"sub_{self.next('form', 40_000)}_{self.hex(4)}"
            th.conv = f"form:{th.submission_id}"
        else:  # email: the root is the first message's own id, or the unknown id it answers
            th.from_addr = cust.alt_email if cust.alt_email and self.chance(0.3) else cust.email
            if self.chance(0.06):
                th.root_mid = f"<order-{self.rng.randrange(10**7)}.{self.hex(8)}@{C.NOTIFY_DOMAIN}>"
                th.refs.append(th.root_mid)
            else:
                th.root_mid = self.customer_mid(th.from_addr, at)
            th.conv = f"email:{h(normalize_message_id(th.root_mid))}"
        if self.busy.get(th.conv, self.start) > at:
            self._pending.clear()
            return None
        return th

    def customer_mid(self, address: str, at: datetime) -> str:
        """A Message-ID in the style of the customer's mail provider."""
        rng = self.rng
        domain = address.rsplit("@", 1)[1].lower()
        epoch = int(at.timestamp())
        if domain == "gmail.com":
            body = "".join(rng.choice(_ALNUM + "_-+") for _ in range(42))
            mid = f"<CA{body}@mail.gmail.com>"
        elif domain in ("mail.ru", "bk.ru", "inbox.ru"):
            mid = f"<{epoch}.{rng.randrange(10**9):09d}@f{rng.randrange(100, 999)}.i.mail.ru>"
        elif domain == "yandex.ru":
            mid = f"<{rng.randrange(100_000, 999_999)}{epoch}@mail.yandex.ru>"
        elif domain == "outlook.com":
            host = f"{self.pick(('AM9PR07', 'DB8PR03', 'PAXPR10'))}MB{rng.randrange(1000, 9999)}"
            mid = f"<{host}{self.hex(24).upper()}@{host}.eurprd07.prod.outlook.com>"
        else:
            mid = (
                f"<{self.hex(8)}-{self.hex(4)}-{self.hex(4)}-{self.hex(4)}-{self.hex(12)}@{domain}>"
            )
        self.plant_id(mid.strip("<>"))
        return mid

    # -- customer contacts --------------------------------------------------------------------

    def say(
        self,
        th: _Thread,
        at: datetime,
        body: str,
        *,
        subject: str = "",
        pii: float = 0.25,
        extra: Sequence[str] = (),
        opening: bool = False,
    ) -> datetime:
        """The customer writes (or calls) in ``th``; returns the instant of the record."""
        if self.end is not None and at >= self.end:
            self._pending.clear()
            return at  # the story goes on after the window; nothing of it is written
        cust = th.cust
        if th.channel == "phone":  # calling again; the text is what the caller says
            staffed = cust.is_vip(at) or _in_office(at)
            status = "answered" if staffed and self.chance(0.8) else "missed"
            return self.call(th, at, status, body=body, agent=th.agent, transcript=self.chance(0.4))
        text, entities = self.compose(th, body, at, pii)
        subject = self.fill(subject, cust, at) if subject else ""
        more = [self.fill(x, cust, at) for x in extra]
        cust.contacts.append(at)
        if opening:
            self.opened.append((at, th.conv))
            th.opened_at = at
        ch = th.channel
        if ch == "telegram":
            for piece, ents in ((text, entities), *((m, []) for m in more)):
                self.telegram(th, at, piece, ents)
                at += _s(self.rng.uniform(8, 70))
            return at - _s(1)
        if ch == "whatsapp":
            self.whatsapp(th, at, [text, *more])
            return at
        if ch == "email":
            self.email(th, at, text + "".join("\n\n" + m for m in more), subject)
            return at
        if ch == "chat":
            for piece in (text, *more):
                self.chat(th, at, piece)
                at += _s(self.rng.uniform(5, 50))
            return at - _s(1)
        if ch == "form":
            self.form(th, at, subject, text)
            return at
        if ch in ("vk_dm", "vk_wall"):
            for piece in (text, *more):
                self.vk(th, at, piece)
                at += _s(self.rng.uniform(10, 80))
            return at - _s(1)
        raise ValueError(ch)

    def telegram(
        self, th: _Thread, at: datetime, text: str, entities: list[tuple[str, str]]
    ) -> None:
        cust = th.cust
        assert cust.telegram_id is not None
        chat: Record = {"id": cust.telegram_id, "first_name": cust.first}
        if "last_name" in cust.telegram_user:
            chat["last_name"] = cust.last
        if cust.telegram_username:
            chat["username"] = cust.telegram_username
        chat["type"] = "private"
        self.tg_message_ids[cust.telegram_id] += 1
        message: Record = {
            "message_id": self.tg_message_ids[cust.telegram_id] + 17,
            "from": dict(cust.telegram_user),
            "chat": chat,
            "date": int(at.timestamp()),
        }
        marks = []
        for kind, value in entities:
            pos = text.find(value)
            if pos >= 0:
                if kind == "url" and text[:pos].endswith("https://"):
                    pos, value = pos - 8, "https://" + value
                marks.append(
                    {"offset": _utf16_len(text[:pos]), "length": _utf16_len(value), "type": kind}
                )
        if self.chance(0.1):  # a photo of the problem, the text as its caption
            message["photo"] = [
                {
                    "file_id": f"AgACAgIAAxkBAAI{self.hex(20)}{size}",
                    "file_unique_id": f"AQAD{self.hex(8)}{size}",
                    "file_size": size * 31 + self.rng.randrange(900),
                    "width": size,
                    "height": size * 16 // 9,
                }
                for size in (90, 320, 800)
            ]
            message["caption"] = text
            if marks:
                message["caption_entities"] = marks
        else:
            message["text"] = text
            if marks:
                message["entities"] = marks
        update_id = 0
        self.plant_telegram(cust)
        if self.emit(at, "telegram", {"update_id": update_id, "message": message}, thread=th):
            self.contact(th, at, [("telegram", str(cust.telegram_id))], "\n" + text)
        if self.chance(0.05):  # the customer fixes a typo: an update to acknowledge and ignore
            edited = dict(message)
            edited["edit_date"] = int(at.timestamp()) + self.rng.randrange(15, 90)
            if "text" in edited:
                edited["text"] = (
                    edited["text"] + " (исправил)"
                    if th.lang == "ru"
                    else edited["text"] + " (edited)"
                )
            self.emit(
                at + _s(edited["edit_date"] - int(at.timestamp())),
                "telegram",
                {"update_id": 0, "edited_message": edited},
            )

    def whatsapp(self, th: _Thread, at: datetime, texts: list[str]) -> None:
        cust = th.cust
        wa = self.plant(str(cust.wa_id))
        messages = []
        sent = at - _s(len(texts) * 6)
        for text in texts:
            sent += _s(self.rng.uniform(1, 6))
            message: Record = {
                "from": wa,
                "id": self.wamid(),
                "timestamp": str(int(sent.timestamp())),
            }
            if self.chance(0.08):
                message["type"] = "image"
                message["image"] = {
                    "caption": text,
                    "mime_type": "image/jpeg",
                    "sha256": base64.b64encode(self.rng.randbytes(32)).decode(),
                    "id": str(self.rng.randrange(10**15, 10**16)),
                }
            else:
                message["type"] = "text"
                message["text"] = {"body": text}
            messages.append(message)
        value: Record = {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": C.WA_BUSINESS_NUMBER,
                "phone_number_id": WA_PHONE_NUMBER_ID,
            },
            "contacts": [
                {
                    "profile": {"name": cust.full_name if self.chance(0.6) else cust.first},
                    "wa_id": wa,
                }
            ],
            "messages": messages,
        }
        body = {
            "object": "whatsapp_business_account",
            "entry": [{"id": WABA_ID, "changes": [{"value": value, "field": "messages"}]}],
        }
        if self.emit(at, "whatsapp", body, thread=th):
            self.contact(th, at, [("whatsapp", wa), ("phone", "+" + wa)], "\n" + texts[0])

    def wamid(self) -> str:
        return "wamid.HBgL" + base64.b64encode(self.rng.randbytes(30)).decode().replace("/", "_")

    def whatsapp_statuses(self, th: _Thread, at: datetime) -> None:
        """Delivery receipts for an agent's answer: acknowledged, never contacts."""
        wa = str(th.cust.wa_id)
        wamid = self.wamid()
        conv_id = self.hex(32)
        t = at
        for status in ("sent", "delivered", "read"):
            if status == "read" and not self.chance(0.6):
                break
            t += _s(self.rng.uniform(1, 20 if status != "read" else 900))
            entry: Record = {
                "id": wamid,
                "status": status,
                "timestamp": str(int(t.timestamp())),
                "recipient_id": wa,
            }
            if status != "read":
                entry["conversation"] = {"id": conv_id, "origin": {"type": "service"}}
                entry["pricing"] = {
                    "billable": False,
                    "pricing_model": "PMP",
                    "category": "service",
                }
            value = {
                "messaging_product": "whatsapp",
                "metadata": {
                    "display_phone_number": C.WA_BUSINESS_NUMBER,
                    "phone_number_id": WA_PHONE_NUMBER_ID,
                },
                "statuses": [entry],
            }
            self.emit(
                t,
                "whatsapp",
                {
                    "object": "whatsapp_business_account",
                    "entry": [{"id": WABA_ID, "changes": [{"value": value, "field": "messages"}]}],
                },
            )

    def chat(self, th: _Thread, at: datetime, text: str) -> None:
        payload: Record = {
            "session_id": th.session_id,
            "message_id": "",
            "visitor": th.visitor,
            "text": text,
        }
        if th.last_at is None or self.chance(0.3):
            payload["page_url"] = self.pick(C.PAGE_URLS[th.reason])
        if self.emit(at, "chat", payload, thread=th):
            visitor = th.visitor
            self.contact(
                th, at, [("email", str(visitor.get("email", "")).lower()),
                         ("phone", visitor.get("phone"))], "\n" + text
            )  # fmt: skip

    def form(self, th: _Thread, at: datetime, subject: str, text: str) -> None:
        cust = th.cust
        payload: Record = {
            "submission_id": th.submission_id,
            "form_id": C.FORM_IDS.get(th.reason, C.DEFAULT_FORM_ID),
        }
        if self.chance(0.95):
            payload["email"] = self.plant(cust.email if self.chance(0.8) else cust.email.lower())
        if cust.phone and self.chance(0.4):
            payload["phone"] = self.plant(self.phone_text(cust.phone))
        if self.chance(0.85):
            payload["name"] = cust.full_name
        if subject and self.chance(0.9):
            payload["topic"] = subject
        payload["message"] = text
        if self.chance(0.8):
            payload["page_url"] = self.pick(C.PAGE_URLS[th.reason])
        if self.emit(at, "form", payload, thread=th):
            self.contact(
                th, at, [("email", str(payload.get("email", "")).lower()),
                         ("phone", _typed_e164(payload.get("phone")))],
                f"{payload.get('topic', '')}\n{text}",
            )  # fmt: skip

    def vk(self, th: _Thread, at: datetime, text: str) -> None:
        cust = th.cust
        assert cust.vk_id is not None
        self.plant_id(str(cust.vk_id))
        date = int(at.timestamp())
        event: Record = {"group_id": C.VK_GROUP_ID}
        if th.channel == "vk_dm":
            if self.chance(0.15):  # "typing…" shortly before: acknowledged and ignored
                self.vk_event(
                    at - _s(self.rng.uniform(3, 20)),
                    "message_typing_state",
                    {"state": "typing", "from_id": cust.vk_id, "to_id": -C.VK_GROUP_ID},
                )
            self.vk_conv_message_ids[cust.vk_id] += 1
            event["type"] = "message_new"
            event["event_id"] = self.hex(40)
            event["v"] = VK_API_VERSION
            event["object"] = {
                "message": {
                    "date": date,
                    "from_id": cust.vk_id,
                    "id": 0,
                    "out": 0,
                    "version": 0,
                    "attachments": [],
                    "conversation_message_id": self.vk_conv_message_ids[cust.vk_id],
                    "fwd_messages": [],
                    "important": False,
                    "is_hidden": False,
                    "peer_id": cust.vk_id,
                    "random_id": 0,
                    "text": text,
                },
                "client_info": {
                    "button_actions": ["text", "vkpay", "open_app", "location", "open_link",
                                       "callback", "intent_subscribe", "intent_unsubscribe"],
                    "keyboard": True,
                    "inline_keyboard": True,
                    "carousel": True,
                    "lang_id": 0 if th.lang == "ru" else 3,
                },
            }  # fmt: skip
        else:
            event["type"] = "wall_reply_new"
            event["event_id"] = self.hex(40)
            event["v"] = VK_API_VERSION
            event["object"] = {
                "id": 0,
                "from_id": cust.vk_id,
                "date": date,
                "text": text,
                "post_owner_id": -C.VK_GROUP_ID,
                "owner_id": -C.VK_GROUP_ID,
                "post_id": th.post_id,
                "parents_stack": [],
                "thread": {"count": 0},
            }
        event["secret"] = VK_SECRET
        if self.emit(at, "vk", event, thread=th):
            self.contact(th, at, [("vk", str(cust.vk_id))], "\n" + text)

    def vk_event(self, at: datetime, kind: str, obj: Record) -> None:
        self.emit(
            at,
            "vk",
            {"group_id": C.VK_GROUP_ID, "type": kind, "event_id": self.hex(40),
             "v": VK_API_VERSION, "object": obj, "secret": VK_SECRET},
        )  # fmt: skip

    def call(
        self,
        th: _Thread,
        at: datetime,
        status: str,
        *,
        body: str = "",
        agent: str = "",
        transcript: bool = False,
    ) -> datetime:
        """A call starting at ``at``; the record arrives when it ends. Returns that instant."""
        cust = th.cust
        rng = self.rng
        duration = {
            "answered": rng.randrange(45, 900),
            "missed": 0,
            "voicemail": rng.randrange(12, 70),
        }[status]
        payload: Record = {
            "call_id": f"{self.hex(8)}-{self.hex(4)}-{self.hex(4)}-{self.hex(4)}-{self.hex(12)}",
            "caller": self.plant(str(cust.phone)),
            "callee": C.CALL_CENTRE_NUMBER,
            "status": status,
            "started_at": at.astimezone(MSK if rng.random() < 0.5 else UTC)
            .isoformat(timespec="seconds")
            .replace("+00:00", "Z"),
            "duration_s": duration,
        }
        if status == "answered":
            payload["agent_id"] = agent
        if transcript and body:
            text, _ = self.compose(th, body, at, 0.3 if status == "voicemail" else 0.1)
            if status == "answered":
                answer = self.pick(C.AGENT_ANSWERS[th.lang])
                text = C.CALL_TRANSCRIPT[th.lang].format(body=text, answer=answer)
            else:
                template = self.pick(C.VOICEMAIL[th.lang])
                phone = self.phone_text(str(cust.phone))
                if "{phone}" in template:
                    self.plant(phone)
                text = template.format(name=cust.first, body=text, phone=phone)
            payload["transcript"] = text
        end = at + _s(
            duration + (rng.randrange(1, 5) if status != "missed" else rng.randrange(15, 40))
        )
        cust.contacts.append(end)
        if self.emit(end, "phone", payload, thread=th):
            # a call says nothing the rules can match unless it comes with a transcript
            said = th.meant if "transcript" in payload else ("other", "question")
            self.contact(
                th,
                end,
                [("phone", cust.phone)],
                "\n" + payload.get("transcript", ""),
                said or ("other", "question"),
            )
        return end

    # -- e-mail -------------------------------------------------------------------------------

    def email(self, th: _Thread, at: datetime, text: str, subject: str) -> None:
        rng = self.rng
        cust = th.cust
        lang = th.lang
        first = not th.subject
        if first:
            if th.refs:  # answering an order notification the desk never saw
                notice = "Ваш заказ оформлен" if lang == "ru" else "Your order is confirmed"
                th.subject = f"Re: {notice}"
            else:
                th.subject = self.fill(subject, cust, at)
            reason, kind = th.meant or ("other", "question")
            # a subject says what the opener is about; a complaint says so in the body only
            th.subject_meant = (
                ("other", "question")
                if th.refs
                else (reason, "thanks" if kind == "thanks" else "question")
            )
            mid = th.root_mid if not th.refs else self.customer_mid(th.from_addr, at)
            in_reply_to = th.refs[-1] if th.refs else None
            references = list(th.refs)
        else:
            mid = self.customer_mid(th.from_addr, at)
            target = th.last_agent_mid or th.refs[-1]
            style = rng.random()
            in_reply_to = target if style < 0.9 else None
            references = [*th.refs[-9:]] if style < 0.8 or style >= 0.9 else []
            if references and references[-1] != target:
                references.append(target)
            if in_reply_to is None and not references:
                references = [target]
        greeted = text.startswith(("Здравствуйте", "Добр", "Hi", "Hello"))
        lines = [] if greeted else [self.pick(C.GREETINGS[lang]), ""]
        lines += [text, "", self.pick(C.SIGNOFFS[lang]), cust.first]
        if th.last_agent_mid and not first and self.chance(0.8):
            lines += ["", self.attribution(lang, at - _s(rng.uniform(600, 7200)))]
            quoted = th.last_agent_text + "\n\n" + C.SIGNATURES[lang]
            lines += ["> " + q if q else ">" for q in quoted.split("\n")]
        body_text = "\n".join(lines)
        subj = (
            th.subject
            if first
            else (th.subject if th.subject.startswith("Re:") else "Re: " + th.subject)
        )
        date = at - _s(rng.uniform(2, 50))
        addr = self.plant(th.from_addr)
        domain = addr.rsplit("@", 1)[1].lower()
        ip = f"{self.pick(_IPS)}{rng.randrange(1, 254)}"
        headers = [
            f"Return-Path: <{addr}>",
            f"Received: from mail.{domain} (mail.{domain} [{ip}])\n"
            f"\tby {C.MX_HOST} with ESMTPS id {self.hex(10).upper()}\n"
            f"\tfor <{C.SUPPORT_ADDRESS}>; {format_datetime(date.astimezone(MSK) + _s(1))}",
            f"From: {formataddr((cust.full_name, addr), charset='utf-8')}",
            f"To: {formataddr((C.COMPANY + ' Support', C.SUPPORT_ADDRESS))}",
            f"Subject: {self.header_text(subj)}",
            f"Date: {format_datetime(date.astimezone(MSK))}",
            f"Message-ID: {mid}",
        ]
        if in_reply_to:
            headers.append(f"In-Reply-To: {in_reply_to}")
        if references:
            headers.append("References: " + "\n ".join(references))
        headers.append("MIME-Version: 1.0")
        if self.chance(0.6):
            headers.append(f"X-Mailer: {self.pick(C.MAILERS)}")
        content_headers, body = self.mime_body(body_text, lang)
        message = "\n".join(headers + content_headers) + "\n\n" + body
        th.refs.append(mid)
        if self.emit(at, "email", message.replace("\r\n", "\n").replace("\n", "\r\n"), thread=th):
            self.contact(th, at, [("email", th.from_addr.lower())], f"{subj}\n{body_text}")

    @staticmethod
    def header_text(value: str) -> str:
        if value.isascii():
            return value
        return Header(value, "utf-8", header_name="Subject").encode()

    @staticmethod
    def attribution(lang: str, at: datetime) -> str:
        local = at.astimezone(MSK)
        if lang == "ru":
            return (
                f"{_RU_WEEKDAYS[local.weekday()]}, {local.day} {_RU_MONTHS[local.month - 1]} "
                f"{local.year} г. в {local:%H:%M}, Служба поддержки «Совушки» "
                f"<{C.SUPPORT_ADDRESS}>:"
            )
        sender = f"{C.COMPANY} Support <{C.SUPPORT_ADDRESS}>"
        return f"On {local:%a, %d %b %Y} at {local:%H:%M}, {sender} wrote:"

    def mime_body(self, text: str, lang: str) -> tuple[list[str], str]:
        """Content headers and body in one of the shapes mail clients actually send."""
        rng = self.rng
        style = rng.choices(
            ("plain_qp", "alternative", "plain_b64", "html_only", "mixed", "plain_8bit"),
            (25, 30, 10, 10, 10, 15),
        )[0]
        plain_qp = quopri.encodestring(text.encode("utf-8")).decode("ascii")
        html_text = self.html_of(text)
        boundary = (
            f"----=_Part_{rng.randrange(10**6)}_{rng.randrange(10**9)}.{rng.randrange(10**13)}"
        )
        if style == "plain_qp":
            return [
                'Content-Type: text/plain; charset="utf-8"',
                "Content-Transfer-Encoding: quoted-printable",
            ], plain_qp
        if style == "plain_8bit":
            return [
                "Content-Type: text/plain; charset=utf-8; format=flowed",
                "Content-Transfer-Encoding: 8bit",
            ], text
        if style == "plain_b64":
            return [
                "Content-Type: text/plain; charset=UTF-8",
                "Content-Transfer-Encoding: base64",
            ], base64.encodebytes(text.encode("utf-8")).decode("ascii")
        if style == "html_only":
            qp_html = rng.random() < 0.5
            encoded = (
                quopri.encodestring(html_text.encode("utf-8")).decode("ascii")
                if qp_html
                else base64.encodebytes(html_text.encode("utf-8")).decode("ascii")
            )
            cte = "quoted-printable" if qp_html else "base64"
            return [
                'Content-Type: text/html; charset="utf-8"',
                f"Content-Transfer-Encoding: {cte}",
            ], encoded
        alternative = (
            f"--{boundary}\n"
            'Content-Type: text/plain; charset="utf-8"\n'
            "Content-Transfer-Encoding: quoted-printable\n\n"
            f"{plain_qp}\n"
            f"--{boundary}\n"
            'Content-Type: text/html; charset="utf-8"\n'
            "Content-Transfer-Encoding: quoted-printable\n\n"
            f"{quopri.encodestring(html_text.encode('utf-8')).decode('ascii')}\n"
            f"--{boundary}--\n"
        )
        if style == "alternative":
            return [f'Content-Type: multipart/alternative; boundary="{boundary}"'], alternative
        outer = f"----=_NextPart_{self.hex(12)}"
        png = base64.encodebytes(b"\x89PNG\r\n\x1a\n" + rng.randbytes(180)).decode("ascii")
        name = self.pick(C.ATTACHMENT_NAMES)
        mixed = (
            "This is a multi-part message in MIME format.\n\n"
            f"--{outer}\n"
            f'Content-Type: multipart/alternative; boundary="{boundary}"\n\n'
            f"{alternative}\n"
            f"--{outer}\n"
            f'Content-Type: image/png; name="{name}"\n'
            f'Content-Disposition: attachment; filename="{name}"\n'
            "Content-Transfer-Encoding: base64\n\n"
            f"{png}"
            f"--{outer}--\n"
        )
        return [f'Content-Type: multipart/mixed; boundary="{outer}"'], mixed

    @staticmethod
    def html_of(text: str) -> str:
        parts: list[str] = []
        quote: list[str] = []
        for line in text.split("\n"):
            if line.startswith(">"):
                quote.append(html.escape(line[1:].lstrip(), quote=False))
                continue
            if quote:
                parts.append("<blockquote>" + "<br>\n".join(quote) + "</blockquote>")
                quote = []
            parts.append(f"<div>{html.escape(line, quote=False) or '<br>'}</div>")
        if quote:
            parts.append("<blockquote>" + "<br>\n".join(quote) + "</blockquote>")
        return (
            '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
            "</head><body>\n" + "\n".join(parts) + "\n</body></html>"
        )

    # -- agents and surveys -------------------------------------------------------------------

    def agent(self, th: _Thread, at: datetime, kind: str, agent: str, **extra: Any) -> datetime:
        """An agent record at ``at`` (plus the desk's milliseconds); returns its instant."""
        at = at + timedelta(milliseconds=self.rng.randrange(1, 1000))
        payload: Record = {"type": kind, "conversation_id": th.conv, "agent_id": agent}
        payload.update(extra)
        if not self.emit(at, "agent", payload, thread=th):
            return at
        if kind == "status":
            self.status(th, at, str(extra["status"]))
        if kind == "reply" and extra.get("public", True):
            if th.channel == "whatsapp":
                self.whatsapp_statuses(th, at)
            elif th.channel == "vk_dm" and th.cust.vk_id is not None:
                self.vk_event(
                    at + _s(1),
                    "message_reply",
                    {"date": int(at.timestamp()) + 1, "from_id": -C.VK_GROUP_ID,
                     "id": 0, "out": 1,
                     "peer_id": th.cust.vk_id, "text": self.pick(C.AGENT_ANSWERS[th.lang]),
                     "conversation_message_id": self.vk_conv_message_ids[th.cust.vk_id] + 1,
                     "admin_author_id": 1000 + C.AGENTS.index(agent), "attachments": []},
                )  # fmt: skip
                self.vk_conv_message_ids[th.cust.vk_id] += 1
        return at

    def reply(self, th: _Thread, at: datetime, agent: str, *, question: bool = False) -> datetime:
        """A public answer; e-mail answers (and answers to form submissions) go out as mail."""
        extra: Record = {} if self.chance(0.3) else {"public": True}
        texts = C.AGENT_QUESTIONS if question else C.AGENT_ANSWERS
        if th.channel in ("email", "form"):
            mid = f"<{self.hex(16)}.{self.next('desk_mail', 1)}@{C.DESK_DOMAIN}>"
            extra["message_id"] = mid
        at = self.agent(th, at, "reply", agent, **extra)
        if "message_id" in extra and (self.end is None or at < self.end):
            th.last_agent_mid = extra["message_id"]
            th.refs.append(extra["message_id"])
            th.last_agent_text = self.pick(texts[th.lang])
            if not th.subject and th.channel == "form":
                th.subject = (
                    "Обращение " + th.submission_id
                    if th.lang == "ru"
                    else "Your request " + th.submission_id
                )
        return at

    def survey(self, th: _Thread, at: datetime, kind: str, score: int) -> None:
        if th.channel == "telegram" and self.chance(0.7) and th.cust.telegram_id is not None:
            bot = {"id": C.TELEGRAM_BOT_ID, "is_bot": True, "first_name": C.COMPANY,
                   "username": C.TELEGRAM_BOT_USERNAME}  # fmt: skip
            self.emit(
                at - _s(2),
                "telegram",
                {
                    "update_id": 0,
                    "callback_query": {
                        "id": str(self.rng.randrange(10**18, 10**19)),
                        "from": dict(th.cust.telegram_user),
                        "message": {
                            "message_id": self.tg_message_ids[th.cust.telegram_id] + 18,
                            "from": bot,
                            "chat": {"id": th.cust.telegram_id, "type": "private"},
                            "date": int(at.timestamp()) - 600,
                            "text": "Оцените, пожалуйста, ответ"
                            if th.lang == "ru"
                            else "Please rate our answer",
                        },
                        "chat_instance": str(-self.rng.randrange(10**18, 10**19)),
                        "data": f"{kind}:{score}",
                    },
                },
            )
        self.emit(
            at, "survey", {"conversation_id": th.conv, "kind": kind, "score": score}, thread=th
        )

    def qa_review(self, th: _Thread, solved_at: datetime) -> None:
        """Now and then a team lead scores a solved ticket on the demo rules' scorecard
        (CONTRACT §7): some criteria N/A, a few critical failures, a few reviews redone."""
        rng = self.qa_rng
        conv = self.conversations.get(th.conv)
        if conv is None or not conv.tickets or rng.random() >= QA_REVIEW_SHARE:
            return
        ticket_id = f"{th.conv}#{conv.tickets}"
        reviewer = QA_REVIEWERS[rng.randrange(len(QA_REVIEWERS))]
        at = solved_at + _s(rng.uniform(2 * 3600, 48 * 3600))
        for _ in range(2 if rng.random() < 0.08 else 1):  # a redo replaces the first review
            scores: Record = {
                "solution": rng.choices((1, 0.75, 0.5, 0.25, 0), (50, 20, 15, 10, 5))[0],
                "tone": rng.choices((1, 0.75, 0.5, 0.25), (55, 25, 15, 5))[0],
                "greeting": None if rng.random() < 0.2 else rng.choice((1, 0.5, 0)),
            }
            if rng.random() < 0.03:
                scores = dict.fromkeys(scores)  # nothing applicable: quality NULL
            payload: Record = {"ticket_id": ticket_id, "reviewer_id": reviewer, "scores": scores}
            if rng.random() < 0.3:
                payload["comment"] = rng.choice(QA_COMMENTS)
            if self.end is not None and at >= self.end:
                return
            stamp = at.astimezone(MSK).isoformat(timespec="milliseconds")
            self.seq += 1
            record = {"at": stamp, "source": "qa", "payload": payload}
            self.entries.append(_Entry(at, self.seq, record))
            at += _s(rng.uniform(600, 6 * 3600))

    # -- stories ------------------------------------------------------------------------------

    def response_at(self, at: datetime, vip: bool, channel: str) -> datetime:
        """When an agent answers something that arrived at ``at``: mostly within the hour in
        office hours, at the next opening otherwise, sometimes far too late (SLA breaches).
        VIP customers have a 24/7 line; a weekend duty shift picks up part of the weekend."""
        rng = self.rng
        if vip:
            roll = rng.random()
            delay = (
                rng.uniform(60, 12 * 60) if roll < 0.8
                else rng.uniform(12 * 60, 25 * 60) if roll < 0.92
                else rng.uniform(30 * 60, 120 * 60)
            )  # fmt: skip
            return at + _s(delay)
        base = _next_office(at)
        duty = _next_duty(at)
        if duty < base and rng.random() < 0.6:
            return max(at, duty) + _s(rng.uniform(10 * 60, 3 * 3600))
        roll = rng.random()
        if channel == "chat" and base == at and roll < 0.8:
            return at + _s(rng.uniform(20, 360))
        delay = (
            rng.uniform(120, 45 * 60) if roll < 0.7
            else rng.uniform(45 * 60, 110 * 60) if roll < 0.87
            else rng.uniform(2 * 3600, 7 * 3600)
        )  # fmt: skip
        if base != at:
            delay = delay * 0.6 + rng.uniform(0, 900)  # the morning queue is worked first
        out = base + _s(delay)
        if not _in_office(out):
            out = _next_office(out) + _s(rng.uniform(300, 2400))
        return out

    def customer_delay(self) -> timedelta:
        rng = self.rng
        roll = rng.random()
        if roll < 0.6:
            return _s(rng.uniform(300, 3 * 3600))
        if roll < 0.9:
            return _s(rng.uniform(3 * 3600, 20 * 3600))
        return _s(rng.uniform(24 * 3600, 60 * 3600))

    def pick_agent(self, vip: bool, reason: str, other_than: str = "") -> str:
        pool = (
            C.VIP_AGENTS if vip
            else C.BILLING_AGENTS if reason == "billing"
            else C.TECH_AGENTS if reason in ("bug", "outage", "access")
            else C.DELIVERY_AGENTS if reason == "delivery"
            else C.GENERAL_AGENTS
        )  # fmt: skip
        choices = [a for a in pool if a != other_than] or [a for a in C.AGENTS if a != other_than]
        return self.pick(choices)

    def pick_reason(self) -> tuple[str, str]:
        rng = self.rng
        reason = rng.choices(C.REASONS, C.REASON_WEIGHTS)[0]
        roll = rng.random()
        kind = "complaint" if roll < 0.1 else "thanks" if roll < 0.14 else "question"
        if kind == "thanks":
            reason = "other"
        return reason, kind

    def open_ticket(
        self,
        at: datetime,
        cust: _Customer | None = None,
        *,
        outage_on: Sequence[str] = (),
    ) -> None:
        """Starts one story at ``at``: a contact opening a ticket and everything that follows.
        A conversation still busy with an earlier story is not reused; after a few tries the
        story falls back to a new e-mail thread. ``outage_on`` makes it a story of an outage
        (a spike, see ``outage_spike``) told by ``cust`` on one of those channels."""
        rng = self.rng
        if outage_on:
            reason, kind = "outage", "complaint" if rng.random() < 0.2 else "question"
            channel = self.pick(outage_on)
        else:
            reason, kind = self.pick_reason()
            channel = rng.choices(self._channels, self._channel_weights)[0]
        if channel == "vk_wall" and rng.random() < 0.3:  # comments under a promo post
            reason, kind = "other", "complaint" if rng.random() < 0.5 else "question"
        th: _Thread | None = None
        for attempt in range(12):
            if cust is not None and outage_on:  # the spike: this customer, an outage channel
                who = cust
                channel = channel if attempt == 0 else self.pick(outage_on)
            elif cust is not None and attempt < 3:  # a planned story: this customer, any channel
                who = cust
                channel = who.preferred if attempt == 0 else self.pick(self._channels)
            else:
                who = self.customer()
            if not self.reachable(who, channel):
                continue
            th = self.thread(channel, who, at, reason)
            if th is not None:
                break
        if th is None:
            th = self.thread("email", cust if outage_on and cust else self.customer(), at, reason)
            assert th is not None  # a new e-mail thread is never busy
        if th.channel == "phone":
            self.phone_story(th, at, reason, kind)
        else:
            self.story(th, at, reason, kind)
        if th.last_at is not None:
            self.busy[th.conv] = th.last_at + timedelta(hours=2)

    def story(self, th: _Thread, t: datetime, reason: str, kind: str, depth: int = 0) -> None:
        rng = self.rng
        lang = th.lang
        vip = th.cust.is_vip(t)
        subject, body = self.opener(reason, kind, lang)
        if th.channel == "telegram" and depth == 0 and self.chance(0.05):
            th.meant = ("other", "question")  # "/start" opens the ticket and says nothing
            t = self.say(th, t, "/start", pii=0, opening=True) + _s(rng.uniform(5, 40))
            self.telegram_last_command(th)
            opening = False
        else:
            opening = True
        th.meant = (reason, kind)
        extra: list[str] = []
        if th.channel in MESSENGERS and self.chance(0.3):
            extra.append(self.pick(C.ADDENDA[lang]))
        t = self.say(th, t, body, subject=subject, pii=0.3, extra=extra, opening=opening)
        reply_at = self.response_at(t, vip, th.channel)
        lost = th.channel != "form" and self.chance(0.04)  # nobody ever answers
        if lost:
            reply_at = t + timedelta(hours=rng.uniform(6, 30))
        if reply_at - t > timedelta(minutes=30) and th.channel != "form" and self.chance(0.45):
            nudge_at = t + (reply_at - t) * rng.uniform(0.2, 0.8)
            nudge = (
                self.pick(C.NUDGES[lang])
                if th.channel in MESSENGERS
                else self.pick(C.ADDENDA[lang])
            )
            if th.channel == "email":
                nudge = self.pick(C.PENDING_ANSWERS[lang])
            t = self.say(th, nudge_at, nudge, pii=0.15)
        if lost or (self.end is not None and reply_at >= self.end):
            return
        agent = self.pick_agent(vip, reason)
        t = self.agent(th, max(t + _s(5), reply_at - _s(rng.uniform(30, 300))), "assign", agent)
        th.agent = agent
        if self.chance(0.12):
            t = self.agent(th, t + _s(rng.uniform(20, 200)), "note", agent)
        t = self.reply(th, max(reply_at, t + _s(20)), agent, question=self.chance(0.45))
        self.after_first_reply(th, t, reason, kind, vip, depth)

    def telegram_last_command(self, th: _Thread) -> None:
        """Marks the ``/start`` just sent as a bot command, as Telegram does."""
        last = self.entries[-1].record
        if last is not None and last["source"] == "telegram":
            message = last["payload"].get("message", {})
            if message.get("text") == "/start":
                message["entities"] = [{"offset": 0, "length": 6, "type": "bot_command"}]

    def after_first_reply(
        self, th: _Thread, t: datetime, reason: str, kind: str, vip: bool, depth: int
    ) -> None:
        rng = self.rng
        lang = th.lang
        agent = th.agent
        roll = rng.random()
        if th.channel == "form" and roll >= 0.38:
            roll = 0.4 if rng.random() < 0.7 else 0.9
        if roll < 0.38:  # answered and solved
            t = self.agent(th, t + _s(rng.uniform(5, 1200)), "status", agent, status="solved")
        elif roll < 0.73:  # the agent asks; the customer answers later; maybe twice
            for _ in range(2 if self.chance(0.25) else 1):
                t = self.agent(th, t + _s(rng.uniform(2, 60)), "status", agent, status="pending")
                if th.channel == "form" and not self.chance(0.5):
                    break  # the form's customer never answers: solved for lack of reply below
                answer_at = t + self.customer_delay()
                if th.channel == "form":  # the answer comes by mail, in reply to the agent's mail
                    th.channel = "email"
                    th.from_addr = th.cust.email
                    th.subject = "Re: " + (th.subject or "Обращение")
                    t = self.say(th, answer_at, self.pick(C.PENDING_ANSWERS[lang]), pii=0.35)
                    th.channel = "form"
                else:
                    t = self.say(th, answer_at, self.pick(C.PENDING_ANSWERS[lang]), pii=0.35)
                if self.chance(0.04):
                    t = self.agent(th, t + _s(rng.uniform(60, 600)), "status", agent, status="open")
                if self.chance(0.12):  # handed over to a specialist
                    new_agent = self.pick_agent(vip, reason, other_than=agent)
                    t = self.agent(th, t + _s(rng.uniform(60, 900)), "note", agent)
                    t = self.agent(th, t + _s(rng.uniform(5, 120)), "assign", new_agent)
                    agent = th.agent = new_agent
                if self.chance(0.04):
                    t = self.agent(th, t + _s(rng.uniform(30, 300)), "reply", agent, public=False)
                t = self.reply(th, max(self.response_at(t, vip, th.channel), t + _s(30)), agent)
            solve_at = t + _s(rng.uniform(10, 1800))
            if th.channel == "form" and self.chance(0.5):
                solve_at = _next_office(t + timedelta(days=2))
            t = self.agent(th, solve_at, "status", agent, status="solved")
        elif roll < 0.88:  # the customer has more to say right away
            t = self.say(th, t + _s(rng.uniform(120, 3600)), self.pick(C.ADDENDA[lang]), pii=0.2)
            t = self.reply(th, max(self.response_at(t, vip, th.channel), t + _s(30)), agent)
            t = self.agent(th, t + _s(rng.uniform(30, 900)), "status", agent, status="solved")
        else:  # answered, left open
            if self.chance(0.5):
                self.agent(th, t + _s(rng.uniform(600, 7200)), "note", agent)
            return
        solved_at = t
        self.after_solve(th, solved_at, reason, kind, vip, depth)

    def after_solve(
        self, th: _Thread, solved_at: datetime, reason: str, kind: str, vip: bool, depth: int
    ) -> None:
        rng = self.rng
        lang = th.lang
        agent = th.agent
        slow = solved_at - (th.opened_at or solved_at) > timedelta(hours=20)
        self.qa_review(th, solved_at)
        if self.chance(0.55):
            self.survey(
                th, solved_at + _s(rng.uniform(300, 8 * 3600)), "csat", self.csat(kind, slow)
            )
        if self.chance(0.25):
            self.survey(
                th, solved_at + _s(rng.uniform(3600, 24 * 3600)), "nps", self.nps(kind, slow)
            )
        if th.channel == "form":
            return
        roll = rng.random()
        if roll < 0.10:  # the problem is back within the reopen window
            t = self.say(
                th,
                solved_at + _s(rng.uniform(3600, 60 * 3600)),
                self.pick(C.REOPEN_TEXTS[lang]),
                pii=0.2,
            )
            t = self.reply(th, max(self.response_at(t, vip, th.channel), t + _s(30)), agent)
            self.agent(th, t + _s(rng.uniform(60, 4 * 3600)), "status", agent, status="solved")
        elif roll < 0.18 and th.channel != "phone":  # a thank-you reopens; the agent re-solves
            t = self.say(
                th, solved_at + _s(rng.uniform(120, 5400)), self.pick(C.THANKS_AFTER[lang]), pii=0
            )
            self.agent(
                th, _next_office(t) + _s(rng.uniform(60, 3600)), "status", agent, status="solved"
            )
        elif roll < 0.20:  # the agent reopens it (a colleague found more to do)
            t = self.agent(
                th, solved_at + _s(rng.uniform(3600, 20 * 3600)), "status", agent, status="open"
            )
            t = self.reply(th, t + _s(rng.uniform(300, 3600)), agent)
            self.agent(th, t + _s(rng.uniform(60, 600)), "status", agent, status="solved")
        elif roll < 0.27 and depth == 0 and th.channel != "chat":  # a new issue after the window
            later = solved_at + _s(rng.uniform(73 * 3600, 130 * 3600))
            new_reason, new_kind = self.pick_reason()
            if th.channel == "phone":
                self.phone_story(th, later, new_reason, new_kind, depth=1)
            else:
                self.story(th, later, new_reason, new_kind, depth=1)

    def csat(self, kind: str, slow: bool) -> int:
        weights = [10, 8, 12, 25, 45]
        if kind == "complaint" or slow:
            weights = [25, 18, 20, 20, 17]
        return self.rng.choices(range(1, 6), weights)[0]

    def nps(self, kind: str, slow: bool) -> int:
        weights = [3, 2, 2, 3, 3, 5, 6, 10, 16, 20, 30]
        if kind == "complaint" or slow:
            weights = [10, 8, 8, 9, 9, 10, 10, 10, 10, 8, 8]
        return self.rng.choices(range(11), weights)[0]

    def phone_story(self, th: _Thread, t: datetime, reason: str, kind: str, depth: int = 0) -> None:
        rng = self.rng
        vip = th.cust.is_vip(t)
        _subject, body = self.opener(reason, kind, th.lang)
        staffed = vip or _in_office(t)
        th.meant = (reason, kind)
        roll = rng.random()
        status = (
            ("answered" if roll < 0.7 else "missed" if roll < 0.9 else "voicemail") if staffed
            else ("missed" if roll < 0.55 else "voicemail")
        )  # fmt: skip
        agent = self.pick_agent(vip, reason)
        th.agent = agent
        self.opened.append((t, th.conv))
        th.opened_at = t
        if status == "answered":
            t = self.call(th, t, "answered", body=body, agent=agent, transcript=self.chance(0.5))
        else:
            t = self.call(
                th, t, status, body=body, transcript=status == "voicemail" and self.chance(0.75)
            )
            roll = rng.random()
            if status == "missed" and roll < 0.55:  # the caller tries again
                again = t + _s(rng.uniform(300, 7200))
                if vip or _in_office(again):
                    t = self.call(
                        th, again, "answered", body=body, agent=agent, transcript=self.chance(0.4)
                    )
                else:
                    t = self.call(th, again, "missed")
                    t = self.reply(th, self.response_at(t, vip, "phone"), agent)  # called back
            elif roll < 0.9:  # an agent calls back; the desk logs it as a public reply
                t = self.reply(th, self.response_at(t, vip, "phone"), agent)
            else:
                return  # nobody calls back: the ticket stays new
        roll = rng.random()
        if roll < 0.65:
            t = self.agent(th, t + _s(rng.uniform(30, 300)), "status", agent, status="solved")
        elif roll < 0.85:  # promised to check and call back
            t = self.agent(th, t + _s(rng.uniform(30, 300)), "status", agent, status="pending")
            t = self.reply(th, t + self.customer_delay(), agent)
            t = self.agent(th, t + _s(rng.uniform(30, 300)), "status", agent, status="solved")
        else:
            self.agent(th, t + _s(rng.uniform(30, 300)), "note", agent)
            return
        self.after_solve(th, t, reason, kind, vip, depth)

    # -- background: CRM, noise, broken records ----------------------------------------------

    def crm_snapshot(self, at: datetime) -> None:
        for index, cust in enumerate(c for c in self.customers if c.in_crm):
            self.emit(
                at + timedelta(milliseconds=index * 250), "crm", self.crm_payload(cust, cust.tier)
            )

    def shifts(self, start: datetime, days: int, rng: random.Random) -> None:
        """Agents' presence records (CONTRACT §7): the office staff log in around 09:00 Moscow,
        are away at lunch (13:00-14:00, Monday to Thursday) and log off around 19:00 (17:00 on
        Friday); a weekend duty agent covers Saturday and Sunday 10:00-16:00. ``SHIFT_FREE``
        (the VIP line) has no records and stays online round the clock. Everybody else is
        offline from ``start`` until their first shift, so the night's tickets wait and the
        morning's first logins drain the backlog in priority order. ``rng`` is the shifts' own,
        so the rest of the traffic is the same with or without them."""
        staff = [agent for agent in C.AGENTS if agent not in SHIFT_FREE]

        def presence(at: datetime, agent: str, status: str) -> None:
            at = at + timedelta(milliseconds=rng.randrange(0, 1000))
            self.emit(at, "agent", {"type": "presence", "agent_id": agent, "status": status})

        for agent in staff:
            presence(start, agent, "offline")
        first_day = start.astimezone(MSK).replace(hour=0, minute=0, second=0, microsecond=0)
        for day in range(days + 1):
            midnight = first_day + timedelta(days=day)
            weekday = midnight.weekday()
            if weekday >= 5:
                duty = WEEKEND_DUTY[(weekday - 5) % len(WEEKEND_DUTY)]
                presence(midnight + timedelta(hours=10, minutes=rng.uniform(-5, 5)), duty, "online")
                presence(
                    midnight + timedelta(hours=16, minutes=rng.uniform(0, 10)), duty, "offline"
                )
                continue
            for agent in staff:
                log_in = midnight + timedelta(hours=9, minutes=rng.uniform(-10, 15))
                log_off = midnight + timedelta(hours=17 if weekday == 4 else 19)
                log_off += timedelta(minutes=rng.uniform(0, 20))
                if log_in < start:
                    continue
                presence(log_in, agent, "online")
                if weekday < 4:
                    lunch = midnight + timedelta(hours=13, minutes=rng.uniform(0, 10))
                    presence(lunch, agent, "away")
                    presence(lunch + timedelta(minutes=rng.uniform(50, 60)), agent, "online")
                presence(log_off, agent, "offline")

    def noise(self, start: datetime, days: int) -> None:
        """Updates that are acknowledged and ignored: a bot posting in the shop's Telegram group,
        users blocking the bot, people joining the VK community."""
        rng = self.rng
        group = {"id": -1001987654321, "title": "Совушка — покупатели", "type": "supergroup"}
        bot = {
            "id": 6123456789,
            "is_bot": True,
            "first_name": "Совушка Новости",
            "username": "sovushka_news_bot",
        }
        for day in range(days):
            at = start + timedelta(days=day, hours=rng.uniform(10, 20))
            self.emit(
                at,
                "telegram",
                {
                    "update_id": 0,
                    "message": {
                        "message_id": self.next("tg_group_message", 3_100),
                        "from": bot,
                        "chat": group,
                        "date": int(at.timestamp()),
                        "text": self.pick(C.GROUP_POSTS),
                    },
                },
            )  # fmt: skip
            tg_users = [c for c in self.customers if c.telegram_id is not None]
            bot_user = {"id": C.TELEGRAM_BOT_ID, "is_bot": True, "first_name": C.COMPANY}
            if tg_users and self.chance(0.5):
                who = self.pick(tg_users)
                self.plant_telegram(who)
                at2 = start + timedelta(days=day, hours=rng.uniform(0, 24))
                self.emit(
                    at2,
                    "telegram",
                    {
                        "update_id": 0,
                        "my_chat_member": {
                            "chat": {"id": who.telegram_id, "first_name": who.first,
                                     "type": "private"},
                            "from": dict(who.telegram_user),
                            "date": int(at2.timestamp()),
                            "old_chat_member": {"user": bot_user, "status": "member"},
                            "new_chat_member": {"user": bot_user, "status": "kicked",
                                                "until_date": 0},
                        },
                    },
                )  # fmt: skip
            vk_users = [c for c in self.customers if c.vk_id is not None]
            if vk_users:
                who = self.pick(vk_users)
                self.plant_id(str(who.vk_id))
                self.vk_event(start + timedelta(days=day, hours=rng.uniform(8, 23)), "group_join",
                              {"user_id": who.vk_id, "join_type": "join"})  # fmt: skip

    def crm_changes(self, start: datetime, end: datetime) -> None:
        """Mid-week profile changes: prospects who bought something, a churned customer, a
        messenger account added to a profile. (VIP upgrades are planned with the tickets.)"""
        rng = self.rng
        unknown = [c for c in self.customers if not c.in_crm and c.contacts]
        for cust in unknown[: max(1, len(unknown) // 12)]:
            at = min(cust.contacts) + _s(rng.uniform(2 * 3600, 30 * 3600))
            if at < end:
                cust.customer_id = f"crm-{900_000 + cust.key}"
                self.emit(at, "crm", self.crm_payload(cust, "active"))
        actives = [
            c for c in self.customers if c.in_crm and c.tier == "active" and c.vip_from is None
        ]
        if actives:
            cust = self.pick(actives)
            at = start + (end - start) * rng.uniform(0.3, 0.9)
            self.emit(at, "crm", self.crm_payload(cust, "active", status="churned"))
        hidden = [c for c in self.customers if c.in_crm and not c.crm_lists_messengers
                  and (c.telegram_id or c.vk_id or c.wa_id)]  # fmt: skip
        for cust in hidden[:2]:
            cust.crm_lists_messengers = True
            at = start + (end - start) * rng.uniform(0.2, 0.8)
            self.emit(at, "crm", self.crm_payload(cust, "vip" if cust.is_vip(at) else cust.tier))

    def malformed(self, kind: str, at: datetime) -> None:
        """One record broken in the way ``kind`` names."""
        rng = self.rng
        h = self.h
        known = [conv for when, conv in self.opened if when < at - timedelta(minutes=1)]
        conv = self.pick(known) if known else None
        if kind in ("score_out_of_range", "unknown_agent_type") and conv is None:
            kind = "unknown_source"
        if kind == "bad_json":
            full = dump_record(
                {"at": self.stamp(at, "chat"), "source": "chat",
                 "payload": {"session_id": f"cs_{self.hex(16)}", "message_id": "cm_1",
                             "visitor": {"id": f"v_{self.hex(8)}"},
                             "text": "Здравствуйте, у меня вопрос"}}
            )  # fmt: skip
            raw = (
                full[: rng.randrange(20, len(full) - 5)]
                if rng.random() < 0.7
                else full.replace('"', "'")
            )
            self.emit_raw(at, raw, kind)
            return
        payload: Any
        source = {
            "unknown_source": "instagram",
            "missing_fields": "",
            "score_out_of_range": "survey",
            "broken_mime": "email",
            "whatsapp_wrong_object": "whatsapp",
            "unknown_conversation": "agent",
            "unknown_agent_type": "agent",
            "unknown_crm_tier": "crm",
            "survey_unknown_conversation": "survey",
        }[kind]
        if kind == "unknown_source":
            payload = {
                "id": str(rng.randrange(10**17, 10**18)),
                "text": "Здравствуйте! Где мой заказ?",
            }
        elif kind == "missing_fields":
            source, payload = self.pick(
                (
                    ("phone", {"call_id": self.hex(12), "callee": C.CALL_CENTRE_NUMBER,
                               "status": "missed", "started_at": self.stamp(at, "phone"),
                               "duration_s": 0}),
                    ("chat", {"message_id": "cm_0", "visitor": {"id": "v_0"}, "text": "Есть кто?"}),
                    ("form", {"submission_id": f"sub_{self.hex(6)}", "form_id": C.DEFAULT_FORM_ID,
                              "name": "Тест"}),
                    ("survey", {"conversation_id": conv or "chat:cs_unknown", "kind": "csat"}),
                )
            )  # fmt: skip
        elif kind == "score_out_of_range":
            score_kind, score = self.pick(
                (("csat", 0), ("csat", 6), ("nps", 11), ("nps", -1), ("csat", 10))
            )
            payload = {"conversation_id": conv, "kind": score_kind, "score": score}
        elif kind == "broken_mime":
            payload = self.pick(
                (
                    "",
                    "Subject: =?utf-8?B?0J/RgNC+0LHQu9C10LzQsA==?=\r\n"
                    "MIME-Version: 1.0\r\n\r\nбез отправителя",
                )
            )
        elif kind == "whatsapp_wrong_object":
            payload = {
                "object": self.pick(("instagram", "page")),
                "entry": [{"id": WABA_ID, "time": int(at.timestamp()) * 1000,
                           "messaging": [{"sender": {"id": str(rng.randrange(10**15, 10**16))},
                                          "message": {"mid": self.hex(24),
                                                      "text": "Здравствуйте"}}]}],
            }  # fmt: skip
        elif kind == "unknown_conversation":
            payload = {"type": "reply", "conversation_id": f"telegram:{h('ghost-' + self.hex(8))}",
                       "agent_id": self.pick(C.AGENTS), "public": True}  # fmt: skip
        elif kind == "unknown_agent_type":
            payload = {"type": self.pick(("escalate", "merge", "call")), "conversation_id": conv,
                       "agent_id": self.pick(C.AGENTS)}  # fmt: skip
        elif kind == "unknown_crm_tier":
            cust = self.customer()
            payload = self.crm_payload(cust, "gold")
        else:
            payload = {"conversation_id": f"chat:cs_{self.hex(16)}", "kind": "csat", "score": 5}
        self.emit(at, source, payload, malformed=kind)


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------


def _open_times(rng: random.Random, start: datetime, days: int, count: int) -> list[datetime]:
    """``count`` instants spread like real traffic: weekdays busier, nights quiet."""
    local_start = start.astimezone(MSK)
    day_weights = [DAY_WEIGHTS[(local_start + timedelta(days=d)).weekday()] for d in range(days)]
    floor = start + timedelta(minutes=15)
    out: list[datetime] = []
    while len(out) < count:
        day = rng.choices(range(days), day_weights)[0]
        hour = rng.choices(range(24), HOUR_WEIGHTS)[0]
        midnight = (local_start + timedelta(days=day)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        at = midnight + timedelta(hours=hour, seconds=rng.randrange(3600))
        if floor <= at < start + timedelta(days=days):
            out.append(at)
    out.sort()
    return out


def generate_week(
    start: datetime,
    seed: int,
    tickets: int = 400,
    *,
    pii_key: str = DEV_PII_KEY,
    malformed: int = 12,
    days: int = 7,
) -> GeneratedTraffic:
    """``days`` days of traffic from ``start`` (aware) with about ``tickets`` stories, each opening
    a ticket (follow-ups after the reopen window open more), plus ``malformed`` broken records.
    ``pii_key`` must be the key the pipeline will use, as conversation ids are keyed hashes."""
    if start.tzinfo is None:
        raise ValueError("start must be an aware datetime")
    if tickets < 0 or malformed < 0 or days < 1:
        raise ValueError("tickets and malformed must be >= 0 and days >= 1")
    rng = random.Random(seed)
    end = start + timedelta(days=days)
    engine = _Engine(rng, pii_key, start, end)
    engine.populate(max(12, int(tickets * 0.8)))
    span = end - start

    # Planned stories: a few active customers become VIP mid-week and contact us before and after.
    actives = [c for c in engine.customers if c.in_crm and c.tier == "active"]
    rng.shuffle(actives)
    planned: list[tuple[datetime, _Customer | None]] = []
    for cust in actives[: max(1, tickets // 130)] if tickets >= 2 else []:
        upgrade = _next_office(start + span * rng.uniform(0.35, 0.55))
        if upgrade >= end:
            continue
        cust.vip_from = upgrade
        engine.emit(upgrade, "crm", engine.crm_payload(cust, "vip"))
        planned.append((start + span * rng.uniform(0.05, 0.3), cust))
        planned.append((upgrade + (end - upgrade) * rng.uniform(0.1, 0.5), cust))

    engine.crm_snapshot(start)
    opens = [(at, None) for at in _open_times(rng, start, days, max(0, tickets - len(planned)))]
    story_plan: list[tuple[datetime, _Customer | None]] = sorted(
        [*opens, *planned], key=lambda item: item[0]
    )
    for at, who in story_plan:
        engine.open_ticket(at, who)
    engine.noise(start, days)
    engine.crm_changes(start, end)
    engine.shifts(start, days, random.Random(f"shifts:{seed}"))

    for index in range(malformed):
        kind = (
            MALFORMED_KINDS[index] if index < len(MALFORMED_KINDS) else engine.pick(MALFORMED_KINDS)
        )
        at = start + timedelta(hours=1) + (span - timedelta(hours=2)) * rng.random()
        at = at.replace(microsecond=0)
        engine.malformed(kind, at)

    # Drawn last, so the rest of the week is the same with or without it.
    spike = outage_spike(engine, start, days) if tickets >= SPIKE_MIN_TICKETS else 0
    return _finish(engine, len(story_plan) + spike)


SPIKE_MIN_TICKETS = 40
"""Weeks of at least this many stories carry an outage spike."""
SPIKE_STORIES = 8
SPIKE_CHANNELS = ("chat", "telegram", "email", "whatsapp")
"""Where customers tell of an outage in the spike (channels on which the demo rules file
``outage``; a call or a form about it would be ``bug`` or ``other``)."""


def outage_spike(engine: _Engine, start: datetime, days: int) -> int:
    """The site goes down one weekday late morning: ``SPIKE_STORIES`` different customers
    write about it within 40 minutes, which opens an incident under the demo rules
    (``incidents``: 6 customers within an hour, CONTRACT §7). Returns the stories planned."""
    rng = engine.rng
    local_start = start.astimezone(MSK)
    day = min(2, days - 1)  # the third day of the week (a Wednesday for a Monday start)
    at = (local_start + timedelta(days=day)).replace(hour=11, minute=5, second=0, microsecond=0)
    at += timedelta(seconds=rng.randrange(600))
    people = rng.sample(engine.customers, min(SPIKE_STORIES, len(engine.customers)))
    for who in people:
        at += timedelta(seconds=rng.randrange(60, 300))
        engine.open_ticket(at, who, outage_on=SPIKE_CHANNELS)
    return len(people)


def _finish(engine: _Engine, planned: int) -> GeneratedTraffic:
    entries = sorted(engine.entries, key=lambda e: (e.at, e.seq))
    sequencer = _Sequencer()
    for entry in entries:
        if entry.record is not None and entry.malformed is None:
            sequencer(entry.record)
    records = [e.record for e in entries if e.record is not None]
    malformed = [
        Malformed(e.malformed, e.raw if e.raw is not None else dump_record(e.record or {}))
        for e in entries
        if e.malformed is not None
    ]
    return GeneratedTraffic(
        records=records,
        planted_pii=list(engine.pii),
        planted_ids=list(engine.ids),
        malformed=malformed,
        stories=planned,
        tickets=_ledger(entries),
        _entries=[(e.record, e.raw) for e in entries],
    )


def _ledger(entries: Sequence[_Entry]) -> list[PlannedTicket]:
    """The planned tickets with the tier the CRM gives each opening contact. CRM records replace
    a profile from their ``at`` on; an identity belongs to the latest profile that names it
    (a replaced profile releases the identities it no longer names)."""
    profiles: dict[str, tuple[str, list[str]]] = {}  # customer_id -> (tier, identities)
    owner: dict[str, str] = {}  # "kind:value" -> customer_id
    tickets: list[PlannedTicket] = []
    for entry in entries:
        record = entry.record
        if record is not None and entry.malformed is None and record["source"] == "crm":
            payload = record["payload"]
            customer_id = payload["customer_id"]
            for key in profiles.get(customer_id, ("", []))[1]:
                if owner.get(key) == customer_id:
                    del owner[key]
            keys = [f"{kind}:{value}" for kind, values in payload["identities"].items()
                    for value in values]  # fmt: skip
            profiles[customer_id] = (payload["tier"], keys)
            for key in keys:
                owner[key] = customer_id
        opening = entry.opening
        if opening is None:
            continue
        tier = next(
            (profiles[owner[key]][0] for key in opening.identities if key in owner), "prospect"
        )
        tickets.append(
            PlannedTicket(
                conversation_id=opening.conversation_id,
                number=opening.number,
                channel=opening.channel,
                category=opening.category,
                kind=opening.kind,
                tier_at_opening=tier,
                opened_at=entry.at,
                customer_key=opening.customer_key,
            )
        )
    return tickets


STREAM_LEAD = timedelta(minutes=2)
"""How long after ``start`` the stream's stories begin: the CRM snapshot comes first."""


def generate_stream(
    start: datetime,
    seed: int,
    *,
    tickets_per_hour: float = 120.0,
    pii_key: str = DEV_PII_KEY,
    customers: int = 300,
    malformed_share: float = 0.02,
    diurnal: bool = False,
) -> Iterator[Record]:
    """Endless records from ``start``: stories open at ``tickets_per_hour`` on average (Poisson
    arrivals; with ``diurnal`` the rate follows the hours of a Moscow day), each unfolding exactly
    as in ``generate_week``. Records come in ``at`` order; about ``malformed_share`` of the stories
    bring a broken record along (never bad JSON: this yields objects). The CRM snapshot comes
    first. Consumers that pace by wall clock can sleep until each record's ``at``."""
    if start.tzinfo is None:
        raise ValueError("start must be an aware datetime")
    if tickets_per_hour <= 0:
        raise ValueError("tickets_per_hour must be positive")
    rng = random.Random(seed)
    engine = _Engine(rng, pii_key, start, None)
    engine.track = False
    engine.populate(max(12, customers))
    engine.crm_snapshot(start)
    heap: list[tuple[datetime, int, _Entry]] = []
    sequencer = _Sequencer()
    kinds = [k for k in MALFORMED_KINDS if k != "bad_json"]
    peak = max(HOUR_WEIGHTS)
    mean_gap = 3600.0 / tickets_per_hour
    at = start + STREAM_LEAD
    while True:
        at += timedelta(seconds=round(rng.expovariate(1.0) * mean_gap, 3))
        if diurnal and rng.random() > HOUR_WEIGHTS[at.astimezone(MSK).hour] / peak:
            continue
        engine.open_ticket(at)
        if rng.random() < malformed_share:
            engine.malformed(engine.pick(kinds), at + timedelta(seconds=rng.randrange(1, 120)))
        for entry in engine.entries:
            if entry.record is not None:
                heapq.heappush(heap, (entry.at, entry.seq, entry))
        engine.entries = []
        if len(engine.opened) > 2000:
            del engine.opened[:1000]
        # Every later story starts after ``at`` (a VK "typing" event may precede its message by
        # seconds), so whatever is due a minute before is final.
        watermark = at - timedelta(minutes=1)
        while heap and heap[0][0] <= watermark:
            entry = heapq.heappop(heap)[2]
            assert entry.record is not None
            if entry.malformed is None:
                sequencer(entry.record)
            yield entry.record


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.generator",
        description="Deterministic multi-channel support traffic as JSON Lines (CONTRACT §1).",
    )
    parser.add_argument(
        "--start", required=True, help="RFC 3339 start, e.g. 2026-03-02T00:00:00+03:00"
    )
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--tickets", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--malformed", type=int, default=12)
    parser.add_argument(
        "--pii-key",
        default=None,
        help="key of the conversation-id pseudonyms "
        "(default: $SUPPORTSTREAM_PII_KEY, else the development key)",
    )
    parser.add_argument("--out", default="-", help="output file ('-' for stdout)")
    args = parser.parse_args(argv)
    try:
        start = datetime.fromisoformat(args.start.replace("Z", "+00:00"))
    except ValueError:
        parser.error(f"--start: not an RFC 3339 timestamp: {args.start!r}")
    if start.tzinfo is None:
        parser.error("--start needs an offset, e.g. 2026-03-02T00:00:00+03:00")
    if args.days < 1 or args.tickets < 0 or args.malformed < 0:
        parser.error("--days must be >= 1, --tickets and --malformed >= 0")
    pii_key = args.pii_key or os.environ.get("SUPPORTSTREAM_PII_KEY") or DEV_PII_KEY
    traffic = generate_week(
        start, args.seed, args.tickets, pii_key=pii_key, malformed=args.malformed, days=args.days
    )
    if args.out == "-":
        for line in traffic.lines():
            sys.stdout.write(line + "\n")
        written = len(traffic._entries)
    else:
        written = traffic.write_jsonl(args.out)
    summary = ", ".join(f"{source} {count}" for source, count in traffic.counts().items())
    print(
        f"{written} records ({len(traffic.malformed)} malformed): {summary}",
        file=sys.stderr,
    )
    if pii_key == DEV_PII_KEY:
        print("conversation ids use the development PII key", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
