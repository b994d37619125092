"""``streams.runtime``: every ``supportstream`` command runs with the garbage collector's
youngest generation collected every ``GEN0_THRESHOLD`` allocations (docs/PRODUCTION.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from streams.runtime import GEN0_THRESHOLD

REPO = Path(__file__).resolve().parents[2]

_PROGRAM = """
import gc, sys
from streams.cli import main
before = gc.get_threshold()
code = main(["check-config", sys.argv[1]])
print(before[0], *gc.get_threshold(), code)
"""


def test_a_command_runs_with_the_tuned_collector_and_the_default_older_generations() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROGRAM, str(REPO / "examples" / "rules.demo.yaml")],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.splitlines()[-1].split()  # fmt: skip
    before, gen0, gen1, gen2, code = (int(value) for value in out)
    assert before == 700 and code == 0
    assert (gen0, gen1, gen2) == (GEN0_THRESHOLD, 10, 10)
