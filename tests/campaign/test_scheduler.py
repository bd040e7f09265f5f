"""The scheduler's rules, as tables: every decision, every SIP cause, the caps, the buckets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.campaign.scheduler import (
    STORE_RETRY,
    ContactState,
    TokenBucket,
    after_call,
    after_decision,
    after_restart,
)

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=600)
P, D, S = ContactState.PENDING, ContactState.DONE, ContactState.STOPPED


def test_allow_places_the_call() -> None:
    step = after_decision("allow", None, "ok", None, NOW)
    assert step.call and step.state is ContactState.CALLING


@pytest.mark.parametrize(
    ("verdict", "rule", "until", "state", "next_at"),
    [
        ("deny", "legal_basis", None, D, None),
        ("deny", "number", None, D, None),
        ("deny", "opposition", None, S, None),
        ("defer", "window", LATER, P, LATER),
        ("defer", "frequency", LATER, P, LATER),
        ("defer", "store", None, P, NOW + STORE_RETRY),
    ],
)
def test_decisions_other_than_allow(
    verdict: str, rule: str, until: datetime | None, state: ContactState, next_at: object
) -> None:
    step = after_decision(verdict, rule, "why", until, NOW)
    assert not step.call
    assert (step.state, step.next_at) == (state, next_at)
    assert step.reason == f"{rule}: why"


def test_unknown_verdict_is_an_error() -> None:
    with pytest.raises(ValueError, match="verdict"):
        after_decision("maybe", None, "", None, NOW)


# (outcome, cause) -> state after attempt 1 of 3; retried ones come back after retry_after.
CASES = [
    ("completed", 200, D),
    ("opted_out", 200, D),
    ("hung_up", 200, D),
    ("not_called", None, S),
    ("rejected", 408, P),
    ("no_answer", 408, P),
    ("rejected", 480, P),
    ("rejected", 486, P),
    ("rejected", 503, P),
    ("failed", 503, P),
    ("no_answer", 487, P),
    ("rejected", 500, P),
    ("error", None, P),
    ("rejected", 404, S),
    ("rejected", 484, S),
    ("rejected", 604, S),
    ("rejected", 603, S),
    ("rejected", 607, S),
    ("rejected", 403, S),
    ("rejected", 606, S),
]


@pytest.mark.parametrize(("outcome", "cause", "state"), CASES)
def test_each_cause(outcome: str, cause: int | None, state: ContactState) -> None:
    step = after_call(outcome, cause, attempts=1, max_attempts=3, retry_after=600, now=NOW)
    assert step.state is state, step
    assert step.next_at == (LATER if state is P else None)
    assert step.oppose == (cause == 607)


@pytest.mark.parametrize("cause", [408, 480, 486, 487, 503])
def test_retries_stop_at_max_attempts(cause: int) -> None:
    kw = {"max_attempts": 3, "retry_after": 600.0, "now": NOW}
    assert after_call("rejected", cause, attempts=2, **kw).state is P  # type: ignore[arg-type]
    last = after_call("rejected", cause, attempts=3, **kw)  # type: ignore[arg-type]
    assert last.state is D and "3 attempts" in last.reason


def test_603_is_never_retried_even_with_attempts_left() -> None:
    step = after_call("rejected", 603, attempts=1, max_attempts=99, retry_after=1, now=NOW)
    assert step.state is S and "never retried" in step.reason


def test_after_restart_counts_the_interrupted_attempt() -> None:
    assert after_restart(1, 3, 600, NOW).next_at == LATER
    assert after_restart(3, 3, 600, NOW).state is D


def test_bucket_spaces_calls_at_the_rate() -> None:
    bucket = TokenBucket(rate=4.0, burst=1.0, now=0.0)
    starts, t = [], 0.0
    while len(starts) < 5:
        t += bucket.wait(t)
        assert bucket.ready(t)
        bucket.take(t)
        starts.append(t)
    assert starts == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])


def test_bucket_refund_gives_the_token_back() -> None:
    bucket = TokenBucket(rate=1.0, now=0.0)
    bucket.take(0.0)
    assert bucket.wait(0.0) == pytest.approx(1.0)
    bucket.refund()
    assert bucket.ready(0.0)


def test_bucket_saves_up_to_its_burst() -> None:
    bucket = TokenBucket(rate=10.0, burst=3.0, now=0.0)
    for _ in range(3):
        bucket.take(100.0)
    assert not bucket.ready(100.0)
    with pytest.raises(ValueError):
        TokenBucket(rate=0)
