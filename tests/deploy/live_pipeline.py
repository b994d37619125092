"""A small live pipeline for the Prometheus integration test (stand-in for ``supportstream demo``'s
live mode): the local runner over a chdb warehouse, the wall clock driving SLA timers, and the
§6 metrics served over HTTP.

    python -m tests.deploy.live_pipeline --rules R --warehouse DIR --port P [--duration 90]

It serves ``/metrics`` on 127.0.0.1:P, prints ``READY <port>`` on stdout, and waits for a line
on stdin; each line it reads is one chat contact fed at the wall-clock instant (session
``live-<n>``). Meanwhile, every 0.5 s it advances event time to now (timers due up to now fire),
flushes the writer and updates the sink and lag metrics. It stops after ``--duration`` seconds,
on SIGTERM, or when stdin closes and ``--exit-on-eof`` is given.
"""

from __future__ import annotations

import argparse
import json
import queue
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from processors.ids import Pseudonymizer
from processors.model import RawRecord
from processors.rules import load_rules
from sinks.backend import SinkError
from sinks.chdb_backend import ChdbBackend
from sinks.migrate import migrate
from sinks.writer import ProjectionWriter
from streams.local import LocalRunner, wall_clock_ms
from streams.metrics import PipelineMetrics, process_registry, serve

TICK_S = 0.5


def chat_contact(at: int, n: int) -> RawRecord:
    payload = {
        "session_id": f"live-{n}",
        "message_id": "m-1",
        "visitor": {"id": f"visitor-{n}"},
        "text": "The site is down, please help",
    }
    text = json.dumps({"at": at, "source": "chat", "payload": payload})
    return RawRecord(at=at, source="chat", payload=payload, ref=f"live:{n}", text=text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rules", type=Path, required=True)
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--duration", type=float, default=90.0)
    parser.add_argument("--exit-on-eof", action="store_true")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    registry = process_registry()
    metrics = PipelineMetrics(registry)
    backend = ChdbBackend(args.warehouse)
    migrate(backend)
    writer = ProjectionWriter(backend)
    runner = LocalRunner(
        load_rules(args.rules),
        Pseudonymizer.from_text("live-test-key"),
        writer,
        on_output=lambda output: metrics.observe_output(output, wall_clock_ms()),
    )
    server = serve(args.port, registry, addr="127.0.0.1")
    print(f"READY {server.port}", flush=True)

    lines: queue.Queue[str | None] = queue.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read_stdin, daemon=True).start()
    deadline = time.monotonic() + args.duration
    contacts = 0
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=TICK_S)
            except queue.Empty:
                line = ""
            now = wall_clock_ms()
            if line is None:
                if args.exit_on_eof:
                    break
            elif line:
                contacts += 1
                runner.feed(chat_contact(now, contacts))
                metrics.observe_lag("parse", now, wall_clock_ms())
                print(f"FED live-{contacts}", flush=True)
            # The wall clock drives the SLA timers (CONTRACT §3, live mode).
            runner.advance_to(now, inclusive=True)
            try:
                writer.flush()
            except SinkError as error:
                metrics.observe_sink_failure(str(error).split(" ")[0])
            else:
                metrics.observe_sink(writer.rows_written)
    finally:
        server.stop()
        backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
