"""What a connector process counts: the CONTRACT §6 names it shares with the pipeline, and its own.

The §6 metrics come from ``streams.metrics.PipelineMetrics`` (one definition of names, labels and
reason classes for every process). A connector moves:

- ``supportstream_contacts_total{channel}``: contacts published (one per WhatsApp message in a
  body). Connectors count at the edge, before the desk recognises a redelivery, so a webhook
  retried by its channel is counted again here; the worker's series (same name, another job)
  counts contacts without redeliveries. Dashboards pick the job.
- ``supportstream_dead_letters_total{source,reason}``: bodies refused as malformed or oversized
  (``reason`` is the short class of ``streams.metrics.dead_letter_class``).
- ``supportstream_event_lag_seconds{stage="connect"}``: receive time minus event time (for
  e-mail, the mailbox's arrival time: a backlog after downtime shows as lag).

Its own (names beyond §6):

- ``supportstream_connector_requests_total{source,code}``: every HTTP answer, by status code
  (signature failures are here, not dead letters: they are not data).
- ``supportstream_connector_ignored_total{source}``: bodies acknowledged and not published.
- ``supportstream_connector_published_total{source}`` and
  ``supportstream_connector_publish_seconds{source}``: records the broker acknowledged, and how
  long the acknowledgement took.
- ``supportstream_connector_imap_last_uid``: the last UID whose publication was recorded.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from processors.model import Millis
from streams.metrics import PipelineMetrics, dead_letter_class


class ConnectorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.pipeline = PipelineMetrics(registry)
        self.requests = Counter(
            "supportstream_connector_requests_total",
            "HTTP requests answered by the connector, by source and status code.",
            ["source", "code"],
            registry=registry,
        )
        self.ignored = Counter(
            "supportstream_connector_ignored_total",
            "Bodies acknowledged and not published (not customer contacts), by source.",
            ["source"],
            registry=registry,
        )
        self.published = Counter(
            "supportstream_connector_published_total",
            "Raw records the broker acknowledged, by source.",
            ["source"],
            registry=registry,
        )
        self.publish_seconds = Histogram(
            "supportstream_connector_publish_seconds",
            "Time from publishing a raw record to the broker's acknowledgement.",
            ["source"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=registry,
        )
        self.imap_last_uid = Gauge(
            "supportstream_connector_imap_last_uid",
            "The last IMAP UID whose publication the connector recorded.",
            registry=registry,
        )

    def request(self, source: str, code: int) -> None:
        self.requests.labels(source, str(code)).inc()

    def refused(self, source: str, reason: str) -> None:
        self.pipeline.dead_letters.labels(source or "unknown", dead_letter_class(reason)).inc()

    def accepted(self, source: str, channels: list[str], seconds: float) -> None:
        self.published.labels(source).inc()
        self.publish_seconds.labels(source).observe(seconds)
        for channel in channels:
            self.pipeline.contacts.labels(channel).inc()

    def lag(self, event_time: Millis, now: Millis) -> None:
        self.pipeline.observe_lag("connect", event_time, now)
