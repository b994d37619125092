"""The HTTP connector against a real broker: real requests for every source, the raw topic read
back. Each accepted contact arrives once and byte-exact; refused requests publish nothing; an
authenticated JSON body of any shape is published (the parsers dead-letter it downstream); with
the broker down the answer is 503, and after it returns nothing acknowledged is missing; a
redelivered webhook is one contact downstream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from processors.ids import Pseudonymizer
from processors.model import Contact, DeadLetter, Output, RawRecord
from processors.parsing import parse_record
from processors.pii import Masker
from processors.rules import load_rules
from schemas.codec import encode
from streams.connectors.auth import whatsapp_signature
from streams.connectors.envelope import decode_raw_contact, raw_record
from streams.connectors.http import HttpConnector
from streams.connectors.publisher import KafkaPublisher
from streams.kafka_admin import ensure_topics, topic_name
from streams.local import LocalRunner
from tests.streams.connectors.conftest import (
    PII_KEY,
    connect_settings,
    h,
    pipeline_settings,
    read_topic,
)
from tests.support.broker import Broker

pytestmark = pytest.mark.integration

NOW = 1_767_600_000_000  # 2026-01-05T08:00:00Z, the injected clock

TELEGRAM = {
    "update_id": 1001,
    "message": {
        "message_id": 7,
        "from": {"id": 111, "is_bot": False, "first_name": "Иван"},
        "chat": {"id": 111, "type": "private"},
        "date": 1767600000,
        "text": "Не могу оплатить счёт",
    },
}
WHATSAPP = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "102290129340398",
            "changes": [
                {
                    "field": "messages",
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "1"},
                        "contacts": [{"profile": {"name": "Анна"}, "wa_id": "79161112233"}],
                        "messages": [
                            {
                                "from": "79161112233",
                                "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                                "timestamp": "1767600000",
                                "type": "text",
                                "text": {"body": "Здравствуйте, не могу войти"},
                            }
                        ],
                    },
                }
            ],
        }
    ],
}
VK_MESSAGE = {
    "group_id": 100,
    "type": "message_new",
    "event_id": "a1b2c3",
    "v": "5.199",
    "object": {
        "message": {
            "date": 1767600000,
            "from_id": 555,
            "id": 0,
            "peer_id": 555,
            "text": "Привет, где заказ?",
            "conversation_message_id": 3,
        },
        "client_info": {"keyboard": True},
    },
    "secret": "vk-secret",
}
VK_WALL = {
    "group_id": 100,
    "type": "wall_reply_new",
    "event_id": "d4e5f6",
    "v": "5.199",
    "object": {
        "id": 9,
        "from_id": 556,
        "post_id": 7,
        "owner_id": -100,
        "post_owner_id": -100,
        "text": "complaint: delivery late",
    },
    "secret": "vk-secret",
}
CHAT = {
    "session_id": "s-1",
    "message_id": "m-1",
    "visitor": {"id": "v-1", "email": "anna@example.com"},
    "text": "Сайт не работает!",
}
FORM = {
    "submission_id": "f-1",
    "form_id": "contact",
    "email": "petr@example.com",
    "topic": "Refund",
    "message": "Верните деньги за заказ",
}
PHONE = {
    "call_id": "c-1",
    "caller": "+7 (495) 000-11-22",
    "callee": "+74950000000",
    "status": "missed",
    "started_at": "2026-01-05T10:00:00+03:00",
    "duration_s": 0,
}
AGENT = {"type": "reply", "conversation_id": "chat:s-1", "agent_id": "anna"}
SURVEY = {"conversation_id": "chat:s-1", "kind": "csat", "score": 5}
CRM = {"customer_id": "C-1", "tier": "vip", "identities": {"email": ["anna@example.com"]}}
QA = {"ticket_id": "chat:s-1#1", "reviewer_id": "lead", "scores": {"tone": 1, "greeting": None}}


def body(payload: Any) -> bytes:
    # Pretty-printed and non-ASCII on purpose: what is published must be these very bytes.
    return json.dumps(payload, ensure_ascii=False, indent=1).encode("utf-8")


def bearer(source: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {source}-token", "Content-Type": "application/json"}


def telegram_headers(token: str = "tg-secret") -> dict[str, str]:
    return {"X-Telegram-Bot-Api-Secret-Token": token, "Content-Type": "application/json"}


def whatsapp_headers(raw: bytes, secret: str = "wa-app-secret") -> dict[str, str]:
    return {"X-Hub-Signature-256": whatsapp_signature(raw, secret)}


# (path, body, headers, expected key) for one valid request of every source
def every_source() -> list[tuple[str, bytes, dict[str, str], str]]:
    wa = body(WHATSAPP)
    return [
        ("/telegram", body(TELEGRAM), telegram_headers(), f"telegram:{h('111')}"),
        ("/whatsapp", wa, whatsapp_headers(wa), f"whatsapp:{h('79161112233')}"),
        ("/vk", body(VK_MESSAGE), {}, f"vk:dm:{h('555')}"),
        ("/vk", body(VK_WALL), {}, f"vk:wall:-100_7:{h('556')}"),
        ("/chat", body(CHAT), bearer("chat"), "chat:s-1"),
        ("/form", body(FORM), bearer("form"), "form:f-1"),
        ("/phone", body(PHONE), bearer("phone"), f"phone:{h('+74950001122')}"),
        ("/agent", body(AGENT), bearer("agent"), "chat:s-1"),
        ("/survey", body(SURVEY), bearer("survey"), "chat:s-1"),
        ("/crm", body(CRM), bearer("crm"), "crm:C-1"),
        ("/qa", body(QA), bearer("qa"), "chat:s-1"),  # the reviewed ticket's conversation
    ]


Scenario = Callable[[aiohttp.ClientSession, str, HttpConnector], Awaitable[None]]


def run_connector(
    broker: Broker, scenario: Scenario, **overrides: str
) -> tuple[str, HttpConnector]:
    """Start the connector on a free port against ``broker``, run ``scenario``, stop it."""
    settings = pipeline_settings(broker.bootstrap)
    ensure_topics(broker.bootstrap, settings)
    topic = topic_name(settings, "raw-contacts")
    connect = connect_settings(**overrides)
    holder: list[HttpConnector] = []

    async def main() -> None:
        publisher = KafkaPublisher(broker.bootstrap, timeout_s=connect.publish_timeout_s)
        connector = HttpConnector(
            connect,
            publisher,
            topic=topic,
            pseudo=Pseudonymizer.from_text(PII_KEY),
            registry=CollectorRegistry(),
            clock=lambda: NOW,
        )
        holder.append(connector)
        port = await connector.start("127.0.0.1", 0)
        try:
            async with aiohttp.ClientSession() as session:
                await scenario(session, f"http://127.0.0.1:{port}", connector)
        finally:
            await connector.stop()

    asyncio.run(main())
    return topic, holder[0]


def test_every_source_arrives_once_byte_exact(kafka_broker: Broker) -> None:
    requests = every_source()

    async def scenario(session: aiohttp.ClientSession, url: str, _connector: HttpConnector) -> None:
        async with session.get(
            url + "/whatsapp",
            params={
                "hub.mode": "subscribe",
                "hub.verify_token": "wa-verify",
                "hub.challenge": "1158201444",
            },
        ) as answer:
            assert answer.status == 200
            assert await answer.text() == "1158201444"
        for path, raw, headers, key in requests:
            async with session.post(url + path, data=raw, headers=headers) as answer:
                text = await answer.text()
                assert answer.status == 200, (path, text)
                if path == "/vk":
                    assert text == "ok"  # the Callback API wants exactly this
                else:
                    assert json.loads(text) == {"status": "accepted", "conversation_id": key}

    topic, connector = run_connector(kafka_broker, scenario)
    got = read_topic(kafka_broker.bootstrap, topic, expect=len(requests))
    assert len(got) == len(requests)
    by_payload = {record["payload"]: (key, name, record) for key, name, record, _ in got}
    assert len(by_payload) == len(requests)  # each exactly once
    for path, raw, _, key in requests:
        got_key, name, record = by_payload[raw.decode("utf-8")]  # byte-exact payload
        assert name == "raw_contact"
        assert got_key == key
        assert record["source"] == path.strip("/")
        assert record["at"] == record["received_at"] == NOW
        assert record["connector"] == "test-connector"
        assert record["content_type"] == "application/json"
    ids = {record["source"]: record["channel_message_id"] for _, _, record, _ in got}
    assert ids["telegram"] == "111:7"
    assert ids["whatsapp"].startswith("wamid.")
    assert ids["chat"] == "s-1:m-1"
    # One conversation, one partition: the agent and survey records follow the chat's contact.
    partitions = {p for key, _, _, p in got if key == "chat:s-1"}
    assert len(partitions) == 1
    registry = connector.metrics.registry
    assert registry.get_sample_value("supportstream_contacts_total", {"channel": "telegram"}) == 1
    assert registry.get_sample_value("supportstream_contacts_total", {"channel": "vk"}) == 2
    assert (
        registry.get_sample_value(
            "supportstream_connector_requests_total", {"source": "crm", "code": "200"}
        )
        == 1
    )


def test_refused_requests_publish_nothing(kafka_broker: Broker) -> None:
    huge = dict(CHAT, text="x" * 30_000)  # over the 20 000 bytes configured
    wa = body(WHATSAPP)
    cases: list[tuple[str, bytes, dict[str, str], int, str]] = [
        ("/telegram", body(TELEGRAM), {}, 401, "missing X-Telegram-Bot-Api-Secret-Token"),
        ("/telegram", body(TELEGRAM), telegram_headers("guess"), 403, "wrong"),
        ("/whatsapp", wa, {}, 401, "missing X-Hub-Signature-256"),
        ("/whatsapp", wa, whatsapp_headers(wa, "other-secret"), 403, "does not match"),
        ("/whatsapp", wa + b" ", whatsapp_headers(wa), 403, "does not match"),
        ("/vk", body(dict(VK_MESSAGE, secret="guess")), {}, 403, "wrong secret"),
        (
            "/vk",
            body({"type": "confirmation", "group_id": 100, "secret": "guess"}),
            {},
            403,
            "wrong",
        ),
        ("/vk", body({k: v for k, v in VK_MESSAGE.items() if k != "secret"}), {}, 401, "missing"),
        ("/chat", body(CHAT), {}, 401, "missing Authorization"),
        ("/chat", body(CHAT), bearer("form"), 403, "wrong bearer token"),
        ("/chat", b'{"session_id": "s-1", ', bearer("chat"), 400, "invalid json"),
        ("/chat", b"\xff\xfe{}", bearer("chat"), 400, "not valid UTF-8"),
        (
            "/survey",
            b'{"conversation_id": "c", "kind": "nps", "score": NaN}',
            bearer("survey"),
            400,
            "NaN",
        ),
        ("/qa", body(QA), bearer("survey"), 403, "wrong bearer token"),
        ("/chat", body(huge), bearer("chat"), 413, "body too large"),
        ("/form", body(FORM), bearer("form"), 404, "not enabled"),
    ]

    async def scenario(session: aiohttp.ClientSession, url: str, _connector: HttpConnector) -> None:
        for path, raw, headers, status, reason in cases:
            async with session.post(url + path, data=raw, headers=headers) as answer:
                assert answer.status == status, (path, status, await answer.text())
                error = await answer.json()
                assert reason in error["error"], (path, error)
                assert error["source"] == path.strip("/")

        # Chunked (no Content-Length): the limit holds while reading.
        async def chunks() -> Any:
            for _ in range(30):
                yield b"x" * 1000

        async with session.post(url + "/chat", data=chunks(), headers=bearer("chat")) as answer:
            assert answer.status == 413
        # Understood and not contacts: acknowledged, not published.
        edited = {"update_id": 1002, "edited_message": TELEGRAM["message"]}
        async with session.post(
            url + "/telegram", data=body(edited), headers=telegram_headers()
        ) as answer:
            assert answer.status == 200
            assert (await answer.json())["status"] == "ignored"
        statuses = {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "changes": [
                        {
                            "field": "messages",
                            "value": {"statuses": [{"id": "wamid.1", "status": "read"}]},
                        }
                    ]
                }
            ],
        }
        raw = body(statuses)
        async with session.post(
            url + "/whatsapp", data=raw, headers=whatsapp_headers(raw)
        ) as answer:
            assert answer.status == 200
        join = {
            "type": "group_join",
            "object": {"user_id": 1},
            "group_id": 100,
            "secret": "vk-secret",
        }
        async with session.post(url + "/vk", data=body(join)) as answer:
            assert (answer.status, await answer.text()) == (200, "ok")
        for confirmation in (
            {"type": "confirmation", "group_id": 100, "secret": "vk-secret"},
            {"type": "confirmation", "group_id": 100},  # in case VK sends it without the secret
        ):
            async with session.post(url + "/vk", data=body(confirmation)) as answer:
                assert (answer.status, await answer.text()) == (200, "vk-confirm-code")
        async with session.get(
            url + "/whatsapp",
            params={"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"},
        ) as answer:
            assert answer.status == 403
        # The one valid request: the only thing the topic may hold.
        async with session.post(url + "/chat", data=body(CHAT), headers=bearer("chat")) as answer:
            assert answer.status == 200

    topic, connector = run_connector(kafka_broker, scenario, SUPPORTSTREAM_FORM_TOKEN="")
    got = read_topic(kafka_broker.bootstrap, topic, expect=1)
    assert [(key, record["payload"]) for key, _, record, _ in got] == [
        ("chat:s-1", body(CHAT).decode())
    ]
    registry = connector.metrics.registry
    value = registry.get_sample_value
    assert (
        value("supportstream_dead_letters_total", {"source": "chat", "reason": "invalid_json"}) == 2
    )
    assert value("supportstream_connector_requests_total", {"source": "chat", "code": "413"}) == 2
    assert value("supportstream_connector_ignored_total", {"source": "telegram"}) == 1


def _whatsapp_message(message: dict[str, Any], **value: Any) -> dict[str, Any]:
    change = {"field": "messages", "value": {"messaging_product": "whatsapp", **value}}
    change["value"]["messages"] = [message]
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [change]}]}


# The WhatsApp shape seen in captures: an interactive message Meta cannot describe, without its
# ``interactive`` object, with errors (131000 "Unsupported webhook payload").
WA_UNSUPPORTED_INTERACTIVE = _whatsapp_message(
    {
        "from": "79161112233",
        "id": "wamid.unsupported-1",
        "timestamp": "1767600000",
        "type": "interactive",
        "errors": [
            {
                "code": 131000,
                "title": "Something went wrong",
                "message": "Something went wrong",
                "error_data": {"details": "Unsupported webhook payload"},
            }
        ],
    },
    errors=[
        {
            "code": 131000,
            "title": "Something went wrong",
            "message": "Something went wrong",
            "error_data": {"details": "Unsupported webhook payload"},
        }
    ],
)
# A message without ``from`` (WhatsApp usernames may bring those).
WA_WITHOUT_FROM = _whatsapp_message(
    {"id": "wamid.nofrom-1", "timestamp": "1767600000", "type": "text", "text": {"body": "hi"}}
)
# A VK callback server set to an API version before 5.80: user_id and body.
VK_OLD_MESSAGE = {
    "type": "message_new",
    "group_id": 100,
    "object": {
        "id": 41,
        "date": 1767600000,
        "out": 0,
        "user_id": 557,
        "read_state": 0,
        "title": "",
        "body": "Здравствуйте, заказ не пришёл",
    },
    "secret": "vk-secret",
}


def test_authenticated_json_is_published_whatever_its_shape(kafka_broker: Broker) -> None:
    wa_odd, wa_nofrom = body(WA_UNSUPPORTED_INTERACTIVE), body(WA_WITHOUT_FROM)
    wa_page = body(dict(WHATSAPP, object="page"))
    # (path, body, headers, what the parse stage makes of it downstream: a reason or a key)
    cases: list[tuple[str, bytes, dict[str, str], str]] = [
        ("/vk", body(VK_OLD_MESSAGE), {}, f"vk:dm:{h('557')}"),
        ("/whatsapp", wa_odd, whatsapp_headers(wa_odd), f"whatsapp:{h('79161112233')}"),
        ("/whatsapp", wa_nofrom, whatsapp_headers(wa_nofrom), "messages[0].from"),
        ("/whatsapp", wa_page, whatsapp_headers(wa_page), "whatsapp_business_account"),
        (
            "/chat",
            body({"session_id": "s-1", "message_id": "m-2"}),
            bearer("chat"),
            "missing field payload.visitor",
        ),
        ("/chat", b"[1, 2, 3]", bearer("chat"), "must be an object"),
        ("/survey", body(dict(SURVEY, score=9)), bearer("survey"), "score"),
        ("/agent", body(dict(AGENT, type="dance")), bearer("agent"), "type"),
        ("/crm", body(dict(CRM, tier="gold")), bearer("crm"), "tier"),
        ("/qa", body(dict(QA, scores={"tone": 1.5})), bearer("qa"), "out of range 0..1"),
        ("/telegram", body({"message": {}}), telegram_headers(), "update_id"),
    ]

    async def scenario(session: aiohttp.ClientSession, url: str, _connector: HttpConnector) -> None:
        for path, raw, headers, expected in cases:
            async with session.post(url + path, data=raw, headers=headers) as answer:
                text = await answer.text()
                assert answer.status == 200, (path, text)
                if path == "/vk":
                    assert text == "ok"
                elif ":" in expected:
                    assert json.loads(text)["conversation_id"] == expected
                else:
                    assert expected in json.loads(text)["dead_letter"], (path, text)

    topic, _ = run_connector(kafka_broker, scenario)
    got = read_topic(kafka_broker.bootstrap, topic, expect=len(cases))
    assert len(got) == len(cases)
    by_payload = {record["payload"]: (key, record) for key, _, record, _ in got}
    pseudo = Pseudonymizer.from_text(PII_KEY)
    mask = Masker().mask
    for path, raw, _, expected in cases:
        key, fields = by_payload[raw.decode("utf-8")]  # published byte-exact
        source = path.strip("/")
        record = raw_record(fields, "raw-contacts/0/0", mask)
        assert isinstance(record, RawRecord)
        items = parse_record(record, pseudo, mask)
        if ":" in expected:
            assert key == expected
            assert [type(item) for item in items] == [Contact]
            assert isinstance(items[0], Contact) and items[0].conversation_id == expected
        else:
            assert key == f"{source}:unparsed"
            assert isinstance(items[0], DeadLetter) and expected in items[0].reason


def test_broker_outage_answers_503_and_loses_nothing_acknowledged(kafka_broker: Broker) -> None:
    def chat(n: int) -> bytes:
        return body(
            {"session_id": f"s-{n}", "message_id": "m-1", "visitor": {"id": "v"}, "text": f"#{n}"}
        )

    acknowledged: list[bytes] = []

    async def post(session: aiohttp.ClientSession, url: str, raw: bytes) -> int:
        async with session.post(url + "/chat", data=raw, headers=bearer("chat")) as answer:
            if answer.status == 503:
                assert answer.headers["Retry-After"]
                assert "retry" in (await answer.json())["error"]
            if answer.status == 200:
                acknowledged.append(raw)
            return answer.status

    async def scenario(session: aiohttp.ClientSession, url: str, _connector: HttpConnector) -> None:
        loop = asyncio.get_running_loop()
        for n in range(3):
            assert await post(session, url, chat(n)) == 200
        await loop.run_in_executor(None, kafka_broker.stop)
        refused = [n for n in range(3, 6) if await post(session, url, chat(n)) == 503]
        assert refused == [3, 4, 5]
        await loop.run_in_executor(None, kafka_broker.start)
        # The channel retries what was refused, until the broker takes it.
        for n in refused:
            for _ in range(40):
                if await post(session, url, chat(n)) == 200:
                    break
                await asyncio.sleep(0.25)
        assert await post(session, url, chat(6)) == 200

    topic, _ = run_connector(kafka_broker, scenario)
    got = read_topic(kafka_broker.bootstrap, topic, expect=len(acknowledged))
    payloads = sorted(record["payload"] for _, _, record, _ in got)
    assert len(acknowledged) == 7
    assert payloads == sorted(raw.decode() for raw in acknowledged)  # each once, none lost


class _Collect:
    """A stand-in for the projection writer: keeps what the runner emits."""

    def __init__(self) -> None:
        self.outputs: list[Output] = []

    def add_output(self, output: Output) -> None:
        self.outputs.append(output)

    def flush(self) -> int:
        return 0


def test_a_redelivered_webhook_is_one_contact_downstream(kafka_broker: Broker) -> None:
    raw = body(TELEGRAM)

    async def scenario(session: aiohttp.ClientSession, url: str, _connector: HttpConnector) -> None:
        for _ in range(2):  # Telegram retries an update it got no answer for
            async with session.post(
                url + "/telegram", data=raw, headers=telegram_headers()
            ) as answer:
                assert answer.status == 200

    topic, _ = run_connector(kafka_broker, scenario)
    got = read_topic(kafka_broker.bootstrap, topic, expect=2)
    assert len(got) == 2
    masker = Masker()
    rules = load_rules("examples/rules.minimal.yaml")
    writer: Any = _Collect()
    runner = LocalRunner(rules, Pseudonymizer.from_text(PII_KEY), writer)
    for n, (_, _, record, partition) in enumerate(got):
        decoded = decode_raw_contact(
            encode("raw_contact", record), f"raw/{partition}/{n}", masker.mask
        )
        assert isinstance(decoded, RawRecord)
        runner.feed(decoded)
    events = [e for out in writer.outputs for e in out.events]
    received = [e for e in events if e.event_type == "contact.received"]
    assert [e.data["duplicate"] for e in received] == [False, True]
    assert sum(e.event_type == "ticket.opened" for e in events) == 1
    tickets = [t for out in writer.outputs for t in out.tickets]
    assert tickets[-1].inbound_count == 1
    assert tickets[-1].conversation_id == f"telegram:{h('111')}"
