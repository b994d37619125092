"""The traffic generator produces a deterministic, realistic week in the format of CONTRACT §1.

Conversation ids and e-mail threading are recomputed here independently (plain ``hmac``, the
contract's threading rule) rather than through the generator's own helpers.
"""

from __future__ import annotations

import email
import hashlib
import hmac
import json
import re
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from loadtest import corpus as C
from loadtest.generator import (
    MALFORMED_KINDS,
    GeneratedTraffic,
    generate_stream,
    generate_week,
    main,
)

START = datetime.fromisoformat("2026-03-02T00:00:00+03:00")  # a Monday
KEY = "supportstream-dev-key"
SOURCES = {
    "telegram",
    "whatsapp",
    "email",
    "chat",
    "form",
    "vk",
    "phone",
    "agent",
    "survey",
    "crm",
    "qa",
}
MSK = timezone(timedelta(hours=3))


def h(text: str, key: str = KEY) -> str:
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()[:20]


def parse_at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def norm_id(raw: str) -> str:
    return raw.strip().strip("<>").strip().lower()


def ids_of(header: str | None) -> list[str]:
    return [norm_id(x) for x in re.findall(r"<[^<>]+>", header or "")]


def parse_mail(text: str) -> EmailMessage:
    message = email.message_from_string(text, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def mail_text(message: EmailMessage) -> str:
    """Headers (decoded) and every text part (transfer encoding undone)."""
    parts = [f"{name}: {value}" for name, value in message.items()]
    for part in message.walk():
        if part.get_content_maintype() == "text":
            parts.append(part.get_content())
    return "\n".join(parts)


@pytest.fixture(scope="module")
def week() -> GeneratedTraffic:
    return generate_week(START, seed=7, tickets=400)


@pytest.fixture(scope="module")
def good(week: GeneratedTraffic) -> list[dict[str, Any]]:
    """The records meant to be understood, in file order."""
    broken = {m.line for m in week.malformed}
    return [json.loads(line) for line in week.lines() if line not in broken]


def test_same_seed_gives_identical_lines(week: GeneratedTraffic) -> None:
    again = generate_week(START, seed=7, tickets=400)
    assert list(again.lines()) == list(week.lines())
    assert again.planted_pii == week.planted_pii
    assert list(generate_week(START, seed=8, tickets=400).lines()) != list(week.lines())


def test_four_hundred_tickets_generate_quickly() -> None:
    began = time.perf_counter()
    generate_week(START, seed=3, tickets=400)
    assert time.perf_counter() - began < 2.0


def test_every_source_and_variant_is_present(good: list[dict[str, Any]]) -> None:
    assert {r["source"] for r in good} == SOURCES
    payloads = defaultdict(list)
    for record in good:
        payloads[record["source"]].append(record["payload"])
    assert {p["type"] for p in payloads["vk"]} >= {"message_new", "wall_reply_new"}
    assert {p["status"] for p in payloads["phone"]} == {"answered", "missed", "voicemail"}
    assert any("transcript" in p for p in payloads["phone"])
    assert {p["type"] for p in payloads["agent"]} == {
        "reply",
        "note",
        "status",
        "assign",
        "presence",
    }
    assert {p["status"] for p in payloads["agent"] if p["type"] == "status"} == {
        "open",
        "pending",
        "solved",
    }
    assert any(p["type"] == "reply" and p.get("public") is False for p in payloads["agent"])
    assert {p["kind"] for p in payloads["survey"]} == {"csat", "nps"}
    # QA reviews (CONTRACT §7): scores 0..1 or N/A on the demo scorecard, some with comments
    scores = [p["scores"] for p in payloads["qa"]]
    assert all(set(s) == {"solution", "tone", "greeting"} for s in scores)
    assert all(v is None or 0 <= v <= 1 for s in scores for v in s.values())
    assert any(s["greeting"] is None for s in scores)
    assert any("comment" in p for p in payloads["qa"])
    assert {p["tier"] for p in payloads["crm"]} == {"prospect", "active", "vip"}
    # Telegram: photos with captions, bot messages and updates that are not messages
    telegram = payloads["telegram"]
    assert any("caption" in p.get("message", {}) for p in telegram)
    assert any(p.get("message", {}).get("from", {}).get("is_bot") for p in telegram)
    assert any("edited_message" in p for p in telegram)
    assert any("callback_query" in p for p in telegram)
    # WhatsApp: delivery receipts, and bodies with more than one message
    values = [c["value"] for p in payloads["whatsapp"] for e in p["entry"] for c in e["changes"]]
    assert any("statuses" in v and "messages" not in v for v in values)
    assert any(len(v.get("messages", [])) > 1 for v in values)


def test_customer_upgraded_to_vip_mid_week(good: list[dict[str, Any]]) -> None:
    tiers: dict[str, list[str]] = defaultdict(list)
    for record in good:
        if record["source"] == "crm":
            tiers[record["payload"]["customer_id"]].append(record["payload"]["tier"])
    assert any(history[:2] == ["active", "vip"] for history in tiers.values())


def test_malformed_records_are_counted_and_of_every_kind(week: GeneratedTraffic) -> None:
    assert len(week.malformed) == 12
    assert {m.kind for m in week.malformed} == set(MALFORMED_KINDS)
    lines = list(week.lines())
    assert all(m.line in lines for m in week.malformed)
    for m in week.malformed:
        if m.kind == "bad_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(m.line)
    assert len(generate_week(START, seed=7, tickets=50, malformed=3).malformed) == 3
    assert generate_week(START, seed=7, tickets=50, malformed=0).malformed == []


def test_lines_are_json_with_the_contract_keys_sorted_by_at(
    week: GeneratedTraffic, good: list[dict[str, Any]]
) -> None:
    assert len(good) == len(list(week.lines())) - len(week.malformed)
    instants = []
    offsets: Counter[str] = Counter()
    for record in good:
        assert set(record) == {"at", "source", "payload"}
        at = parse_at(record["at"])
        assert at.tzinfo is not None
        offsets["Z" if record["at"].endswith("Z") else record["at"][-6:]] += 1
        instants.append(at)
    assert instants == sorted(instants)
    assert instants[0] >= START and instants[-1] < START + timedelta(days=7)
    assert offsets["+03:00"] > offsets["Z"] > 0


def test_every_planted_value_appears_in_the_output(
    week: GeneratedTraffic, good: list[dict[str, Any]]
) -> None:
    texts = []
    for record in good:
        if record["source"] == "email":
            texts.append(mail_text(parse_mail(record["payload"])))
        else:
            texts.append(json.dumps(record["payload"], ensure_ascii=False))
    texts += [m.line for m in week.malformed]
    text = "\n".join(texts)
    missing = [value for value in (*week.planted_pii, *week.planted_ids) if value not in text]
    assert missing == []
    pii = week.planted_pii
    assert any(re.fullmatch(r"\+7 \(\d{3}\) \d{3}-\d\d-\d\d", v) for v in pii)
    assert any(re.fullmatch(r"8\d{10}", v) for v in pii)
    assert any(v.startswith("@") for v in pii)
    assert any(v.startswith("vk.com/id") for v in pii)
    assert any(v.startswith("wa.me/") for v in pii)
    assert any(re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]+", v) for v in pii)
    cards = [v for v in pii if re.fullmatch(r"\d{4}([ -]?)\d{4}\1\d{4}\1\d{4}", v)]
    assert any(" " in c for c in cards) and any("-" in c for c in cards)
    assert all(luhn(c) for c in cards)


def luhn(number: str) -> bool:
    digits = [int(d) for d in number if d.isdigit()]
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def test_emails_parse_and_reply_chains_reference_earlier_ids(good: list[dict[str, Any]]) -> None:
    known: set[str] = set()
    agent_ids: set[str] = set()
    answers_to_agents = 0
    shapes: Counter[str] = Counter()
    for record in good:
        payload = record["payload"]
        if record["source"] == "agent" and payload.get("message_id"):
            known.add(norm_id(payload["message_id"]))
            agent_ids.add(norm_id(payload["message_id"]))
        if record["source"] != "email":
            continue
        message = parse_mail(payload)
        assert message["From"] and "@" in message["From"]
        assert message["Message-ID"]
        body = message.get_body(preferencelist=("plain", "html"))
        assert body is not None and body.get_content().strip()
        shapes[message.get_content_type()] += 1
        shapes[str(body.get("Content-Transfer-Encoding", "7bit")).lower()] += 1
        referenced = ids_of(message["References"]) + ids_of(message["In-Reply-To"])
        if referenced:
            if not any(i in known for i in referenced):  # only order notifications are unknown
                assert all(i.endswith("@notify.sovushka.example") for i in referenced)
            answers_to_agents += any(i in agent_ids for i in referenced)
        known.add(norm_id(message["Message-ID"]))
    assert answers_to_agents >= 10
    assert shapes["multipart/alternative"] and shapes["multipart/mixed"] and shapes["text/html"]
    assert shapes["quoted-printable"] and shapes["base64"]


def contact_conversations(record: dict[str, Any], ids: dict[str, str], key: str = KEY) -> list[str]:
    """The conversation ids of a customer contact, computed as CONTRACT §1 says."""
    source, p = record["source"], record["payload"]
    if source == "telegram":
        message = p.get("message")
        if message and not message["from"]["is_bot"]:
            return [f"telegram:{h(str(message['chat']['id']), key)}"]
    elif source == "whatsapp":
        if p["object"] == "whatsapp_business_account":
            return [
                f"whatsapp:{h(m['from'], key)}"
                for e in p["entry"]
                for c in e["changes"]
                for m in c["value"].get("messages", [])
            ]
    elif source == "email":
        message = parse_mail(p)
        refs, replies = ids_of(message["References"]), ids_of(message["In-Reply-To"])
        own = norm_id(message["Message-ID"])
        for candidate in (*refs, *replies):
            if candidate in ids:
                conv = ids[candidate]
                break
        else:
            conv = f"email:{h((refs or replies or [own])[0], key)}"
        ids.setdefault(own, conv)
        return [conv]
    elif source == "vk":
        if p["type"] == "message_new":
            return [f"vk:dm:{h(str(p['object']['message']['from_id']), key)}"]
        if p["type"] == "wall_reply_new":
            o = p["object"]
            return [f"vk:wall:{o['post_owner_id']}_{o['post_id']}:{h(str(o['from_id']), key)}"]
    elif source == "chat":
        return [f"chat:{p['session_id']}"]
    elif source == "form":
        return [f"form:{p['submission_id']}"]
    elif source == "phone":
        return [f"phone:{h('+' + re.sub(r'[^0-9]', '', p['caller']), key)}"]
    return []


def named_conversations(
    records: list[dict[str, Any]], key: str = KEY
) -> tuple[Counter[str], set[str]]:
    """Checks that every agent and survey record names a conversation some earlier contact
    has; returns the channels named and all conversations."""
    conversations: set[str] = set()
    ids: dict[str, str] = {}
    named: Counter[str] = Counter()
    for record in records:
        conversations.update(contact_conversations(record, ids, key))
        if record["source"] in ("agent", "survey") and record["payload"].get("type") != "presence":
            conv = record["payload"]["conversation_id"]
            assert conv in conversations, record
            named[conv.split(":")[0]] += 1
            message_id = record["payload"].get("message_id")
            if message_id:
                ids.setdefault(norm_id(message_id), conv)
    return named, conversations


def test_agent_and_survey_records_name_conversations_by_the_channel_formula(
    week: GeneratedTraffic, good: list[dict[str, Any]]
) -> None:
    named, conversations = named_conversations(good)
    assert set(named) == {"telegram", "whatsapp", "email", "chat", "form", "vk", "phone"}
    for m in week.malformed:
        if m.kind in ("unknown_conversation", "survey_unknown_conversation"):
            assert json.loads(m.line)["payload"]["conversation_id"] not in conversations


def test_conversation_ids_follow_the_pii_key() -> None:
    other = generate_week(START, seed=11, tickets=120, pii_key="another-key", malformed=0)
    named, _ = named_conversations(other.records, "another-key")
    assert sum(named.values()) > 100
    with pytest.raises(AssertionError):
        named_conversations(other.records)  # the dev key gives other ids


def stories(good: list[dict[str, Any]]) -> dict[str, list[tuple[datetime, str]]]:
    """Per conversation, its events in order: "in" (a contact) or the agent's action."""
    ids: dict[str, str] = {}
    out: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for record in good:
        at = parse_at(record["at"])
        for conv in contact_conversations(record, ids):
            out[conv].append((at, "in"))
        p = record["payload"]
        if record["source"] == "agent" and p["type"] != "presence":
            if p.get("message_id"):
                ids.setdefault(norm_id(p["message_id"]), p["conversation_id"])
            label = p["type"]
            if p["type"] == "status":
                label = p["status"]
            elif p["type"] == "reply" and p.get("public", True):
                label = "public_reply"
            out[p["conversation_id"]].append((at, label))
        if record["source"] == "phone" and p["status"] == "answered":
            out[contact_conversations(record, ids)[0]].append((at, "public_reply"))
    return out


def test_stories_have_pending_reopens_follow_ups_and_slow_answers(
    good: list[dict[str, Any]],
) -> None:
    pending_answered = reopened = followed_up = 0
    first_responses: list[timedelta] = []
    for events in stories(good).values():
        first_in = next((at for at, label in events if label == "in"), None)
        first_reply = next((at for at, label in events if label == "public_reply"), None)
        if first_in and first_reply and first_reply > first_in:
            local = first_in.astimezone(MSK)
            if local.weekday() < 5 and 9 <= local.hour < 17:
                first_responses.append(first_reply - first_in)
        state, solved_at = "", None
        for at, label in events:
            if label == "in" and state == "pending":
                pending_answered += 1
            if label == "in" and state == "solved" and solved_at is not None:
                if at - solved_at <= timedelta(hours=72):
                    reopened += 1
                else:
                    followed_up += 1
            if label in ("open", "pending", "solved"):
                state, solved_at = label, at if label == "solved" else solved_at
            elif label == "in" and state in ("pending", "solved"):
                state = "open"
    assert pending_answered >= 20
    assert reopened >= 10
    assert followed_up >= 3
    within_hour = sum(d <= timedelta(hours=1) for d in first_responses) / len(first_responses)
    assert 0.5 < within_hour < 0.97  # mostly on time, but SLA breaches do happen


def test_contacts_arrive_at_night_and_at_weekends(good: list[dict[str, Any]]) -> None:
    local = [
        parse_at(r["at"]).astimezone(MSK)
        for r in good
        if r["source"] in ("telegram", "whatsapp", "email", "chat", "form", "vk", "phone")
    ]
    assert sum(t.weekday() >= 5 for t in local) > 20
    assert sum(t.hour < 7 for t in local) > 5


def test_stream_yields_ordered_contract_records() -> None:
    def take(n: int) -> list[dict[str, Any]]:
        stream = generate_stream(START, seed=5, tickets_per_hour=600)
        return [next(stream) for _ in range(n)]

    records = take(1500)
    assert records == take(1500)
    assert all(set(r) == {"at", "source", "payload"} for r in records)
    instants = [parse_at(r["at"]) for r in records]
    assert instants == sorted(instants)
    contacts = [r for r in records if r["source"] not in ("crm", "agent", "survey")]
    assert {r["source"] for r in contacts} >= {"telegram", "email", "chat", "phone"}
    after_snapshot = [t for r, t in zip(records, instants, strict=True) if r["source"] != "crm"]
    assert after_snapshot[-1] - after_snapshot[0] > timedelta(minutes=30)


def test_cli_writes_the_same_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "week.jsonl"
    code = main(
        [
            "--start", "2026-03-02T00:00:00+03:00", "--days", "2", "--tickets", "40",
            "--seed", "1", "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    expected = generate_week(START, seed=1, tickets=40, days=2)
    assert out.read_text(encoding="utf-8").splitlines() == list(expected.lines())
    assert "malformed" in capsys.readouterr().err


def test_agents_work_shifts_and_the_vip_line_stays_online(good: list[dict[str, Any]]) -> None:
    presence: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for record in good:
        p = record["payload"]
        if record["source"] == "agent" and p["type"] == "presence":
            presence[p["agent_id"]].append((parse_at(record["at"]).astimezone(MSK), p["status"]))
    assert "a.ivanova" not in presence  # the VIP line: online round the clock
    assert set(presence) == set(C.AGENTS) - {"a.ivanova"}
    for agent, changes in presence.items():
        assert changes[0] == (changes[0][0], "offline") and changes[0][0] < START + timedelta(
            seconds=1
        ), agent
        for at, status in changes[1:]:
            if status == "online" and at.weekday() < 5:
                assert 8 <= at.hour <= 14, (agent, at)  # morning login or back from lunch
            if status == "offline" and at.weekday() < 5:
                assert at.hour in (17, 19), (agent, at)
    # Monday morning: every office agent logs in between 08:50 and 09:15.
    logins = sorted(
        at
        for agent, changes in presence.items()
        for at, s in changes
        if s == "online" and at.date() == START.date() and at.hour < 12
    )
    assert len(logins) == 6
    assert (
        START + timedelta(hours=8, minutes=50)
        <= logins[0]
        <= logins[-1]
        <= START + timedelta(hours=9, minutes=16)
    )
    weekend = {
        agent for agent, changes in presence.items() for at, _ in changes if at.weekday() >= 5
    }
    assert weekend == {"e.kuznetsova", "i.popov"}
