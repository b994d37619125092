"""What detecting a ticket's language costs (CONTRACT §7 "Languages", docs/RULES.md).

``python -m loadtest.bench_language [--tickets 400] [--repeats 5]`` generates the demo week
(``loadtest.generator.generate_week``), takes the opening contact of every ticket as the desk
sees it (parsed, masked, subject + newline + body) and measures, in CPU time of this process:

* ``detect``: ``LanguageDetector.detect`` on every opening text (the model already loaded);
* ``classify``: the rest of the classification of the same contacts (category, kind, priority,
  queue, policy, skills; the detector given an empty text), the work language detection was
  added to;
* ``json``: ``json.loads`` of the week's lines, the same-process baseline the other benchmarks
  use (``loadtest.bench``), so that a figure does not depend on what else ran on the machine;
* ``replay``: the whole local runner over the week with the writer discarding its output, per
  ticket opened.

Each is the best of ``--repeats`` rounds. Printed: per-ticket microseconds, and the ratios that
survive a busy machine: detection against the JSON baseline per ticket, against the rest of the
classification, and its share of the whole replay's cost per ticket. The one-off model load
(once per process) is reported apart, and its CPU time both ways: decompressing the model
py3langid ships, and mapping the copy ``streams.model_cache`` keeps (``SUPPORTSTREAM_CACHE_DIR``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["LanguageBench", "bench_language", "main"]

REPO = Path(__file__).resolve().parent.parent
DEMO_RULES = REPO / "examples" / "rules.demo.yaml"


@dataclass(frozen=True)
class LanguageBench:
    tickets: int
    model_load_s: float
    model_packaged_cpu_s: float  # decompressing the model py3langid ships
    model_cached_cpu_s: float  # mapping the decompressed copy (streams.model_cache)
    detect_us: float  # per opening contact
    classify_us: float  # the rest of the classification, per opening contact
    json_us: float  # json.loads, per record line, times lines per ticket
    replay_us: float  # the whole local runner per ticket opened
    languages: dict[str, int]

    @property
    def vs_json(self) -> float:
        return self.detect_us / self.json_us

    @property
    def vs_classify(self) -> float:
        return self.detect_us / self.classify_us

    @property
    def share_of_replay(self) -> float:
        return self.detect_us / self.replay_us

    def text(self) -> str:
        langs = ", ".join(f"{k} {v}" for k, v in sorted(self.languages.items()))
        return "\n".join(
            [
                f"opening contacts: {self.tickets} ({langs})",
                f"model load (once per process): {self.model_load_s:.2f} s",
                f"model load, CPU: {self.model_packaged_cpu_s:.3f} s decompressing the packaged "
                f"model, {self.model_cached_cpu_s:.3f} s mapping the cached copy "
                f"({self.model_packaged_cpu_s / self.model_cached_cpu_s:.0f}x less)",
                f"detect: {self.detect_us:.1f} us per ticket",
                f"rest of classification: {self.classify_us:.1f} us per ticket",
                f"replay (whole desk, no sink): {self.replay_us:.1f} us per ticket",
                f"detect / JSON baseline per ticket: {self.vs_json:.2f}x",
                f"detect / rest of classification: {self.vs_classify:.2f}x",
                f"detect share of the replay per ticket: {100 * self.share_of_replay:.1f} %",
            ]
        )


def _best(repeats: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best


def bench_language(tickets: int = 400, repeats: int = 5, seed: int = 1) -> LanguageBench:
    from loadtest.bench import _DiscardingBackend, _noop_writer, _quiet_logs
    from loadtest.generator import generate_week
    from processors import language
    from processors.classify import Classifier
    from processors.ids import DEV_PII_KEY, Pseudonymizer
    from processors.model import Contact
    from processors.pii import MASKER
    from processors.rules import load_rules
    from streams.local import LocalRunner, ParseStage, read_records
    from streams.model_cache import load_model

    rules = load_rules(DEMO_RULES)
    pseudo = Pseudonymizer.from_text(DEV_PII_KEY)
    start = dt.datetime.fromisoformat("2026-03-02T00:00:00+03:00")
    week = generate_week(start, seed, tickets)
    lines = list(week.lines())
    openings = {(t.channel, round(t.opened_at.timestamp() * 1000)) for t in week.tickets}
    records, _ = read_records(lines, "week.jsonl", MASKER.mask)
    parser = ParseStage(pseudo)
    contacts: list[Contact] = []
    for record in records:
        if (record.source, record.at) not in openings:
            continue
        contacts.extend(item for item in parser.parse(record)[:1] if isinstance(item, Contact))
    texts = [f"{MASKER.mask(c.subject)}\n{MASKER.mask(c.body)}" for c in contacts]

    started = time.perf_counter()
    language._shared_model()
    model_load = time.perf_counter() - started
    # What SUPPORTSTREAM_CACHE_DIR saves every process after the first on a machine: the
    # packaged model decompressed, against the cached copy (written once here) mapped.
    packaged = _best(min(repeats, 3), language.packaged_model)
    with tempfile.TemporaryDirectory(prefix="bench-language-cache-") as cache:
        load_model(Path(cache))
        cached = _best(repeats, lambda: load_model(Path(cache)))
    detector = language.LanguageDetector(rules.languages)
    classifier = Classifier(rules)
    found: dict[str, int] = {}
    for text in texts:
        code = detector.detect(text)
        found[code] = found.get(code, 0) + 1

    detect = _best(repeats, lambda: [detector.detect(t) for t in texts])
    # The rest of the classification: the same calls with an empty text for the detector,
    # which it answers `und` at once.
    rest = _best(
        repeats,
        lambda: [
            classifier.classify(c.channel, c.subject, c.body, "active", masked="") for c in contacts
        ],
    )

    def parse_lines() -> None:
        for line in lines:
            with contextlib.suppress(ValueError):
                json.loads(line)

    json_s = _best(repeats, parse_lines)

    def replay() -> None:
        runner = LocalRunner(rules, pseudo, _noop_writer(_DiscardingBackend()))  # type: ignore[arg-type]
        for record in records:
            runner.feed(record)
        runner.finish(None)

    with _quiet_logs():
        replay_s = _best(max(1, repeats // 2), replay)

    n = max(1, len(contacts))
    return LanguageBench(
        tickets=len(contacts),
        model_load_s=model_load,
        model_packaged_cpu_s=packaged,
        model_cached_cpu_s=cached,
        detect_us=detect / n * 1e6,
        classify_us=rest / n * 1e6,
        json_us=json_s / n * 1e6,
        replay_us=replay_s / n * 1e6,
        languages=found,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_language")
    parser.add_argument("--tickets", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args(argv)
    result = bench_language(args.tickets, args.repeats, args.seed)
    if args.json:
        out: dict[str, Any] = asdict(result)
        out.update(
            vs_json=result.vs_json,
            vs_classify=result.vs_classify,
            share_of_replay=result.share_of_replay,
        )
        print(json.dumps(out, indent=2))
    else:
        print(result.text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
