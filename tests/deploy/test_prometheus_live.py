"""A real Prometheus scrapes a running pipeline and raises the P1 breach alert.

The pipeline is ``tests/deploy/live_pipeline.py`` (the local runner on a chdb warehouse, the
wall clock driving SLA timers, the §6 metrics on /metrics); Prometheus runs from the Debian
package on loopback with the real ``deploy/prometheus/alerts.yml``, scraping and evaluating
every second. One chat contact (P1, 3 s first response) is left unanswered; the test waits for
``SupportstreamP1SlaBreach`` to be ``firing`` in ``/api/v1/alerts``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.paths import DEPLOY, PROMETHEUS, REPO

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not PROMETHEUS.exists(), reason="prometheus not installed"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def wait_for(predicate: Any, timeout: float, what: str, procs: list[subprocess.Popen[str]]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            assert proc.poll() is None, f"{proc.args[0]} exited while waiting for {what}"
        try:
            found = predicate()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            found = None
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.stderr.read() if proc.stderr else ""


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.deploy.live_pipeline",
            "--rules",
            str(REPO / "tests" / "deploy" / "live_rules.yaml"),
            "--warehouse",
            str(tmp_path / "warehouse"),
            "--port",
            "0",
            "--duration",
            "120",
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert ready.startswith("READY "), ready + stop(proc)
        yield proc, int(ready.split()[1])
    finally:
        print(stop(proc)[-3000:])


@contextlib.contextmanager
def running_prometheus(
    tmp_path: Path, metrics_port: int
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """Debian's Prometheus on loopback with the real alert rules, scraping ``metrics_port`` and
    evaluating every second."""
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(DEPLOY / "prometheus" / "alerts.yml")],
        "scrape_configs": [
            {
                "job_name": "supportstream",
                "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}],
            }
        ],
    }
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        [
            str(PROMETHEUS),
            f"--config.file={config_path}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc, port
    finally:
        log = stop(proc)
        print(log[-3000:])


@pytest.fixture
def prometheus(tmp_path: Path, pipeline: Any) -> Iterator[tuple[subprocess.Popen[str], int]]:
    with running_prometheus(tmp_path, pipeline[1]) as running:
        yield running


def breach_alert(api: str) -> dict[str, Any] | None:
    for alert in get_json(f"{api}/alerts")["data"]["alerts"]:
        if alert["labels"]["alertname"] == "SupportstreamP1SlaBreach" and (
            alert["state"] == "firing"
        ):
            return dict(alert)
    return None


def scraped(api: str, procs: list[subprocess.Popen[str]]) -> None:
    port = api.split(":")[2].split("/")[0]

    def ready() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as response:
            return bool(response.status == 200)

    wait_for(ready, 30, "Prometheus ready", procs)

    def target_up() -> bool:
        targets = get_json(f"{api}/targets")["data"]["activeTargets"]
        return any(t["health"] == "up" for t in targets)

    wait_for(target_up, 30, "the pipeline target to be scraped", procs)


def test_a_missed_p1_first_response_fires_the_breach_alert(pipeline: Any, prometheus: Any) -> None:
    pipe, _ = pipeline
    prom, port = prometheus
    api = f"http://127.0.0.1:{port}/api/v1"
    procs = [pipe, prom]
    scraped(api, procs)

    # A contact nobody answers: its cycle's series are created at 0 at once and scraped before
    # the 3 s target runs out, so the breach is an increase.
    assert pipe.stdin is not None and pipe.stdout is not None
    pipe.stdin.write("contact\n")
    pipe.stdin.flush()
    assert pipe.stdout.readline().startswith("FED ")

    alert = wait_for(lambda: breach_alert(api), 45, "SupportstreamP1SlaBreach firing", procs)
    assert alert["labels"]["queue"] == "vip"
    assert alert["labels"]["metric"] == "first_response"
    assert alert["labels"]["severity"] == "page"
    assert alert["annotations"]["runbook_url"] == "deploy/RUNBOOK.md#supportstreamp1slabreach"

    # The scrape saw the metrics move: one contact, one P1 ticket, rows in the warehouse.
    def query(expr: str) -> float:
        result = get_json(f"{api}/query?query={urllib.request.quote(expr)}")["data"]["result"]
        return sum(float(r["value"][1]) for r in result)

    assert query('supportstream_contacts_total{channel="chat"}') == 1
    assert query('supportstream_tickets_opened_total{priority="P1"}') == 1
    assert wait_for(lambda: query("supportstream_sink_rows_total") > 0, 10, "sink rows", procs)


def test_the_running_demo_is_scraped_and_its_missed_first_responses_fire_the_alert(
    tmp_path: Path,
) -> None:
    """The product itself: ``supportstream demo --duration`` with generated live traffic and the
    same 3 s first-response rules; nobody answers that fast, so P1 first responses breach."""
    metrics_port = free_port()
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streams.cli",
            "demo",
            "--duration",
            "90s",
            "--rules",
            str(REPO / "tests" / "deploy" / "live_rules.yaml"),
            "--rate",
            "3600",
            "--warehouse",
            str(tmp_path / "demo"),
        ],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SUPPORTSTREAM_METRICS_PORT": str(metrics_port)},
    )
    try:
        with running_prometheus(tmp_path, metrics_port) as (prom, port):
            api = f"http://127.0.0.1:{port}/api/v1"
            scraped(api, [demo, prom])
            alert = wait_for(
                lambda: breach_alert(api), 60, "SupportstreamP1SlaBreach firing", [demo, prom]
            )
            assert alert["labels"]["metric"] == "first_response"
            assert alert["labels"]["queue"] == "vip"  # the live rules route every P1 there
    finally:
        print(stop(demo)[-3000:])
