"""How the interpreter runs supportstream's long computations: its cyclic garbage collector.

CPython collects its youngest generation every 700 net allocations of container objects and
the whole heap every hundredth time. The desk allocates a few objects per event (tickets,
cycles, events, their dicts) and keeps a large state: on one worker draining the week of
issue 12 the collector ran about 1,300 times, ten of them over the whole heap, and took
about 1 of the worker's 10 CPU-seconds (``gc.callbacks``, a scratch run; replay's desk
process lost about half a second the same way). Almost nothing the pipeline allocates is
cyclic garbage (frozen dataclasses, dicts and lists that reference counting frees), so the
youngest generation is collected every ``GEN0_THRESHOLD`` allocations instead: the cycles
asyncio, Faust and exceptions leave are still collected, later, and the whole heap is walked
about seventy times less often. docs/PRODUCTION.md, "The garbage collector".
"""

from __future__ import annotations

import gc
from typing import Final

GEN0_THRESHOLD: Final = 50_000
"""Net allocations of container objects between two collections of the youngest generation
(CPython's default: 700); the older generations keep their default ratios."""


def tune_garbage_collector() -> None:
    """Collect the youngest generation every ``GEN0_THRESHOLD`` allocations (the process's
    other thresholds unchanged)."""
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
