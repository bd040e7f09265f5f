"""The shared send clock with a fake clock: absolute deadlines, no drift, bounded bursts."""

from __future__ import annotations

import random

import pytest

from gateway.media.clock import PTIME, Pacer


def test_no_drift_over_an_hour_of_simulated_time_with_jittery_wake_ups() -> None:
    rng = random.Random(1)
    origin = 1234.5678
    pacer: Pacer[str] = Pacer(origin)
    first = pacer.add("a", now=origin)
    frames = 3600 * 50
    sent = []
    deadline = pacer.next_deadline()
    while deadline is not None and len(sent) < frames:
        # Every wake-up 0 to 15 ms late: a sleep(0.02) loop would drift by the sum, ~15 minutes.
        now = deadline + rng.uniform(0.0, 0.015)
        due = pacer.wake(now)
        assert due == [("a", len(sent))]
        sent.append(due[0][1])
        deadline = pacer.next_deadline()
    assert sent == list(range(frames))
    assert pacer.frames_skipped == 0
    # The next deadline after an hour is where the arithmetic says, to a nanosecond.
    assert deadline == pytest.approx(origin + (first + frames) * PTIME, abs=1e-9)


def test_a_late_wake_up_sends_the_missed_frames_at_once_so_the_audio_is_whole() -> None:
    pacer: Pacer[str] = Pacer(0.0)  # catch_up=5: up to 100 ms of frames at once
    assert pacer.add("a", now=0.0) == pacer.add("b", now=0.001) == 1
    assert pacer.wake(0.02) == [("a", 0), ("b", 0)]
    # The process stalls for 75 ms: frames 1, 2, 3 and 4 are due; all four go, in order.
    assert pacer.wake(0.1 + 0.015) == [(k, n) for k in "ab" for n in (1, 2, 3, 4)]
    assert pacer.frames_skipped == 0
    # The schedule resumes on the absolute grid, not 20 ms after the late wake-up.
    assert pacer.next_deadline() == pytest.approx(0.12)
    assert pacer.wake(0.12) == [("a", 5), ("b", 5)]


def test_after_a_stall_longer_than_catch_up_the_oldest_frames_are_skipped() -> None:
    pacer: Pacer[str] = Pacer(0.0, catch_up=5)
    pacer.add("a", now=0.0)
    assert pacer.wake(0.02) == [("a", 0)]
    # 300 ms without a wake-up: frames 1 to 15 are due; the far end gave up on the old ones,
    # so the latest five go (a gap of 10 frames, a burst of 5 packets and no more).
    assert pacer.wake(0.32) == [("a", n) for n in range(11, 16)]
    assert pacer.frames_skipped == 10
    assert pacer.wake(0.34) == [("a", 16)]


def test_with_catch_up_1_a_late_wake_up_sends_only_the_frame_due() -> None:
    pacer: Pacer[str] = Pacer(0.0, catch_up=1)
    pacer.add("a", now=0.0)
    pacer.add("b", now=0.0)
    assert pacer.wake(0.02) == [("a", 0), ("b", 0)]
    assert pacer.wake(0.1 + 0.015) == [("a", 4), ("b", 4)]
    assert pacer.frames_skipped == 2 * 3
    with pytest.raises(ValueError, match="at least the frame due"):
        Pacer(0.0, catch_up=0)


def test_an_early_or_repeated_wake_up_sends_nothing() -> None:
    pacer: Pacer[str] = Pacer(10.0)
    pacer.add("a", now=10.0)
    assert pacer.wake(10.02) == [("a", 0)]
    assert pacer.wake(10.025) == []
    assert pacer.wake(10.0399) == []
    assert pacer.wake(10.04) == [("a", 1)]


def test_a_stream_joins_at_the_next_slot_and_leaves_at_once() -> None:
    pacer: Pacer[str] = Pacer(0.0)
    pacer.add("a", now=0.0)
    pacer.wake(0.02)
    assert pacer.add("b", now=0.031) == 2
    assert pacer.wake(0.04) == [("a", 1), ("b", 0)]
    pacer.remove("a")
    assert pacer.wake(0.06) == [("b", 1)]
    pacer.remove("b")
    assert pacer.next_deadline() is None
    assert len(pacer) == 0


def test_a_deadline_exactly_on_time_counts_despite_float_rounding() -> None:
    pacer: Pacer[int] = Pacer(0.1, phases=7)
    pacer.add(1, now=0.1)
    first = pacer.first_slot(1)
    for n in range(2000):
        assert pacer.wake(pacer.deadline(first + 7 * n)) == [(1, n)]


def test_phases_spread_streams_over_the_period_each_on_its_own_20_ms_grid() -> None:
    pacer: Pacer[int] = Pacer(0.0, phases=10)
    firsts = [pacer.add(i, now=0.0) for i in range(25)]
    # Least busy phase, soonest first: slots 1..10 (all added at 0), then round again.
    assert firsts == [*range(1, 11), *range(1, 11), *range(1, 6)]
    sent: dict[int, list[tuple[float, int]]] = {i: [] for i in range(25)}
    per_wake = []
    deadline = pacer.next_deadline()
    while deadline is not None and deadline < 60.0:
        due = pacer.wake(deadline)
        per_wake.append(len(due))
        for key, frame in due:
            sent[key].append((deadline, frame))
        deadline = pacer.next_deadline()
    # Every wake-up serves one slot: 2 or 3 streams, never the 25 at once.
    assert max(per_wake) == 3
    assert min(per_wake) == 2
    for key, frames in sent.items():
        assert [f for _, f in frames] == list(range(len(frames)))
        # Frame n leaves exactly 20 ms * n after frame 0: the grid of each stream is 20 ms.
        t0 = frames[0][0]
        assert all(t == pytest.approx(t0 + 0.02 * n, abs=1e-9) for t, n in frames)
        assert t0 == pytest.approx(0.002 * firsts[key])


def test_with_phases_a_late_wake_up_sends_each_stream_its_missed_frames_in_order() -> None:
    pacer: Pacer[int] = Pacer(0.0, phases=4)
    for i in range(8):
        pacer.add(i, now=0.0)
    assert {k for k, _ in pacer.wake(0.02)} == set(range(8))  # first frames all due by 20 ms
    due = pacer.wake(0.02 + 0.047)  # 47 ms late: two or three slots per phase passed
    by_stream: dict[int, list[int]] = {}
    for key, frame in due:
        by_stream.setdefault(key, []).append(frame)
    assert sorted(by_stream) == list(range(8))
    for key, frames in by_stream.items():
        # every frame after frame 0 up to the latest due, none skipped, none twice
        latest = (pacer.slot_at(0.067) - pacer.first_slot(key)) // 4
        assert frames == list(range(1, latest + 1))
    assert pacer.frames_skipped == 0
    assert pacer.wake(0.0671) == []
