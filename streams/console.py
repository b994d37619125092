"""The demo's console: for a person at a terminal, JSON lines for everything else.

``supportstream demo`` is watched. On a terminal (or with ``--log-format console``) its
warnings, which are nearly all dead letters the generator planted on purpose, are not
interleaved with the progress line as JSON: they are counted and summarised after the run, in
the closing report, and progress stays on one line. When stderr is not a terminal (a CI log, a
pipe into ``jq``) or with ``--log-format json``, the logs stay the JSON lines of
``streams.logging`` and the closing report still ends with the same summary.

This module only wraps the structlog configuration ``streams.logging`` made; it restores it on
exit, so nothing else in the process sees a difference.
"""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from collections.abc import Iterator, MutableMapping
from typing import Any, TextIO

import structlog

__all__ = ["Console", "console_mode", "demo_console"]

_SUMMARISED = frozenset({"warning", "warn"})
_ESCALATED = frozenset({"error", "critical", "exception", "fatal"})


def console_mode(log_format: str, stream: TextIO | None = None) -> bool:
    """``console`` / ``json`` as asked; ``auto``: console when ``stream`` (stderr) is a terminal."""
    if log_format == "auto":
        target = stream if stream is not None else sys.stderr
        return bool(getattr(target, "isatty", lambda: False)())
    return log_format == "console"


class Console:
    """Counts warnings and errors by what they say; in console mode, holds warnings back
    (they are summarised) and renders errors as one readable line."""

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive
        self.counts: Counter[tuple[str, str, str, str]] = Counter()

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if method_name in _SUMMARISED or method_name in _ESCALATED:
            level = "error" if method_name in _ESCALATED else "warning"
            key = (
                level,
                str(event_dict.get("event", "")),
                str(event_dict.get("source", "") or ""),
                str(event_dict.get("reason", "") or event_dict.get("error", "") or ""),
            )
            self.counts[key] += 1
            if self.interactive and level == "warning":
                raise structlog.DropEvent
        return event_dict

    def summary(self) -> str:
        """The warnings and errors of the run, most frequent first; "none" when there were none."""
        if not self.counts:
            return "== Warnings ==\nnone"
        total = sum(self.counts.values())
        lines = [f"== Warnings ({total}) =="]
        for (level, event, source, reason), n in sorted(
            self.counts.items(), key=lambda item: (-item[1], item[0])
        ):
            what = " · ".join(p for p in (event, source or None, reason) if p)
            lines.append(f"{n:>5} × {'ERROR ' if level == 'error' else ''}{what}")
        return "\n".join(lines)


@contextlib.contextmanager
def demo_console(log_format: str, stream: TextIO | None = None) -> Iterator[Console]:
    """Wrap the current structlog configuration for the demo's run (see the module's doc)."""
    console = Console(console_mode(log_format, stream))
    saved = structlog.get_config()
    processors = list(saved["processors"])
    if console.interactive:
        # Errors still show at once, but as a line a person reads, not a JSON object.
        processors = [
            structlog.processors.add_log_level,
            console,
            structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=True),
            structlog.dev.ConsoleRenderer(colors=False),
        ]
    else:
        processors.insert(0, console)
    structlog.configure(processors=processors)
    try:
        yield console
    finally:
        structlog.configure(**saved)
