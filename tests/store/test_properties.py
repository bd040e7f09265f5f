"""Properties on the real store (both backends): caps hold, oppositions stop every later call."""

from __future__ import annotations

import itertools
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.store import Store, decide_and_reserve
from tests.consent.helpers import MONDAY_11_PARIS, record

_numbers = (f"+3361{n:07d}" for n in itertools.count(1000))
steps = st.lists(
    st.tuples(st.integers(min_value=0, max_value=9 * 24 * 3600), st.booleans()),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=steps, oppose_at=st.integers(min_value=0, max_value=15))
async def test_no_sequence_exceeds_the_cap_and_oppositions_hold(
    seeded: Store, steps: list[tuple[int, bool]], oppose_at: int
) -> None:
    number = next(_numbers)
    now = MONDAY_11_PARIS
    await seeded.add_records([record(number, collected_at=now - timedelta(days=1))], now)
    allowed: list[tuple[int, object]] = []
    opposed = False
    for i, (gap, _) in enumerate(steps):
        now += timedelta(seconds=gap)
        if i == oppose_at:
            await seeded.add_opposition(number, "maison-dupont", "dtmf", now)
            opposed = True
        d = await decide_and_reserve(seeded, "spring-offer", number, now, budget=10)
        assert d.rule != "store", d.reason
        if opposed:
            assert not d.allowed and d.rule == "opposition"
        if d.allowed:
            allowed.append((i, now))
    times = [t for _, t in allowed]
    for t in times:
        assert sum(1 for a in times if t - timedelta(days=30) < a <= t) <= 4  # type: ignore[operator]
