"""One typed settings object, read from ``SUPPORTSTREAM_*`` environment variables.

Nothing set means the embedded defaults: the chdb warehouse under ``./.supportstream/warehouse``,
the development PII key (announced on stderr by the commands that use it), metrics on 9108.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from processors.ids import DEV_PII_KEY, Pseudonymizer

DEFAULT_WAREHOUSE = "./.supportstream/warehouse"
DEFAULT_CACHE_DIR = "./.supportstream/cache"

KAFKA_COMPRESSIONS: tuple[str, ...] = ("zstd", "lz4", "gzip", "snappy")
"""The codecs ``SUPPORTSTREAM_KAFKA_COMPRESSION`` accepts (besides ``none``)."""

DEFAULT_KAFKA_COMPRESSION = "zstd"


@dataclass(frozen=True)
class Settings:
    pii_key: str
    pii_key_is_default: bool
    warehouse: str
    clickhouse_url: str
    kafka_bootstrap: str
    topic_prefix: str
    partitions: int
    consumer_group: str
    metrics_port: int  # 0: a free port chosen by the system
    cache_dir: Path  # the language model decompressed once (streams.model_cache)
    # How everything supportstream produces to Kafka is compressed (None: not compressed).
    kafka_compression: str | None = DEFAULT_KAFKA_COMPRESSION

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        key = env.get("SUPPORTSTREAM_PII_KEY", "")
        return cls(
            pii_key=key or DEV_PII_KEY,
            pii_key_is_default=not key,
            warehouse=env.get("SUPPORTSTREAM_WAREHOUSE", DEFAULT_WAREHOUSE),
            clickhouse_url=env.get("SUPPORTSTREAM_CLICKHOUSE_URL", ""),
            kafka_bootstrap=env.get("SUPPORTSTREAM_KAFKA_BOOTSTRAP", "localhost:9092"),
            topic_prefix=env.get("SUPPORTSTREAM_TOPIC_PREFIX", "supportstream."),
            partitions=int_setting(env, "SUPPORTSTREAM_PARTITIONS", 6),
            consumer_group=env.get("SUPPORTSTREAM_CONSUMER_GROUP", "supportstream"),
            metrics_port=int_setting(env, "SUPPORTSTREAM_METRICS_PORT", 9108, minimum=0),
            cache_dir=Path(env.get("SUPPORTSTREAM_CACHE_DIR") or DEFAULT_CACHE_DIR).absolute(),
            kafka_compression=kafka_compression_setting(env),
        )

    def pseudonymizer(self, *, means: str = "pseudonyms are not secret") -> Pseudonymizer:
        """The keyed pseudonyms of ``pii_key``; with the development key, stderr says so and
        what that ``means`` for this command."""
        if self.pii_key_is_default:
            print(
                f"supportstream: SUPPORTSTREAM_PII_KEY is not set; using the development key "
                f"({means})",
                file=sys.stderr,
            )
        return Pseudonymizer.from_text(self.pii_key)


class SettingsError(ValueError):
    """An environment variable holds a value supportstream cannot use."""


def int_setting(env: Mapping[str, str], name: str, default: int, *, minimum: int = 1) -> int:
    """A whole number from the environment, at least ``minimum`` (``default`` when unset);
    anything else is refused by name (``SettingsError``)."""
    text = env.get(name, "")
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r} is not a whole number") from None
    if value < minimum:
        raise SettingsError(f"{name}={text!r} must be at least {minimum}")
    return value


def kafka_compression_setting(env: Mapping[str, str]) -> str | None:
    """``SUPPORTSTREAM_KAFKA_COMPRESSION``: how the workers, ``supportstream publish`` and the
    connectors compress the batches they produce, a codec every Kafka client knows (Zstandard
    by default), or ``none`` (``None``). Anything else is refused by name."""
    value = env.get("SUPPORTSTREAM_KAFKA_COMPRESSION", DEFAULT_KAFKA_COMPRESSION)
    name = value.strip().lower()
    if name in ("", "none"):
        return None
    if name not in KAFKA_COMPRESSIONS:
        raise SettingsError(
            f"SUPPORTSTREAM_KAFKA_COMPRESSION={value!r}: expected one of "
            f"{', '.join(KAFKA_COMPRESSIONS)} or none"
        )
    return name


# --------------------------------------------------------------------------------------------
# Channel connectors (``supportstream connect http|imap``, docs/CONNECTORS.md)
# --------------------------------------------------------------------------------------------

HTTP_TOKEN_SOURCES: tuple[str, ...] = ("chat", "form", "phone", "agent", "survey", "crm", "qa")
"""The sources the HTTP connector accepts with a bearer token (``SUPPORTSTREAM_{SOURCE}_TOKEN``)."""


@dataclass(frozen=True)
class ConnectSettings:
    """What the channel connectors read from ``SUPPORTSTREAM_*``. Secrets are ``repr=False``:
    printing or logging the settings never shows them. An empty secret disables its source
    (the HTTP connector answers 404 for it) rather than accepting unauthenticated bodies."""

    connector_name: str
    http_host: str
    http_port: int
    max_body_bytes: int
    publish_timeout_s: float
    shutdown_timeout_s: float
    telegram_secret_token: str = field(repr=False)
    whatsapp_verify_token: str = field(repr=False)
    whatsapp_app_secret: str = field(repr=False)
    vk_confirmation: str = field(repr=False)
    vk_secret: str = field(repr=False)
    vk_group_id: int | None
    bearer_tokens: Mapping[str, str] = field(repr=False)
    imap_host: str
    imap_port: int
    imap_security: str  # ssl | starttls | none
    imap_user: str
    imap_password: str = field(repr=False)
    imap_mailbox: str
    imap_state_dir: str
    imap_poll_s: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ConnectSettings:
        env = os.environ if env is None else env
        security = env.get("SUPPORTSTREAM_IMAP_SECURITY", "ssl").lower()
        if security not in ("ssl", "starttls", "none"):
            raise SettingsError(
                f"SUPPORTSTREAM_IMAP_SECURITY={security!r} must be ssl, starttls or none"
            )
        group = env.get("SUPPORTSTREAM_VK_GROUP_ID", "")
        return cls(
            connector_name=env.get("SUPPORTSTREAM_CONNECTOR_NAME", "") or socket.gethostname(),
            http_host=env.get("SUPPORTSTREAM_CONNECT_HOST", "0.0.0.0"),
            http_port=int_setting(env, "SUPPORTSTREAM_CONNECT_PORT", 8080),
            max_body_bytes=int_setting(env, "SUPPORTSTREAM_CONNECT_MAX_BODY_BYTES", 512 * 1024),
            publish_timeout_s=seconds_setting(
                env, "SUPPORTSTREAM_CONNECT_PUBLISH_TIMEOUT_SECONDS", 10.0
            ),
            shutdown_timeout_s=seconds_setting(
                env, "SUPPORTSTREAM_CONNECT_SHUTDOWN_TIMEOUT_SECONDS", 30.0
            ),
            telegram_secret_token=env.get("SUPPORTSTREAM_TELEGRAM_SECRET_TOKEN", ""),
            whatsapp_verify_token=env.get("SUPPORTSTREAM_WHATSAPP_VERIFY_TOKEN", ""),
            whatsapp_app_secret=env.get("SUPPORTSTREAM_WHATSAPP_APP_SECRET", ""),
            vk_confirmation=env.get("SUPPORTSTREAM_VK_CONFIRMATION", ""),
            vk_secret=env.get("SUPPORTSTREAM_VK_SECRET", ""),
            vk_group_id=int_setting(env, "SUPPORTSTREAM_VK_GROUP_ID", 1) if group else None,
            bearer_tokens={
                source: env.get(f"SUPPORTSTREAM_{source.upper()}_TOKEN", "")
                for source in HTTP_TOKEN_SOURCES
            },
            imap_host=env.get("SUPPORTSTREAM_IMAP_HOST", ""),
            imap_port=int_setting(
                env, "SUPPORTSTREAM_IMAP_PORT", 993 if security == "ssl" else 143
            ),
            imap_security=security,
            imap_user=env.get("SUPPORTSTREAM_IMAP_USER", ""),
            imap_password=env.get("SUPPORTSTREAM_IMAP_PASSWORD", ""),
            imap_mailbox=env.get("SUPPORTSTREAM_IMAP_MAILBOX", "INBOX"),
            imap_state_dir=env.get("SUPPORTSTREAM_IMAP_STATE_DIR", "./.supportstream/imap"),
            imap_poll_s=seconds_setting(env, "SUPPORTSTREAM_IMAP_POLL_SECONDS", 15.0),
        )


def seconds_setting(env: Mapping[str, str], name: str, default: float) -> float:
    """A positive, finite number of seconds (``default`` when unset); anything else is refused
    by name (``SettingsError``)."""
    text = env.get(name, "")
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise SettingsError(f"{name}={text!r} must be a positive number of seconds")
    return value
