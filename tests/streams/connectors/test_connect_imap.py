"""The IMAP connector against a real dovecot and a real broker: a thread of multipart mails is
published byte-exact, once, in order; a restart neither loses nor repeats a mail; while the
broker is down the progress does not move, and the mail goes out when it is back."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from processors.ids import Pseudonymizer
from processors.model import RawRecord
from processors.pii import Masker
from processors.rules import load_rules
from schemas.codec import encode
from streams.connectors.envelope import EMAIL_LATIN1, decode_raw_contact, email_bytes
from streams.connectors.imap import ImapConnector, StateFile
from streams.connectors.publisher import KafkaPublisher, PublishError
from streams.kafka_admin import ensure_topics, topic_name
from streams.local import LocalRunner
from streams.settings import ConnectSettings
from tests.streams.connectors.conftest import (
    CONNECT_ENV,
    PII_KEY,
    Dovecot,
    h,
    pipeline_settings,
    read_topic,
)
from tests.streams.connectors.test_connect_http import _Collect
from tests.support.broker import Broker

pytestmark = pytest.mark.integration

T0 = 1_767_600_000.0  # 2026-01-05T08:00:00Z


def mail(n: int, *, root: str | None = None, previous: list[str] = (), koi8: bool = False) -> bytes:  # type: ignore[assignment]
    message = EmailMessage(policy=SMTP)  # CRLF line ends, as mail travels
    message["From"] = "Анна Петрова <anna@example.com>" if n % 2 else "Petr <petr@example.org>"
    message["To"] = "support@example.com"
    message["Subject"] = ("Re: " if previous else "") + "Не могу оплатить счёт"
    message["Message-ID"] = f"<m{n}@mail.example.com>"
    message["Date"] = "Mon, 05 Jan 2026 11:00:00 +0300"
    if previous:
        message["In-Reply-To"] = previous[-1]
        message["References"] = " ".join(previous)
    text = f"Письмо {n}: карта не проходит, ошибка 500.\n"
    if koi8:
        message.set_content(text, charset="koi8-r", cte="8bit")
    else:
        message.set_content(text)
        message.add_alternative(f"<html><body><p>Письмо {n}</p></body></html>", subtype="html")
        if n == 3:
            message.add_attachment(
                b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="счёт.pdf"
            )
    return message.as_bytes()


def imap_settings(dovecot: Dovecot, state_dir: Path) -> ConnectSettings:
    return ConnectSettings.from_env({**CONNECT_ENV, **dovecot.env(state_dir)})


async def run_until(connector: ImapConnector, published: int, timeout: float = 20.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(connector.run(stop))
    deadline = asyncio.get_running_loop().time() + timeout
    while connector.published < published and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # a poll or two more: nothing else may be published
    stop.set()
    await asyncio.wait_for(task, 15)


def make_connector(settings: ConnectSettings, bootstrap: str, topic: str) -> ImapConnector:
    return ImapConnector(
        settings,
        KafkaPublisher(bootstrap, timeout_s=3),
        topic=topic,
        pseudo=Pseudonymizer.from_text(PII_KEY),
        registry=CollectorRegistry(),
        clock=lambda: int(T0 * 1000) + 3_600_000,
        retry_max_s=0.5,
    )


def test_a_thread_of_mails_arrives_once_and_survives_restarts(
    kafka_broker: Broker, dovecot: Dovecot, tmp_path: Path
) -> None:
    pipeline = pipeline_settings(kafka_broker.bootstrap)
    ensure_topics(kafka_broker.bootstrap, pipeline)
    topic = topic_name(pipeline, "raw-contacts")
    settings = imap_settings(dovecot, tmp_path / "imap-state")
    ids = [f"<m{n}@mail.example.com>" for n in range(1, 7)]
    mails = [
        mail(1),
        mail(2, previous=ids[:1]),
        mail(3, previous=ids[:2]),
        mail(4, previous=ids[:3], koi8=True),
        mail(5, previous=ids[:4]),
        mail(6),
    ]
    for n in range(3):
        dovecot.append(mails[n], T0 + n * 60)

    first = make_connector(settings, kafka_broker.bootstrap, topic)
    asyncio.run(run_until(first, 3))
    assert first.published == 3

    # Restart: two more mails, a new connector with the same state directory.
    dovecot.append(mails[3], T0 + 180)
    dovecot.append(mails[4], T0 + 240)
    second = make_connector(settings, kafka_broker.bootstrap, topic)
    asyncio.run(run_until(second, 2))
    assert second.published == 2

    # The broker goes away: the sixth mail is not published and the progress stays put.
    state = StateFile.for_mailbox(
        Path(settings.imap_state_dir), "127.0.0.1", dovecot.port, dovecot.user, "INBOX"
    )
    before = state.load()
    assert before is not None and before.last_uid == 5
    dovecot.append(mails[5], T0 + 300)
    kafka_broker.stop()
    third = make_connector(settings, kafka_broker.bootstrap, topic)

    async def outage() -> None:
        with pytest.raises(PublishError):
            await third.poll_once()
        assert state.load() == before
        await asyncio.get_running_loop().run_in_executor(None, kafka_broker.start)
        await run_until(third, 1)

    asyncio.run(outage())
    assert third.published == 1

    got = read_topic(kafka_broker.bootstrap, topic, expect=6)
    assert len(got) == 6  # six mails, none lost, none repeated
    records = [record for _, _, record, _ in got]
    published = {email_bytes(r["payload"], r["content_type"]) for r in records}
    assert published == set(mails)  # byte-exact, whatever the charset
    koi8 = next(r for r in records if "<m4@" in r["payload"])
    assert koi8["content_type"] == EMAIL_LATIN1
    thread_key = f"email:{h('m1@mail.example.com')}"
    keys = [key for key, _, _, _ in got]
    assert keys.count(thread_key) == 5 and keys.count(f"email:{h('m6@mail.example.com')}") == 1
    thread = [r for k, _, r, _ in got if k == thread_key]  # one partition: in mailbox order
    assert [r["channel_message_id"] for r in thread] == [
        f"m{n}@mail.example.com" for n in range(1, 6)
    ]
    assert [r["at"] for r in thread] == [
        int((T0 + n * 60) * 1000) for n in range(5)
    ]  # INTERNALDATE

    # Downstream, the thread is one conversation with one ticket and five inbound contacts.
    masker = Masker()
    writer: Any = _Collect()
    runner = LocalRunner(
        load_rules("examples/rules.minimal.yaml"),
        Pseudonymizer.from_text(PII_KEY),
        writer,
    )
    for n, record in enumerate(sorted(records, key=lambda r: r["at"])):
        decoded = decode_raw_contact(encode("raw_contact", record), f"raw/{n}", masker.mask)
        assert isinstance(decoded, RawRecord)
        runner.feed(decoded)
    tickets = {t.ticket_id: t for out in writer.outputs for t in out.tickets}
    assert {t.conversation_id: t.inbound_count for t in tickets.values()} == {
        thread_key: 5,
        f"email:{h('m6@mail.example.com')}": 1,
    }
