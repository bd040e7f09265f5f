"""The call script: what the callee hears and when the line drops, event by event."""

from __future__ import annotations

import pytest

from gateway.calls.script import (
    Answered,
    CommitOpposition,
    Digit,
    HangUp,
    HungUp,
    MaxDurationReached,
    OppositionCommitted,
    OppositionFailed,
    Play,
    Script,
    SegmentFinished,
    SegmentStarted,
    State,
    StopPlaying,
)

SEGMENTS = ("identity", "optout", "message")


def fr() -> Script:
    return Script(SEGMENTS, optout_key="9", confirmation="confirmation")


def us() -> Script:
    return Script(SEGMENTS, optout_key="9", confirmation=None)


def test_answer_plays_identity_then_optout_then_message() -> None:
    script = fr()
    assert script.handle(Answered(0.0)) == [Play(("identity", "optout", "message"))]
    assert script.state is State.PLAYING


def test_message_played_to_the_end_hangs_up() -> None:
    script = fr()
    script.handle(Answered(0.0))
    for name, t in (("identity", 2.0), ("optout", 4.0)):
        assert script.handle(SegmentFinished(name, t)) == []
    assert script.handle(SegmentFinished("message", 14.0)) == [HangUp("message_complete")]
    assert not script.opted_out


@pytest.mark.parametrize("segment", ["identity", "optout", "message"])
@pytest.mark.parametrize("how", ["rfc4733", "info", "inband"])
def test_optout_key_works_in_every_segment_and_form(segment: str, how: str) -> None:
    script = fr()
    script.handle(Answered(0.0))
    script.handle(SegmentStarted(segment, 1.0))
    actions = script.handle(Digit("9", how, 1.5))
    assert actions == [StopPlaying(), CommitOpposition("9", how)]
    assert script.opted_out and script.state is State.COMMITTING


def test_fr_confirms_only_after_the_commit_then_hangs_up() -> None:
    script = fr()
    script.handle(Answered(0.0))
    script.handle(Digit("9", "rfc4733", 3.0))
    # Nothing plays and nothing hangs up until the opposition is durably written.
    assert script.handle(SegmentFinished("optout", 3.1)) == []
    assert script.handle(OppositionCommitted(3.2)) == [Play(("confirmation",))]
    assert script.handle(SegmentFinished("confirmation", 5.0)) == [HangUp("opted_out")]
    order = [what for what, _ in script.timeline]
    assert order.index("opposition_committed") < order.index("hangup:opted_out")


def test_us_hangs_up_at_once_after_the_commit_without_confirmation() -> None:
    script = us()
    script.handle(Answered(0.0))
    script.handle(Digit("9", "rfc4733", 3.0))
    assert script.handle(OppositionCommitted(3.01)) == [HangUp("opted_out")]


def test_other_keys_are_recorded_and_ignored() -> None:
    script = fr()
    script.handle(Answered(0.0))
    assert script.handle(Digit("1", "rfc4733", 1.0)) == []
    assert script.state is State.PLAYING
    assert ("dtmf:1:rfc4733", 1.0) in script.timeline


def test_key_before_answer_or_after_hangup_does_nothing() -> None:
    script = fr()
    assert script.handle(Digit("9", "rfc4733", 0.0)) == []
    script.handle(Answered(0.0))
    script.handle(SegmentFinished("message", 10.0))
    assert script.handle(Digit("9", "rfc4733", 10.1)) == []
    assert not script.opted_out


def test_second_press_does_not_commit_twice() -> None:
    script = fr()
    script.handle(Answered(0.0))
    script.handle(Digit("9", "rfc4733", 1.0))
    assert script.handle(Digit("9", "inband", 1.05)) == []


def test_commit_is_retried_and_never_confirmed_when_it_keeps_failing() -> None:
    script = fr()
    script.handle(Answered(0.0))
    script.handle(Digit("9", "rfc4733", 1.0))
    assert script.handle(OppositionFailed("db locked", 1.1)) == [CommitOpposition("9", "rfc4733")]
    assert script.handle(OppositionFailed("db locked", 1.2)) == [CommitOpposition("9", "rfc4733")]
    actions = script.handle(OppositionFailed("db locked", 1.3))
    assert actions == [HangUp("opposition_not_committed")]
    assert Play(("confirmation",)) not in actions


def test_far_end_bye_while_committing_still_records_the_commit() -> None:
    script = fr()
    script.handle(Answered(0.0))
    script.handle(Digit("9", "rfc4733", 1.0))
    assert script.handle(HungUp(1.01)) == []
    assert script.state is State.ENDED
    assert script.handle(OppositionCommitted(1.02)) == []
    assert ("opposition_committed", 1.02) in script.timeline


def test_max_duration_stops_and_hangs_up_but_never_interrupts_a_commit() -> None:
    script = fr()
    script.handle(Answered(0.0))
    assert script.handle(MaxDurationReached(60.0)) == [StopPlaying(), HangUp("max_duration")]
    committing = fr()
    committing.handle(Answered(0.0))
    committing.handle(Digit("9", "rfc4733", 59.9))
    assert committing.handle(MaxDurationReached(60.0)) == []
    assert committing.handle(OppositionCommitted(60.01)) == [Play(("confirmation",))]


@pytest.mark.parametrize("key", ["", "99", "x", "A"])
def test_optout_key_must_be_one_dtmf_digit(key: str) -> None:
    with pytest.raises(ValueError, match="one DTMF digit"):
        Script(SEGMENTS, optout_key=key, confirmation=None)
