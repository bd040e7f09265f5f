"""Numbers to zones and holidays; the interval arithmetic of the calling window."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from gateway.consent.zones import intersect, intersect_hours, is_holiday, number_facts, to_e164


def test_e164_only() -> None:
    assert to_e164("+33612345678") == "+33612345678"
    assert to_e164("0612345678") is None
    assert to_e164("+1555") is None
    assert number_facts("+33 6 12 34 56 78") is None  # not written as E.164


def test_several_candidate_zones() -> None:
    facts = number_facts("+19075551234")
    assert facts is not None and facts.zones == ("America/Adak", "America/Anchorage")


def test_holidays_by_region() -> None:
    assert is_holiday("FR", date(2026, 7, 14))
    assert is_holiday("FR", date(2027, 3, 26))  # Good Friday, Alsace-Moselle
    assert is_holiday("RE", date(2027, 12, 20))
    assert not is_holiday("FR", date(2026, 11, 30))
    assert not is_holiday("XX", date(2026, 1, 1))  # unknown region: no calendar


def test_intersect_intervals() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    h = timedelta(hours=1)
    a = [(t, t + 3 * h), (t + 5 * h, t + 8 * h)]
    b = [(t + 2 * h, t + 6 * h)]
    assert intersect([a, b]) == [(t + 2 * h, t + 3 * h), (t + 5 * h, t + 6 * h)]
    assert intersect([]) == []


def test_intersect_hours() -> None:
    fr = ((time(10), time(13)), (time(14), time(20)))
    assert intersect_hours(fr, ((time(12), time(15)),)) == (
        (time(12), time(13)),
        (time(14), time(15)),
    )
