"""``kill -USR2 <worker>`` logs where the worker's own tasks wait (docs/PRODUCTION.md,
"Operations"): the real worker process on a real broker, idle with nothing to apply."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.support.broker import Broker
from tests.support.pipeline import RULES, Pipeline, wait_until

pytestmark = [pytest.mark.integration]


def test_sigusr2_logs_where_the_desk_and_the_intake_wait(
    kafka_broker: Broker, tmp_path: Path
) -> None:
    pipeline = Pipeline(tmp_path, kafka_broker.bootstrap)
    pipeline.run("migrate", "--rules", str(RULES))
    worker = pipeline.worker()
    log = tmp_path / "worker-1.log"
    try:
        assert wait_until(lambda: "[^Worker]: Ready" in log.read_text(errors="replace"), 90)
        worker.send_signal(signal.SIGUSR2)

        def chains() -> dict[str, list[str]]:
            found = {}
            for line in log.read_text(errors="replace").splitlines():
                if line.startswith("{") and '"where a task waits"' in line:
                    record = json.loads(line)
                    found[record["task"]] = record["awaits"]
            return found

        assert wait_until(lambda: len(chains()) >= 2, 30)
        waits = chains().values()
        # The two agents, each down to what it awaits (the next event of its stream).
        for agent in ("desk_agent", "intake_agent"):
            (chain,) = [c for c in waits if any(line.endswith(f" {agent}") for line in c)]
            assert chain[-1].startswith("awaiting ") and len(chain) > 3, chain
        assert worker.poll() is None  # still running
    finally:
        pipeline.stop_all()
