"""Properties (hypothesis): caps hold under any sequence; an opposition blocks for good."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.consent.model import ADVERTISER_WIDE, Opposition
from gateway.consent.policy import decide
from tests.consent.helpers import inputs, record

START = datetime(2026, 12, 1, 9, tzinfo=UTC)
steps = st.lists(st.integers(min_value=0, max_value=3 * 24 * 3600), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_no_sequence_of_decisions_exceeds_the_cap(gaps: list[int]) -> None:
    """Reserve whenever allowed, at arbitrary times: never more than 4 in any 30 days."""
    now, reserved = START, list[datetime]()
    rec = record(collected_at=START - timedelta(days=1))
    for gap in gaps:
        now += timedelta(seconds=gap)
        d = decide(inputs(records=[rec], attempts=reserved), now)
        if d.allowed:
            reserved.append(now)
        elif d.until is not None:
            assert d.until > now
    for t in reserved:
        assert sum(1 for a in reserved if t - timedelta(days=30) < a <= t) <= 4


@settings(max_examples=100, deadline=None)
@given(steps, st.integers(min_value=0, max_value=59), st.booleans())
def test_an_opposition_blocks_every_later_decision(gaps: list[int], k: int, wide: bool) -> None:
    now = START
    rec = record(collected_at=START - timedelta(days=1))
    opposition: list[Opposition] = []
    for i, gap in enumerate(gaps):
        now += timedelta(seconds=gap)
        if i == k % len(gaps):
            scope = ADVERTISER_WIDE if wide else "maison-dupont"
            opposition.append(Opposition("h", scope, "dtmf", now))
        d = decide(inputs(records=[rec], oppositions=opposition), now)
        if opposition:
            assert not d.allowed and d.rule == "opposition"


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=14 * 24 * 3600))
def test_defer_until_is_an_allow(offset: int) -> None:
    """The earliest time the answer can change is one where it is allow (no other change)."""
    now = START + timedelta(seconds=offset)
    rec = record(collected_at=START - timedelta(days=1))
    d = decide(inputs(records=[rec]), now)
    if not d.allowed:
        assert d.until is not None and d.until > now
        assert decide(inputs(records=[rec]), d.until).allowed
        assert not decide(inputs(records=[rec]), d.until - timedelta(seconds=1)).allowed
