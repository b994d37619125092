"""Driving the real ``supportstream`` command line from tests, as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def run_cli(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``supportstream ARGS`` in a subprocess with ``env``; never raises on a non-zero exit."""
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True,
        text=True,
        env=dict(env),
        check=False,
    )


def sql_rows(warehouse: Path, query: str, env: Mapping[str, str]) -> list[dict[str, Any]]:
    """The rows ``supportstream sql --format JSONEachRow`` prints for ``query``."""
    done = run_cli("sql", "--warehouse", str(warehouse), "--format", "JSONEachRow", query, env=env)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def replay_cli(
    rules: Path,
    source: Path,
    warehouse: Path,
    env: Mapping[str, str],
    *,
    until: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``supportstream replay`` of ``source`` into ``warehouse``, which must succeed."""
    extra = ("--until", until) if until is not None else ()
    done = run_cli(
        "replay",
        "--rules",
        str(rules),
        "--input",
        str(source),
        *extra,
        "--warehouse",
        str(warehouse),
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return done
