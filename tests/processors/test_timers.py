"""The timer queue: one timer per key, popped in (instant, scheduling order) order, stale heap
entries skipped and compacted."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.timers import TimerQueue


def test_timers_pop_in_instant_order_then_scheduling_order() -> None:
    q = TimerQueue()
    q.schedule("b", 20)
    q.schedule("a", 10)
    q.schedule("c", 20)
    assert len(q) == 3 and q.peek() == 10
    assert q.pop_due(9) == []
    assert q.pop_due(20) == [(10, "a"), (20, "b"), (20, "c")]
    assert len(q) == 0 and q.peek() is None


def test_scheduling_a_key_again_replaces_its_timer() -> None:
    q = TimerQueue()
    q.schedule("t", 10)
    q.schedule("u", 15)
    q.schedule("t", 30)
    assert q.when("t") == 30 and len(q) == 2
    assert q.pop_due(20) == [(15, "u")]
    assert q.peek() == 30
    q.schedule("t", 5)
    assert q.pop_due(100) == [(5, "t")]


def test_rescheduling_to_the_same_instant_keeps_the_keys_place() -> None:
    q = TimerQueue()
    q.schedule("a", 10)
    q.schedule("b", 10)
    q.schedule("a", 10)
    assert q.pop_due(10) == [(10, "a"), (10, "b")]


def test_cancel_removes_the_timer() -> None:
    q = TimerQueue()
    q.schedule("a", 10)
    q.schedule("b", 20)
    q.cancel("a")
    q.cancel("missing")
    assert "a" not in q and "b" in q
    assert q.peek() == 20
    assert q.pop_due(100) == [(20, "b")]


def test_pop_next_lets_a_driver_interleave_rescheduled_timers() -> None:
    q = TimerQueue()
    q.schedule("a", 10)
    q.schedule("b", 15)
    fired = []
    while (item := q.pop_next(100)) is not None:
        fired.append(item)
        if item == (10, "a"):
            q.schedule("a", 12)  # a later timer of the same key, still before "b"
    assert fired == [(10, "a"), (12, "a"), (15, "b")]
    assert q.pop_next(100) is None


def test_stale_entries_are_compacted() -> None:
    q = TimerQueue()
    for key in range(1000):
        q.schedule(str(key), key)
    for round_ in range(1, 20):
        for key in range(1000):
            q.schedule(str(key), key + round_ * 1000)
    assert len(q) == 1000
    assert len(q._heap) <= 3 * 1000 + 1
    for key in range(1000):
        q.cancel(str(key))
    assert len(q) == 0 and len(q._heap) <= 64
    assert q.peek() is None


OPS = st.lists(
    st.tuples(
        st.sampled_from(["schedule", "cancel", "pop_due", "pop_next", "peek"]),
        st.sampled_from("abcdefgh"),
        st.integers(0, 50),
    ),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_behaves_like_a_sorted_dict(ops: list[tuple[str, str, int]]) -> None:
    q = TimerQueue()
    model: dict[str, tuple[int, int]] = {}
    seq = 0
    for op, key, at in ops:
        if op == "schedule":
            if key not in model or model[key][0] != at:
                model[key] = (at, seq)
                seq += 1
            q.schedule(key, at)
        elif op == "cancel":
            model.pop(key, None)
            q.cancel(key)
        elif op == "pop_due":
            due = sorted((v, k) for k, v in model.items() if v[0] <= at)
            for _, k in due:
                del model[k]
            assert q.pop_due(at) == [(v[0], k) for v, k in due]
        elif op == "pop_next":
            due = sorted((v, k) for k, v in model.items() if v[0] <= at)
            expected = None
            if due:
                (when, _), k = due[0]
                del model[k]
                expected = (when, k)
            assert q.pop_next(at) == expected
        else:
            assert q.peek() == min((v[0] for v in model.values()), default=None)
        assert len(q) == len(model)
