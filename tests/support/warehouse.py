"""An embedded warehouse held open by another process, for the tests of what a command does
when chdb's lock on a data path is taken."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def held_warehouse(path: Path) -> Iterator[int]:
    """``path`` opened by another process until the block ends; yields that process's pid."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys
                from sinks.chdb_backend import ChdbBackend
                b = ChdbBackend({str(path)!r})
                print("open", flush=True)
                sys.stdin.read()
                b.close()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        yield holder.pid
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
