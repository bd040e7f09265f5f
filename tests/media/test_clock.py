"""The shared send clock with a fake clock: absolute deadlines, no drift, no bursts."""

from __future__ import annotations

import random

import pytest

from gateway.media.clock import PTIME, Pacer


def test_no_drift_over_an_hour_of_simulated_time_with_jittery_wake_ups() -> None:
    rng = random.Random(1)
    origin = 1234.5678
    pacer: Pacer[str] = Pacer(origin)
    first = pacer.add("a", now=origin)
    ticks = 3600 * 50
    sent = []
    deadline = pacer.next_deadline()
    while deadline is not None and len(sent) < ticks:
        # Every wake-up 0 to 15 ms late: a sleep(0.02) loop would drift by the sum, ~15 minutes.
        now = deadline + rng.uniform(0.0, 0.015)
        tick, due = pacer.wake(now)
        assert due == [("a", tick - first)]
        sent.append(tick - first)
        deadline = pacer.next_deadline()
    assert sent == list(range(ticks))
    assert pacer.ticks_skipped == 0
    # The hour's last deadline is where the arithmetic says, to a nanosecond.
    assert pacer.deadline(first + ticks - 1) == pytest.approx(
        origin + (first + ticks - 1) * PTIME, abs=1e-9
    )
    assert deadline == pytest.approx(origin + (first + ticks) * PTIME, abs=1e-9)


def test_a_late_wake_up_sends_one_frame_per_stream_and_skips_the_missed_ticks() -> None:
    pacer: Pacer[str] = Pacer(0.0)
    a = pacer.add("a", now=0.0)
    b = pacer.add("b", now=0.001)
    assert a == b == 1
    assert pacer.wake(0.02) == (1, [("a", 0), ("b", 0)])
    # The process stalls for 75 ms: ticks 2, 3, 4 and 5 are due; only tick 5 is served.
    tick, due = pacer.wake(0.1 + 0.015)
    assert (tick, due) == (5, [("a", 4), ("b", 4)])
    assert pacer.ticks_skipped == 3
    # The schedule resumes on the absolute grid, not 20 ms after the late wake-up.
    assert pacer.next_deadline() == pytest.approx(0.12)
    assert pacer.wake(0.12) == (6, [("a", 5), ("b", 5)])


def test_an_early_or_repeated_wake_up_sends_nothing() -> None:
    pacer: Pacer[str] = Pacer(10.0)
    pacer.add("a", now=10.0)
    assert pacer.wake(10.02)[1] == [("a", 0)]
    assert pacer.wake(10.025) == (1, [])
    assert pacer.wake(10.0399) == (1, [])
    assert pacer.wake(10.04)[1] == [("a", 1)]


def test_a_stream_joins_at_the_next_tick_and_leaves_at_once() -> None:
    pacer: Pacer[str] = Pacer(0.0)
    pacer.add("a", now=0.0)
    pacer.wake(0.02)
    assert pacer.add("b", now=0.031) == 2
    assert pacer.wake(0.04)[1] == [("a", 1), ("b", 0)]
    pacer.remove("a")
    assert pacer.wake(0.06)[1] == [("b", 1)]
    pacer.remove("b")
    assert pacer.next_deadline() is None
    assert len(pacer) == 0


def test_a_deadline_exactly_on_time_counts_despite_float_rounding() -> None:
    pacer: Pacer[int] = Pacer(0.1)
    pacer.add(1, now=0.1)
    for k in range(1, 2000):
        tick, due = pacer.wake(pacer.deadline(k))
        assert tick == k and due == [(1, k - 1)]
