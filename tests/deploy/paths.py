"""Shared paths and helpers for the deployment tests."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROMTOOL = Path("/usr/bin/promtool")
PROMETHEUS = Path("/usr/bin/prometheus")
AMTOOL = Path("/usr/bin/amtool")

CONTRACT_METRICS = {
    "supportstream_contacts_total",
    "supportstream_tickets_opened_total",
    "supportstream_sla_breaches_total",
    "supportstream_sla_warnings_total",
    "supportstream_sla_active_cycles",
    "supportstream_sla_fulfilment_business_seconds",
    "supportstream_dead_letters_total",
    "supportstream_sink_rows_total",
    "supportstream_event_lag_seconds",
    "supportstream_first_response_estimate_seconds",
    "supportstream_promises_total",
    "supportstream_incidents_open",
    "supportstream_incidents_opened_total",
    "supportstream_queue_waiting_tickets",
}
"""CONTRACT §6, restated: the names alert rules and dashboards may rely on."""

_METRIC_NAME = re.compile(r"\b(supportstream_[a-z_]+)\b")


def metric_names(promql: str) -> set[str]:
    """The supportstream metric names a PromQL expression uses (histogram suffixes folded)."""
    names = set()
    for name in _METRIC_NAME.findall(promql):
        for suffix in ("_bucket", "_count", "_sum"):
            base = name.removesuffix(suffix)
            if base != name and base in CONTRACT_METRICS:
                name = base
        names.add(name)
    return names


def exported_metric_names() -> set[str]:
    """Every metric name ``streams.metrics.PipelineMetrics`` exports (counters with ``_total``)."""
    from prometheus_client import CollectorRegistry

    from streams.metrics import PipelineMetrics

    registry = CollectorRegistry()
    PipelineMetrics(registry)
    names = set()
    for family in registry.collect():
        suffix = "_total" if family.type == "counter" else ""
        names.add(family.name + suffix)
    return names


def _streams_source() -> str:
    return "\n".join(p.read_text() for p in sorted((REPO / "streams").rglob("*.py")))


def settings_env_names() -> set[str]:
    """Every ``SUPPORTSTREAM_*`` environment variable the code reads: the names quoted in the
    source of streams/ (``Settings.from_env``, ``ConnectSettings.from_env`` and the rest)."""
    return set(re.findall(r"[\"'](SUPPORTSTREAM_[A-Z0-9_]+)[\"']", _streams_source()))


def settings_env_patterns() -> list[re.Pattern[str]]:
    """Names built at run time (``f"SUPPORTSTREAM_{source.upper()}_TOKEN"``) as patterns."""
    patterns = []
    for prefix, suffix in re.findall(
        r"f[\"'](SUPPORTSTREAM_[A-Z0-9_]*)\{[^}]+\}([A-Z0-9_]*)[\"']", _streams_source()
    ):
        patterns.append(re.compile(re.escape(prefix) + "[A-Z0-9]+" + re.escape(suffix)))
    return patterns
