"""A running ``supportstream demo --duration`` serves every metric of CONTRACT §6, and they move."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.broker import free_port

SECTION_6 = (
    "supportstream_contacts_total",
    "supportstream_tickets_opened_total",
    "supportstream_sla_breaches_total",
    "supportstream_sla_warnings_total",
    "supportstream_sla_active_cycles",
    "supportstream_sla_fulfilment_business_seconds",
    "supportstream_dead_letters_total",
    "supportstream_sink_rows_total",
    "supportstream_event_lag_seconds",
)


def total(text: str, name: str) -> float:
    pattern = re.compile(rf"^{name}(?:_total)?(?:\{{[^}}]*\}})? ([0-9.e+-]+)$", re.M)
    return sum(float(v) for v in pattern.findall(text))


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


@pytest.mark.slow
def test_the_live_demo_serves_every_section_6_metric_and_they_move(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SUPPORTSTREAM_METRICS_PORT": str(port), "SUPPORTSTREAM_PII_KEY": "m"}
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streams.cli",
            "demo",
            "--duration",
            "14s",
            "--rate",
            "7200",
            "--warehouse",
            str(tmp_path / "w"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        first = ""
        while time.monotonic() < deadline and not first:
            try:
                first = scrape(port)
            except OSError:
                time.sleep(0.2)
        assert first, "the demo never served /metrics"
        time.sleep(8)
        second = scrape(port)
    finally:
        demo.wait(timeout=60)
    assert demo.returncode == 0, (tmp_path / "stderr").read_text()
    for name in SECTION_6:
        assert re.search(rf"^# TYPE {name} ", second, re.M), name
    assert total(second, "supportstream_contacts") > total(first, "supportstream_contacts")
    assert total(second, "supportstream_sink_rows") > total(first, "supportstream_sink_rows")
    assert total(second, "supportstream_tickets_opened") > 0
    assert 'stage="parse"' in second
