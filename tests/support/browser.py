"""A real browser for tests: Debian's headless Chromium renders a page from disk.

``render`` loads a copy of the page with a first script that records every uncaught script
error and ``console.error`` call on the ``<html>`` element, lets the page run (virtual time),
and returns the DOM as the browser left it plus a screenshot. No network: every host resolves
to nothing, so a page that needed one would show it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

_CAPTURE = (
    "<script>(function(){var root=document.documentElement;function note(m){"
    "root.setAttribute('data-script-errors',(root.getAttribute('data-script-errors')||'')+m+' | ');}"
    "window.addEventListener('error',function(e){note('error: '+e.message);});"
    "window.addEventListener('unhandledrejection',function(e){note('rejection: '+e.reason);});"
    "var orig=console.error;console.error=function(){note('console.error: '+"
    "Array.prototype.join.call(arguments,' '));orig.apply(console,arguments);};})();</script>"
)

_FLAGS = (
    "--headless",
    "--disable-gpu",
    "--no-sandbox",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-extensions",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--virtual-time-budget=8000",
)


@dataclass(frozen=True)
class Rendered:
    dom: str
    screenshot: Path
    script_errors: str


def render(page: Path, screenshot: Path, *, width: int = 1300, height: int = 5200) -> Rendered:
    assert CHROMIUM is not None, "chromium is not installed (make system-deps installs it)"
    text = page.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="supportstream-browser-") as tmp:
        probe = Path(tmp) / page.name
        probe.write_text(text.replace("<head>", "<head>" + _CAPTURE, 1), encoding="utf-8")
        profile = Path(tmp) / "profile"
        url = probe.as_uri()
        dom = subprocess.run(
            [CHROMIUM, *_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=240,
            check=True,
        ).stdout
        subprocess.run(
            [
                CHROMIUM,
                *_FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                f"--screenshot={screenshot}",
                url,
            ],
            capture_output=True,
            timeout=240,
            check=True,
        )
    match = re.search(r'<html[^>]*data-script-errors="([^"]*)"', dom)
    return Rendered(dom, screenshot, match.group(1) if match else "")


class _Marks(HTMLParser):
    """Per chart (a ``div.plotly-graph-div``): the drawn marks, i.e. bars (a path in a
    ``g.point``), markers (``path.point``) and lines (``path.js-line``) with a real outline."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: dict[str, int] = {}
        # One entry per open element: (the chart it belongs to, inside a g.point)
        self._stack: list[tuple[str | None, bool]] = [(None, False)]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        chart, in_point = self._stack[-1]
        if tag == "div" and "plotly-graph-div" in classes:
            chart = a.get("id") or f"chart-{len(self.marks)}"
            self.marks[chart] = 0
        if (
            chart is not None
            and tag == "path"
            and (in_point or "point" in classes or "js-line" in classes)
        ):
            outline = (a.get("d") or "").strip()
            if outline and outline != "M0,0Z":
                self.marks[chart] += 1
        if tag not in _VOID:
            self._stack.append((chart, in_point or (tag == "g" and "point" in classes)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self._stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag not in _VOID and len(self._stack) > 1:
            self._stack.pop()


_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)


def chart_marks(dom: str) -> dict[str, int]:
    """Chart id -> number of marks drawn in it."""
    parser = _Marks()
    parser.feed(dom)
    return parser.marks
