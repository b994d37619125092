"""Connector pieces without external processes: signatures, envelopes, settings, progress file,
and the HTTP connector's graceful shutdown with a publisher that takes its time."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from email.message import EmailMessage
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from processors.ids import Pseudonymizer
from processors.model import AgentAction, RawRecord
from processors.parsing import parse_record
from processors.pii import Masker
from streams.connectors import auth
from streams.connectors.envelope import (
    EMAIL_LATIN1,
    EMAIL_UTF8,
    check_email,
    check_json,
    conversation_key,
    decode_raw_contact,
    email_bytes,
    email_text,
)
from streams.connectors.http import HttpConnector
from streams.connectors.imap import Progress, StateFile, parse_internaldate
from streams.connectors.publisher import PublishError
from streams.settings import ConnectSettings, SettingsError
from tests.streams.connectors.conftest import PII_KEY, connect_settings, h

PSEUDO = Pseudonymizer.from_text(PII_KEY)
MASK = Masker().mask


# -- auth ---------------------------------------------------------------------------------------


def test_whatsapp_signature_is_hmac_sha256_of_the_raw_body() -> None:
    raw = b'{"object":"whatsapp_business_account"}'
    expected = "sha256=" + hmac.new(b"app-secret", raw, hashlib.sha256).hexdigest()
    assert auth.whatsapp_signature(raw, "app-secret") == expected
    assert auth.check_whatsapp(expected, raw, "app-secret") is None
    assert (
        auth.check_whatsapp(expected.upper().replace("SHA256=", "sha256="), raw, "app-secret")
        is None
    )
    assert auth.check_whatsapp(expected, raw + b" ", "app-secret") == auth.Denied(
        403, "X-Hub-Signature-256 does not match the body"
    )
    assert auth.check_whatsapp(None, raw, "app-secret").status == 401  # type: ignore[union-attr]
    assert auth.check_whatsapp("md5=abc", raw, "app-secret").status == 403  # type: ignore[union-attr]


def test_tokens_and_secrets_compare_exactly() -> None:
    assert auth.check_telegram("tok", "tok") is None
    assert auth.check_telegram("", "tok").status == 401  # type: ignore[union-attr]
    assert auth.check_telegram("tok2", "tok").status == 403  # type: ignore[union-attr]
    assert auth.check_bearer("Bearer tok", "tok") is None
    assert auth.check_bearer("bearer  tok ", "tok") is None
    assert auth.check_bearer("Basic dG9r", "tok").status == 401  # type: ignore[union-attr]
    assert auth.check_bearer("Bearer tok", "токен").status == 403  # type: ignore[union-attr]
    assert auth.check_vk("s", "s") is None
    assert auth.check_vk(None, "s").status == 401  # type: ignore[union-attr]
    assert auth.check_vk(42, "s").status == 403  # type: ignore[union-attr]


# -- envelope -----------------------------------------------------------------------------------


def test_an_ignored_body_is_not_published_and_a_dead_one_is_published_with_the_reason() -> None:
    common = {
        "at": 1,
        "received_at": 1,
        "connector": "c",
        "ref": "r",
        "pseudo": PSEUDO,
        "mask": MASK,
    }
    edited = json.dumps({"update_id": 5, "edited_message": {"text": "x"}})
    verdict = check_json("telegram", edited, **common)  # type: ignore[arg-type]
    assert verdict.envelope is None and verdict.refused is None
    assert "edited_message" in verdict.ignored[0].reason
    dead = check_json("survey", '{"conversation_id": "c", "kind": "nps", "score": 11}', **common)  # type: ignore[arg-type]
    # Well-formed JSON is published whatever its shape; downstream it is a dead letter.
    assert dead.envelope is not None and dead.envelope.key == "survey:unparsed"
    assert dead.refused is not None and "score" in dead.refused.reason
    nan = check_json("survey", '{"conversation_id": "c", "kind": "nps", "score": NaN}', **common)  # type: ignore[arg-type]
    assert nan.refused is not None and "NaN" in nan.refused.reason
    assert nan.envelope is None  # not JSON: refused, nothing published


def test_a_whatsapp_body_with_messages_and_statuses_is_published_whole() -> None:
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "changes": [
                    {
                        "value": {
                            "messages": [
                                {
                                    "from": "7916",
                                    "id": "wamid.A",
                                    "type": "text",
                                    "text": {"body": "a"},
                                },
                                {
                                    "from": "7917",
                                    "id": "wamid.B",
                                    "type": "text",
                                    "text": {"body": "b"},
                                },
                            ],
                            "statuses": [{"id": "wamid.Z", "status": "read"}],
                        }
                    }
                ]
            }
        ],
    }
    text = json.dumps(payload)
    verdict = check_json(
        "whatsapp", text, at=1, received_at=2, connector="c", ref="r", pseudo=PSEUDO, mask=MASK
    )
    assert verdict.envelope is not None
    assert verdict.envelope.payload == text
    assert verdict.envelope.key == f"whatsapp:{h('7916')}"  # the first message's conversation
    assert verdict.envelope.channel_message_id == "wamid.A,wamid.B"
    assert len(verdict.contacts) == 2


def _mail(message_id: str, references: str = "", charset: str = "utf-8") -> bytes:
    mail = EmailMessage()
    mail["From"] = "Анна <anna@example.com>"
    mail["To"] = "support@example.com"
    mail["Subject"] = "Счёт"
    mail["Message-ID"] = message_id
    if references:
        mail["References"] = references
        mail["In-Reply-To"] = references.split()[-1]
    mail.set_content("Не могу оплатить счёт", charset=charset, cte="8bit")
    return bytes(mail)


def test_mail_keys_follow_the_thread_root() -> None:
    common = {
        "at": 1,
        "received_at": 2,
        "connector": "c",
        "ref": "r",
        "pseudo": PSEUDO,
        "mask": MASK,
    }
    first = check_email(_mail("<m1@example.com>"), **common)  # type: ignore[arg-type]
    reply = check_email(_mail("<m3@example.com>", "<M1@example.com> <r2@support>"), **common)  # type: ignore[arg-type]
    assert first.envelope is not None and reply.envelope is not None
    assert first.envelope.key == reply.envelope.key == f"email:{h('m1@example.com')}"
    assert first.envelope.channel_message_id == "m1@example.com"


def test_mail_bytes_survive_the_envelope_exactly_whatever_the_charset() -> None:
    utf8 = _mail("<u@x>")
    koi8 = _mail("<k@x>", charset="koi8-r")
    assert email_text(utf8)[1] == EMAIL_UTF8
    text, content_type = email_text(koi8)
    assert content_type == EMAIL_LATIN1
    assert email_bytes(text, content_type) == koi8
    assert email_bytes(*email_text(utf8)) == utf8
    # The published record reads back to what the e-mail parser takes.
    verdict = check_email(
        utf8, at=1, received_at=2, connector="c", ref="r", pseudo=PSEUDO, mask=MASK
    )
    assert verdict.envelope is not None
    record = decode_raw_contact(verdict.envelope.encode(), "raw/0/0", MASK)
    assert isinstance(record, RawRecord)
    assert record.payload == utf8.decode()
    [contact] = parse_record(record, PSEUDO, MASK)
    assert contact.body == "Не могу оплатить счёт"  # type: ignore[union-attr]


def test_an_unparseable_mail_is_still_published() -> None:
    verdict = check_email(
        b"Subject: no sender\r\n\r\nhello\r\n",
        at=1,
        received_at=2,
        connector="c",
        ref="r",
        pseudo=PSEUDO,
        mask=MASK,
    )
    assert verdict.refused is not None and "From" in verdict.refused.reason
    assert verdict.envelope is not None


# -- settings, progress -------------------------------------------------------------------------


def test_secrets_never_show_in_the_settings_repr() -> None:
    settings = connect_settings(SUPPORTSTREAM_IMAP_PASSWORD="imap-pass")
    shown = repr(settings)
    for secret in ("tg-secret", "wa-app-secret", "vk-secret", "chat-token", "imap-pass"):
        assert secret not in shown
    assert settings.max_body_bytes == 20000


def test_bad_connector_settings_are_refused_by_name() -> None:
    with pytest.raises(SettingsError, match="SUPPORTSTREAM_IMAP_SECURITY"):
        ConnectSettings.from_env({"SUPPORTSTREAM_IMAP_SECURITY": "tls1.0"})
    with pytest.raises(SettingsError, match="SUPPORTSTREAM_IMAP_POLL_SECONDS"):
        ConnectSettings.from_env({"SUPPORTSTREAM_IMAP_POLL_SECONDS": "-1"})
    assert ConnectSettings.from_env({}).imap_port == 993
    assert ConnectSettings.from_env({"SUPPORTSTREAM_IMAP_SECURITY": "starttls"}).imap_port == 143


def test_progress_is_replaced_atomically(tmp_path: Path) -> None:
    state = StateFile.for_mailbox(tmp_path / "state", "imap.example.com", 993, "support", "INBOX")
    assert state.load() is None
    state.save(Progress(7, 41))
    state.save(Progress(7, 42))
    assert state.load() == Progress(7, 42)
    assert [p.name for p in state.path.parent.iterdir()] == [state.path.name]  # no temp left


def test_internaldate_is_read_with_its_offset() -> None:
    line = b'3 (UID 9 INTERNALDATE " 5-Jan-2026 11:00:00 +0300" BODY[] {10}'
    assert parse_internaldate(line) == 1_767_600_000_000


# -- graceful shutdown ---------------------------------------------------------------------------


class SlowPublisher:
    """Acknowledges after a pause; records what it was given."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.entered = asyncio.Event()
        self.published: list[tuple[str, bytes]] = []
        self.closed = False

    async def publish(self, topic: str, key: str, value: bytes) -> None:
        self.entered.set()
        await asyncio.sleep(self.delay)
        self.published.append((key, value))

    async def close(self) -> None:
        self.closed = True


class DownPublisher:
    async def publish(self, topic: str, key: str, value: bytes) -> None:
        raise PublishError("broker unavailable")

    async def close(self) -> None:
        pass


CHAT = json.dumps({"session_id": "s-9", "message_id": "m", "visitor": {"id": "v"}, "text": "hi"})
HEADERS = {"Authorization": "Bearer chat-token"}


def test_stop_lets_a_request_in_flight_finish_and_then_refuses_connections() -> None:
    async def main() -> None:
        publisher = SlowPublisher(delay=0.5)
        connector = HttpConnector(
            connect_settings(),
            publisher,
            topic="raw",
            pseudo=PSEUDO,
            registry=CollectorRegistry(),
            clock=lambda: 1,
        )
        port = await connector.start("127.0.0.1", 0)
        url = f"http://127.0.0.1:{port}/chat"
        async with aiohttp.ClientSession() as session:

            async def send() -> tuple[int, str]:
                async with session.post(url, data=CHAT, headers=HEADERS) as answer:
                    return answer.status, await answer.text()

            in_flight = asyncio.create_task(send())
            await publisher.entered.wait()
            await connector.stop()  # SIGTERM arrives while the broker has not acknowledged
            status, text = await in_flight
            assert status == 200, text
            assert [key for key, _ in publisher.published] == ["chat:s-9"]
            assert publisher.closed
            with pytest.raises(aiohttp.ClientConnectionError):
                await send()

    asyncio.run(main())


def test_an_unavailable_broker_is_a_503_with_retry_after() -> None:
    async def main() -> None:
        registry = CollectorRegistry()
        connector = HttpConnector(
            connect_settings(), DownPublisher(), topic="raw", pseudo=PSEUDO, registry=registry
        )
        port = await connector.start("127.0.0.1", 0)
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.post(f"http://127.0.0.1:{port}/chat", data=CHAT, headers=HEADERS) as answer,
            ):
                assert answer.status == 503
                assert answer.headers["Retry-After"] == "5"
                assert (await answer.json())["source"] == "chat"
        finally:
            await connector.stop()
        assert registry.get_sample_value("supportstream_contacts_total", {"channel": "chat"}) == 0

    asyncio.run(main())


class BrokenPublisher:
    async def publish(self, topic: str, key: str, value: bytes) -> None:
        raise RuntimeError("a bug")

    async def close(self) -> None:
        pass


def test_an_unexpected_failure_is_a_json_500_not_an_acknowledgement() -> None:
    async def main() -> None:
        connector = HttpConnector(
            connect_settings(),
            BrokenPublisher(),
            topic="raw",
            pseudo=PSEUDO,
            registry=CollectorRegistry(),
        )
        port = await connector.start("127.0.0.1", 0)
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.post(f"http://127.0.0.1:{port}/chat", data=CHAT, headers=HEADERS) as answer,
            ):
                assert answer.status == 500
                assert "nothing was published" in (await answer.json())["error"]
        finally:
            await connector.stop()

    asyncio.run(main())


def test_presence_records_are_keyed_by_their_agent() -> None:
    presence = AgentAction(at=1, type="presence", conversation_id="", agent_id="a.ivanova")
    assert conversation_key(presence, PSEUDO) == "agent:a.ivanova"
    reply = AgentAction(at=1, type="reply", conversation_id="chat:s-1", agent_id="a.ivanova")
    assert conversation_key(reply, PSEUDO) == "chat:s-1"
