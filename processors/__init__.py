"""The domain: pure, deterministic, no I/O (docs/REPLAY.md). Some modules run compiled with
mypyc (``processors.native``); ``SUPPORTSTREAM_INTERPRETED=1`` runs them from their sources."""

import os

if os.environ.get("SUPPORTSTREAM_INTERPRETED") == "1":
    from processors.native import run_interpreted

    run_interpreted()
