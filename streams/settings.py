"""One typed settings object, read from ``SUPPORTSTREAM_*`` environment variables.

Nothing set means the embedded defaults: the chdb warehouse under ``./.supportstream/warehouse``,
the development PII key (announced on stderr by the commands that use it), metrics on 9108.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from processors.ids import DEV_PII_KEY

DEFAULT_WAREHOUSE = "./.supportstream/warehouse"


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
    metrics_port: int

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
            partitions=_int(env, "SUPPORTSTREAM_PARTITIONS", 6),
            consumer_group=env.get("SUPPORTSTREAM_CONSUMER_GROUP", "supportstream"),
            metrics_port=_int(env, "SUPPORTSTREAM_METRICS_PORT", 9108),
        )


class SettingsError(ValueError):
    """An environment variable holds a value supportstream cannot use."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, "")
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r} is not a whole number") from None
    if value <= 0:
        raise SettingsError(f"{name}={text!r} must be positive")
    return value
