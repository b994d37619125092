"""The language model's cache (``streams.model_cache``): the arrays it maps are the packaged
model's, a detector answers the same with either, a broken or unwritable cache only costs the
decompression, and the commands and replay's parse processes load the model through it."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from structlog.testing import capture_logs

from loadtest.generator import generate_week
from processors import language
from processors.ids import Pseudonymizer
from processors.language import LanguageDetector
from processors.rules import load_rules
from streams.local import LocalRunner, replay_file
from streams.model_cache import ARRAYS, CachedModel, load_model, packaged_model_digest
from streams.settings import Settings

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "examples" / "rules.demo.yaml"

TEXTS = [
    "Здравствуйте, у меня не проходит оплата картой уже второй день подряд",
    "Hello, my card payment has been failing since yesterday, please help",
    "Guten Tag, meine Zahlung mit der Karte funktioniert seit gestern nicht",
    "Bonjour, mon paiement par carte ne passe pas depuis hier soir",
    "Hola, mi pago con tarjeta no funciona desde ayer por la tarde",
    "Добрий день, не можу оплатити замовлення карткою вже другий день",
]


@pytest.fixture(scope="module")
def packaged() -> Any:
    return language.packaged_model()


def entry_of(directory: Path) -> Path:
    return directory / f"py3langid-{packaged_model_digest()[:16]}"


def assert_same_model(identifier: Any, packaged: Any) -> None:
    assert np.array_equal(identifier.nb_ptc, packaged.nb_ptc)
    assert np.array_equal(identifier.nb_pc, packaged.nb_pc)
    assert identifier.nb_classes == packaged.nb_classes
    assert identifier.tk_nextmove == packaged.tk_nextmove
    assert identifier.tk_row == packaged.tk_row
    assert identifier.tk_output == packaged.tk_output


def test_the_first_load_writes_the_arrays_and_the_next_maps_them(
    tmp_path: Path, packaged: Any
) -> None:
    with capture_logs() as logs:
        written = load_model(tmp_path)
    entry = entry_of(tmp_path)
    assert sorted(path.name for path in entry.iterdir()) == sorted(f"{n}.npy" for n in ARRAYS)
    assert [e["event"] for e in logs] == ["language model cached"]
    assert_same_model(written, packaged)

    stamps = {path.name: path.stat().st_mtime_ns for path in entry.iterdir()}
    with capture_logs() as logs:
        mapped = load_model(tmp_path)
    assert logs == []
    assert {path.name: path.stat().st_mtime_ns for path in entry.iterdir()} == stamps
    assert isinstance(mapped.nb_ptc.base, np.memmap)  # read from the entry, not decompressed
    assert_same_model(mapped, packaged)


@pytest.mark.parametrize("languages", [("ru", "en"), ("ru", "en", "de", "fr", "es", "uk")])
def test_a_detector_answers_the_same_with_the_cached_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, languages: tuple[str, ...]
) -> None:
    monkeypatch.setattr(language, "_model", None)
    expected = [LanguageDetector(languages).detect(text) for text in TEXTS]
    for _ in range(2):  # written, then mapped
        monkeypatch.setattr(language, "_model", None)
        language.use_model_loader(CachedModel(tmp_path))
        try:
            assert [LanguageDetector(languages).detect(text) for text in TEXTS] == expected
        finally:
            language.use_model_loader(language.packaged_model)
    assert entry_of(tmp_path).is_dir()
    assert len(set(expected)) == len(languages)  # the texts tell the languages apart


def test_writing_an_entry_removes_other_models_entries_and_old_scratch(tmp_path: Path) -> None:
    """An upgraded py3langid writes a new entry; the old one (68 MB) would stay for ever."""
    old = tmp_path / "py3langid-0000000000000000"
    old.mkdir()
    (old / "ptc.npy").write_bytes(b"an older model")
    stale, fresh = tmp_path / ".py3langid-stale.x1", tmp_path / ".py3langid-fresh.x2"
    stale.mkdir()
    fresh.mkdir()  # a writer at work right now
    os.utime(stale, (0, 0))
    unrelated = tmp_path / "other-cache"
    unrelated.mkdir()
    load_model(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [entry_of(tmp_path).name, fresh.name, unrelated.name]
    )


def test_a_truncated_array_is_written_again(tmp_path: Path, packaged: Any) -> None:
    load_model(tmp_path)
    ptc = entry_of(tmp_path) / "ptc.npy"
    with ptc.open("r+b") as file:
        file.truncate(ptc.stat().st_size // 2)
    with capture_logs() as logs:
        identifier = load_model(tmp_path)
    assert [e["event"] for e in logs] == [
        "language model cache unreadable; writing it again",
        "language model cached",
    ]
    assert_same_model(identifier, packaged)
    assert_same_model(load_model(tmp_path), packaged)


def test_a_cache_that_cannot_be_written_costs_only_the_decompression(
    tmp_path: Path, packaged: Any
) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache directory should be")
    with capture_logs() as logs:
        identifier = load_model(blocked / "cache")
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("language model cache not written; every process decompresses the model", "warning")
    ]
    assert_same_model(identifier, packaged)
    assert [p.name for p in tmp_path.iterdir()] == ["blocked"]


def test_the_cache_directory_is_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({}).cache_dir == tmp_path / ".supportstream" / "cache"
    chosen = Settings.from_env({"SUPPORTSTREAM_CACHE_DIR": "models"}).cache_dir
    assert chosen == tmp_path / "models"  # absolute: parse processes run elsewhere


@pytest.mark.parametrize("writable", [True, False])
def test_replays_parse_process_loads_the_model_as_its_parent_does(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    writable: bool,
) -> None:
    """The parse process detects every opening contact's language (test_parse_pool); with
    the cache installed here, it maps the model from the same directory. Its warning about a
    cache it cannot write goes to standard error, never into its results."""
    path = tmp_path / "week.jsonl"
    generate_week(datetime(2026, 3, 2, tzinfo=UTC), seed=7, tickets=20).write_jsonl(path)
    if writable:
        cache = tmp_path / "cache"
    else:
        (tmp_path / "blocked").write_text("not a directory")
        cache = tmp_path / "blocked" / "cache"
    monkeypatch.setattr(language, "_loader", CachedModel(cache))
    monkeypatch.setattr(language, "_model", None)
    runner = LocalRunner(load_rules(RULES), Pseudonymizer.from_text("k"), _Discard())  # type: ignore[arg-type]
    stats = replay_file(runner, path, parse_workers=1)
    assert stats.tickets_opened > 10
    assert language._model is None  # this process never needed the model
    warned = "language model cache not written" in capfd.readouterr().err
    if writable:
        assert os.listdir(cache) == [entry_of(cache).name]
        assert not warned
    else:
        assert warned


class _Discard:
    def add_output(self, output: object) -> None:
        pass

    def flush(self) -> int:
        return 0
