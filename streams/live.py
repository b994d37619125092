"""Live mode: records are applied as they arrive and the wall clock moves event time.

In replay, time moves only with the input. Live, a breach must be raised within 5 s of its due
instant even when no record arrives (CONTRACT §3), so a loop ticks at least every
``tick_ms``: each tick moves event time to the wall clock, firing the timers now due. Records
arriving at ``now`` are applied before the timers of ``now`` fire, as in replay: the tick
advances to ``now`` exclusively, and the next tick picks up ``now`` itself.

The clock and the sleep are parameters so tests can drive the loop without waiting.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from processors.model import DeadLetter, Millis
from processors.parsing import parse_envelope
from processors.timeutil import parse_rfc3339
from streams.local import LocalRunner, wall_clock_ms

Clock = Callable[[], Millis]
Sleep = Callable[[float], None]


@dataclass
class LiveProgress:
    started_at: Millis
    ticks: int = 0
    records: int = 0


def run_live(
    runner: LocalRunner,
    records: Iterator[dict[str, Any]],
    *,
    duration_ms: Millis,
    clock: Clock = wall_clock_ms,
    sleep: Sleep = time.sleep,
    tick_ms: Millis = 500,
    flush_every_ms: Millis = 2000,
    on_tick: Callable[[LiveProgress], None] | None = None,
) -> LiveProgress:
    """Feed ``records`` (dicts of CONTRACT §1, ``at`` ascending) as the clock reaches their
    ``at``, for ``duration_ms`` of wall time, ticking event time forward meanwhile. The sink is
    flushed every ``flush_every_ms`` so the warehouse follows the run, and at the end."""
    start = clock()
    end = start + duration_ms
    progress = LiveProgress(started_at=start)
    pending = _next_record(records, progress)
    last_flush = start
    while True:
        now = clock()
        if now >= end:
            break
        # A record dated more than the runner's limit ahead is not waited for: it is fed at
        # once and its parse stage makes it a dead letter (CONTRACT §1, a wrong clock).
        while pending is not None and (pending[0] <= now or _too_far(runner, pending[0], now)):
            _, line = pending
            parsed = parse_envelope(line, f"live:{progress.records}", runner.redact)
            if isinstance(parsed, DeadLetter):
                # A record whose own instant cannot be read is dated at its arrival.
                runner.dead_letter(parsed if parsed.at >= 0 else replace(parsed, at=now))
            else:
                runner.feed(parsed)
            pending = _next_record(records, progress)
        runner.advance_to(now, inclusive=False)
        if now - last_flush >= flush_every_ms:
            runner.flush()
            last_flush = now
        progress.ticks += 1
        if on_tick is not None:
            on_tick(progress)
        wake = min(end, now + tick_ms)
        if pending is not None:
            wake = min(wake, pending[0])
        sleep(max(0.0, (wake - clock()) / 1000))
    runner.finish(clock())
    return progress


def _too_far(runner: LocalRunner, at: Millis, now: Millis) -> bool:
    limit = runner.parser.max_ahead_ms
    return limit is not None and at > now + limit


def _next_record(
    records: Iterator[dict[str, Any]], progress: LiveProgress
) -> tuple[Millis, str] | None:
    for record in records:
        progress.records += 1
        line = json.dumps(record, ensure_ascii=False)
        try:
            return parse_rfc3339(str(record.get("at"))), line
        except ValueError:
            # Malformed on purpose (the generator plants some): applied at once, dead-lettered.
            return 0, line
    return None
