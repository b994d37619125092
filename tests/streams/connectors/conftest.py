"""Fixtures of the connector tests: a real dovecot IMAP server, raw-topic reading, settings."""

from __future__ import annotations

import hashlib
import hmac
import imaplib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from schemas.codec import decode
from streams.settings import ConnectSettings, Settings

PII_KEY = "connector-test-key"
DOVECOT = Path("/usr/sbin/dovecot")
MAIL_UID = 65534  # nobody: dovecot refuses to give mail access to root


def h(text: str) -> str:
    return hmac.new(PII_KEY.encode(), text.encode(), hashlib.sha256).hexdigest()[:20]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pipeline_settings(bootstrap: str, prefix: str = "t.") -> Settings:
    return Settings.from_env(
        {
            "SUPPORTSTREAM_PII_KEY": PII_KEY,
            "SUPPORTSTREAM_KAFKA_BOOTSTRAP": bootstrap,
            "SUPPORTSTREAM_TOPIC_PREFIX": prefix,
            "SUPPORTSTREAM_PARTITIONS": "3",
        }
    )


CONNECT_ENV: dict[str, str] = {
    "SUPPORTSTREAM_CONNECTOR_NAME": "test-connector",
    "SUPPORTSTREAM_TELEGRAM_SECRET_TOKEN": "tg-secret",
    "SUPPORTSTREAM_WHATSAPP_VERIFY_TOKEN": "wa-verify",
    "SUPPORTSTREAM_WHATSAPP_APP_SECRET": "wa-app-secret",
    "SUPPORTSTREAM_VK_CONFIRMATION": "vk-confirm-code",
    "SUPPORTSTREAM_VK_SECRET": "vk-secret",
    "SUPPORTSTREAM_CHAT_TOKEN": "chat-token",
    "SUPPORTSTREAM_FORM_TOKEN": "form-token",
    "SUPPORTSTREAM_PHONE_TOKEN": "phone-token",
    "SUPPORTSTREAM_AGENT_TOKEN": "agent-token",
    "SUPPORTSTREAM_SURVEY_TOKEN": "survey-token",
    "SUPPORTSTREAM_CRM_TOKEN": "crm-token",
    "SUPPORTSTREAM_QA_TOKEN": "qa-token",
    "SUPPORTSTREAM_CONNECT_MAX_BODY_BYTES": "20000",
    "SUPPORTSTREAM_CONNECT_PUBLISH_TIMEOUT_SECONDS": "3",
    "SUPPORTSTREAM_CONNECT_SHUTDOWN_TIMEOUT_SECONDS": "10",
}


def connect_settings(**overrides: str) -> ConnectSettings:
    return ConnectSettings.from_env({**CONNECT_ENV, **overrides})


def read_topic(bootstrap: str, topic: str, *, expect: int, timeout_s: float = 15.0) -> list[Any]:
    """Every message of ``topic`` from the beginning (at least ``expect`` of them, then whatever
    else arrives within a short grace period), as (key, schema name, record)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, consumer_timeout_ms=500)
    try:
        deadline = time.monotonic() + timeout_s
        partitions = None
        while partitions is None and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            if partitions is None:
                time.sleep(0.2)
        assert partitions, f"topic {topic} does not exist"
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[Any] = []
        grace_until: float | None = None
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=300)
            for messages in batch.values():
                for message in messages:
                    name, record = decode(message.value)
                    out.append((message.key.decode(), name, record, message.partition))
            if len(out) >= expect:
                grace_until = grace_until or time.monotonic() + 1.0
                if time.monotonic() >= grace_until:
                    break
        return out
    finally:
        consumer.close()


# -- dovecot ----------------------------------------------------------------------------------


class Dovecot:
    """A private dovecot IMAP server on loopback (plaintext, one user)."""

    user = "support"
    password = "imap-test-password"

    def __init__(self) -> None:
        # Everything under one short, world-traversable directory: the unprivileged login and
        # mail processes must reach their sockets and the maildir, and socket paths are short.
        self.root = Path(tempfile.mkdtemp(prefix="dv-", dir="/tmp"))
        self.root.chmod(0o755)
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        for sub in ("run", "state", "home"):
            (self.root / sub).mkdir()
        mail = self.root / "mail"
        mail.mkdir()
        shutil.chown(mail, MAIL_UID, MAIL_UID)
        shutil.chown(self.root / "home", MAIL_UID, MAIL_UID)
        (self.root / "passwd").write_text(f"{self.user}:{{PLAIN}}{self.password}::::::\n")
        self.config = self.root / "dovecot.conf"
        self.config.write_text(
            f"""
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.root}/dovecot.log
instance_name = dv-{self.port}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{self.root}/mail/%u
mail_uid = {MAIL_UID}
mail_gid = {MAIL_UID}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.root}/passwd
}}
userdb {{
  driver = static
  args = uid={MAIL_UID} gid={MAIL_UID} home={self.root}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""
        )

    def start(self, timeout: float = 15.0) -> None:
        self._process = subprocess.Popen(
            [str(DOVECOT), "-F", "-c", str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self.log()[-2000:]}")
            try:
                imap = imaplib.IMAP4("127.0.0.1", self.port, timeout=2)
                imap.login(self.user, self.password)
                imap.logout()
                return
            except (OSError, imaplib.IMAP4.error):
                time.sleep(0.2)
        raise RuntimeError(f"dovecot did not answer on {self.port}: {self.log()[-2000:]}")

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def append(self, raw: bytes, when: float, mailbox: str = "INBOX") -> None:
        imap = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        try:
            imap.login(self.user, self.password)
            typ, data = imap.append(mailbox, None, imaplib.Time2Internaldate(when), raw)
            assert typ == "OK", data
        finally:
            imap.logout()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._process = None
        shutil.rmtree(self.root, ignore_errors=True)

    def env(self, state_dir: Path) -> Mapping[str, str]:
        return {
            "SUPPORTSTREAM_IMAP_HOST": "127.0.0.1",
            "SUPPORTSTREAM_IMAP_PORT": str(self.port),
            "SUPPORTSTREAM_IMAP_SECURITY": "none",
            "SUPPORTSTREAM_IMAP_USER": self.user,
            "SUPPORTSTREAM_IMAP_PASSWORD": self.password,
            "SUPPORTSTREAM_IMAP_STATE_DIR": str(state_dir),
            "SUPPORTSTREAM_IMAP_POLL_SECONDS": "0.2",
        }


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    if not DOVECOT.exists():
        pytest.skip("dovecot is not installed (Debian package dovecot-imapd)")
    server = Dovecot()
    try:
        server.start()
        yield server
    finally:
        server.stop()
