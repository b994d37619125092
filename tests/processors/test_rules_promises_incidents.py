"""The rules keys of CONTRACT §7 ``promises`` and ``incidents``: defaults, values, and refusals
that name the path and what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from processors.rules import IncidentsSpec, PromisesSpec, RulesError, load_rules, rules_from_mapping

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _rules(**extra: Any) -> Any:
    return rules_from_mapping(
        {"version": 1, "queues": [{"name": "general", "default": True}], **extra}, "r.yaml"
    )


def test_absent_keys_mean_no_promises_and_no_incidents() -> None:
    rules = _rules()
    assert (rules.promises, rules.incidents) == (None, None)


def test_empty_mappings_take_the_contract_defaults() -> None:
    rules = _rules(promises={}, incidents={})
    assert rules.promises == PromisesSpec(percentile=80, window=100, min_samples=20)
    assert rules.incidents == IncidentsSpec(
        window_ms=3_600_000, min_customers=5, factor=3, baseline_ms=7 * 86_400_000
    )


def test_values_are_read() -> None:
    rules = _rules(
        promises={"percentile": 95.5, "window": 50, "min_samples": 50},
        incidents={"window": "30m", "min_customers": 3, "factor": 2.5, "baseline": "1d12h"},
    )
    assert rules.promises == PromisesSpec(95.5, 50, 50)
    assert rules.incidents == IncidentsSpec(1_800_000, 3, 2.5, 36 * 3_600_000)


@pytest.mark.parametrize(
    ("extra", "path", "reason"),
    [
        ({"promises": {"percentile": 0}}, "promises.percentile", "from 1 to 100"),
        ({"promises": {"percentile": 101}}, "promises.percentile", "from 1 to 100"),
        ({"promises": {"percentile": True}}, "promises.percentile", "from 1 to 100"),
        ({"promises": {"window": 0}}, "promises.window", "above zero"),
        ({"promises": {"min_samples": 2.5}}, "promises.min_samples", "whole number"),
        ({"promises": {"window": 10, "min_samples": 11}}, "promises.min_samples", "never"),
        ({"promises": {"percentil": 80}}, "promises.percentil", 'did you mean "percentile"'),
        ({"promises": [80]}, "promises", "mapping"),
        ({"incidents": {"window": "1x"}}, "incidents.window", "not a duration"),
        ({"incidents": {"baseline": 7}}, "incidents.baseline", "not a duration"),
        ({"incidents": {"min_customers": 0}}, "incidents.min_customers", "above zero"),
        ({"incidents": {"factor": -1}}, "incidents.factor", "at least 0"),
        ({"incidents": {"factor": "3"}}, "incidents.factor", "at least 0"),
        ({"incidents": {"min_customer": 5}}, "incidents.min_customer", "did you mean"),
    ],
)
def test_bad_values_are_refused_with_their_path(extra: Any, path: str, reason: str) -> None:
    with pytest.raises(RulesError) as caught:
        _rules(**extra)
    assert caught.value.path == path
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"r.yaml: {path}: ")


def test_the_demo_rules_promise_and_detect_incidents() -> None:
    rules = load_rules(EXAMPLES / "rules.demo.yaml")
    assert rules.promises == PromisesSpec(80, 100, 20)
    assert rules.incidents is not None and rules.incidents.min_customers == 6
