"""The language benchmark runs on a small week and reports consistent figures (no timing is
asserted: speed figures come from running the benchmark, not from tests)."""

from __future__ import annotations

from loadtest.bench_language import bench_language, main


def test_the_language_benchmark_measures_every_opening_contact(capsys) -> None:  # type: ignore[no-untyped-def]
    result = bench_language(tickets=30, repeats=1, seed=2)
    assert result.tickets >= 25
    assert sum(result.languages.values()) == result.tickets
    assert set(result.languages) <= {"ru", "en", "und"} and "ru" in result.languages
    assert result.detect_us > 0 and result.classify_us > 0 and result.replay_us > 0
    assert 0 < result.share_of_replay < 1  # detection is part of what the replay does
    assert "detect share of the replay" in result.text()
    assert result.model_packaged_cpu_s > 0 and result.model_cached_cpu_s > 0
    assert "mapping the cached copy" in result.text()
    assert main(["--tickets", "12", "--repeats", "1", "--json"]) == 0
    assert '"vs_json"' in capsys.readouterr().out
