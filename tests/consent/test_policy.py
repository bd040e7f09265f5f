"""decide(), rule by rule: COMPLIANCE.md section 5, table-driven."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, time, timedelta

import pytest

from gateway.consent.model import ADVERTISER_WIDE, Basis, Opposition, Verdict
from gateway.consent.policy import RULES, PolicySettings, check_campaign, decide
from tests.consent.helpers import (
    FR_ADVERTISER,
    FR_CAMPAIGN,
    MOBILE,
    MONDAY_11_PARIS,
    NY,
    US_ADVERTISER,
    US_CAMPAIGN,
    inputs,
    record,
)


def paris(*args: int) -> datetime:
    """A Paris wall-clock time in winter (UTC+1) as UTC."""
    return datetime(*args, tzinfo=UTC) - timedelta(hours=1)  # type: ignore[misc,arg-type]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc,arg-type]


OLD = utc(2025, 12, 1)  # a consent collected before every date below, less than a year before


# -- window edges, weekends, holidays, daylight saving, overseas ---------------------------------
@pytest.mark.parametrize(
    ("number", "now", "verdict", "until"),
    [
        # D223-9: 10:00-13:00 and 14:00-20:00; the 60 s message must end inside the window.
        (MOBILE, paris(2026, 11, 30, 9, 59, 59), "defer", paris(2026, 11, 30, 10)),
        (MOBILE, paris(2026, 11, 30, 10, 0, 0), "allow", None),
        (MOBILE, paris(2026, 11, 30, 12, 59, 0), "allow", None),
        (MOBILE, paris(2026, 11, 30, 12, 59, 1), "defer", paris(2026, 11, 30, 14)),
        (MOBILE, paris(2026, 11, 30, 13, 30), "defer", paris(2026, 11, 30, 14)),
        (MOBILE, paris(2026, 11, 30, 19, 59, 0), "allow", None),
        (MOBILE, paris(2026, 11, 30, 19, 59, 1), "defer", paris(2026, 12, 1, 10)),
        # Weekend: Friday evening and Saturday wait for Monday.
        (MOBILE, paris(2026, 12, 4, 20, 30), "defer", paris(2026, 12, 7, 10)),
        (MOBILE, paris(2026, 12, 5, 11), "defer", paris(2026, 12, 7, 10)),
        # Christmas (Friday) then the weekend.
        (MOBILE, paris(2026, 12, 25, 11), "defer", paris(2026, 12, 28, 10)),
        # Good Friday (Alsace-Moselle, taken for all France), Easter Monday, then Tuesday in
        # summer time (UTC+2) after the change of 28 March 2027.
        (MOBILE, utc(2027, 3, 26, 10), "defer", utc(2027, 3, 30, 8)),
        # Spring change of 29 March 2026: Monday 10:00 CEST is 08:00 UTC.
        (MOBILE, utc(2026, 3, 27, 19, 30), "defer", utc(2026, 3, 30, 8)),
        (MOBILE, utc(2026, 3, 30, 8), "allow", None),
        (MOBILE, utc(2026, 3, 30, 7, 59, 59), "defer", utc(2026, 3, 30, 8)),
        # Autumn change of 25 October 2026: Monday 26, 10:00 CET is 09:00 UTC.
        (MOBILE, utc(2026, 10, 26, 8, 30), "defer", utc(2026, 10, 26, 9)),
        # Réunion (UTC+4, no DST): 13:00 local is the lunch break.
        ("+262262123456", utc(2026, 11, 30, 9), "defer", utc(2026, 11, 30, 10)),
        ("+262262123456", utc(2026, 11, 30, 6), "allow", None),
        # Réunion's 20 December (Abolition of Slavery), a Monday in 2027.
        ("+262262123456", utc(2027, 12, 20, 7), "defer", utc(2027, 12, 21, 6)),
        # A Réunion mobile may be in Mayotte (UTC+3): the intersection opens at 10:00 Mayotte.
        ("+262692123456", utc(2026, 11, 30, 6, 30), "defer", utc(2026, 11, 30, 7)),
        # Guadeloupe (UTC-4).
        ("+590690123456", utc(2026, 11, 30, 13, 30), "defer", utc(2026, 11, 30, 14)),
    ],
)
def test_fr_calling_window(
    number: str, now: datetime, verdict: str, until: datetime | None
) -> None:
    d = decide(inputs(number, records=[record(number, collected_at=now - timedelta(days=30))]), now)
    assert (d.verdict.value, d.until) == (verdict, until), d.reason
    if verdict == "defer":
        assert d.rule == "window"


@pytest.mark.parametrize(
    ("number", "now", "verdict", "until"),
    [
        # 47 CFR 64.1200(c)(1): 08:00-21:00 local, weekends included.
        (NY, utc(2026, 11, 28, 12, 59, 59), "defer", utc(2026, 11, 28, 13)),
        (NY, utc(2026, 11, 28, 13), "allow", None),
        (NY, utc(2026, 11, 29, 1, 59), "allow", None),  # Saturday 20:59 minus the 60 s message
        (NY, utc(2026, 11, 29, 1, 59, 1), "defer", utc(2026, 11, 29, 13)),
        # Alaska: Adak (UTC-10) and Anchorage (UTC-9): 08:00 in Adak is 18:00 UTC.
        ("+19075551234", utc(2026, 11, 30, 17, 30), "defer", utc(2026, 11, 30, 18)),
        ("+19075551234", utc(2026, 11, 30, 18), "allow", None),
        # Thanksgiving is no closing day in the US profile.
        (NY, utc(2026, 11, 26, 15), "allow", None),
    ],
)
def test_us_calling_window(
    number: str, now: datetime, verdict: str, until: datetime | None
) -> None:
    rec = record(
        number, Basis.US_WRITTEN_CONSENT, advertiser="acme", collected_at=OLD - timedelta(days=300)
    )
    d = decide(inputs(number, US_CAMPAIGN, US_ADVERTISER, records=[rec]), now)
    assert (d.verdict.value, d.until) == (verdict, until), d.reason


def test_campaign_window_override_only_narrows() -> None:
    c = dataclasses.replace(FR_CAMPAIGN, window_override=((time(0), _t(11)),))
    d = decide(inputs(campaign=c), paris(2026, 11, 30, 10, 59, 30))
    assert d.verdict is Verdict.DEFER and d.until == paris(2026, 12, 1, 10)
    assert decide(inputs(campaign=c), paris(2026, 11, 30, 10, 30)).allowed


def _t(h: int) -> time:
    return time(h)


# -- frequency ---------------------------------------------------------------------------------
def test_fourth_attempt_allowed_fifth_deferred_until_oldest_leaves() -> None:
    now = paris(2026, 11, 30, 11)
    three = [now - timedelta(days=d) for d in (20, 10, 1)]
    assert decide(inputs(attempts=three), now).allowed
    four = [now - timedelta(days=d) for d in (20, 10, 5, 1)]
    d = decide(inputs(attempts=four), now)
    assert (d.verdict, d.rule) == (Verdict.DEFER, "frequency")
    # The oldest (20 days ago, Tuesday 10 Nov at 11:00) leaves on Thursday 10 Dec at 11:00.
    assert d.until == paris(2026, 12, 10, 11)


def test_frequency_release_outside_window_waits_for_next_opening() -> None:
    now = paris(2026, 11, 30, 11)
    # The oldest of four leaves on Saturday 12 Dec at 11:00: the answer changes Monday 10:00.
    four = [paris(2026, 11, 12, 11), *[now - timedelta(days=d) for d in (3, 2, 1)]]
    d = decide(inputs(attempts=four), now)
    assert d.until == paris(2026, 12, 14, 10)


def test_a_longer_campaign_window_defers_past_the_default_horizon() -> None:
    c = dataclasses.replace(FR_CAMPAIGN, cap_override=(1, timedelta(days=90)))
    now = paris(2026, 11, 30, 11)
    d = decide(inputs(campaign=c, attempts=[now - timedelta(days=1)]), now)
    # Released on Saturday 27 February 2027 at 11:00: the answer changes on Monday at 10:00.
    assert d.verdict is Verdict.DEFER and d.until == paris(2027, 3, 1, 10)


def test_a_cap_of_zero_denies() -> None:
    c = dataclasses.replace(FR_CAMPAIGN, cap_override=(0, timedelta(days=30)))
    d = decide(inputs(campaign=c), paris(2026, 11, 30, 11))
    assert (d.verdict, d.rule) == (Verdict.DENY, "frequency")


def test_attempts_older_than_the_window_do_not_count() -> None:
    now = paris(2026, 11, 30, 11)
    old = [now - timedelta(days=30)] * 10
    assert decide(inputs(attempts=old), now).allowed


def test_us_exempt_basis_capped_at_three_per_30_days() -> None:
    charity = dataclasses.replace(US_CAMPAIGN, purpose="charity")
    rec = record(NY, Basis.US_EXEMPT, advertiser="acme", purposes=("charity",), collected_at=OLD)
    now = utc(2026, 11, 30, 15)
    two = [now - timedelta(days=1)] * 2
    assert decide(inputs(NY, charity, US_ADVERTISER, [rec], attempts=two), now).allowed
    d = decide(inputs(NY, charity, US_ADVERTISER, [rec], attempts=[*two, now]), now)
    assert d.rule == "frequency"


# -- oppositions -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("scope", "denied"),
    [("maison-dupont", True), (ADVERTISER_WIDE, True), ("someone-else", False)],
)
def test_opposition_scopes(scope: str, denied: bool) -> None:
    opp = Opposition("h", scope, "dtmf", utc(2026, 11, 1))
    d = decide(inputs(oppositions=[opp]), MONDAY_11_PARIS)
    assert (d.rule == "opposition") is denied
    assert d.allowed is not denied


# -- legal basis -------------------------------------------------------------------------------
NOW = MONDAY_11_PARIS


@pytest.mark.parametrize(
    ("records", "allowed", "why"),
    [
        ([], False, "no legal-basis record"),
        ([record(withdrawn_at=NOW - timedelta(days=1))], False, "withdrawn"),
        ([record(withdrawn_at=NOW + timedelta(days=1))], True, ""),
        ([record(valid_until=NOW - timedelta(seconds=1))], False, "expired"),
        ([record(collected_at=NOW - timedelta(days=366))], False, "older than 365 days"),
        ([record(checkbox_prechecked=True)], False, "pre-ticked"),
        # Refused at import, and again here if a record reached the store another way.
        ([record(affirmative_act="general_terms")], False, "terms-only"),
        ([record(wording="")], False, "missing evidence"),
        ([record(channels=("sms",))], False, "automated_call"),
        ([record(purposes=("charity",))], False, "purpose commercial"),
        ([record(advertiser="other")], False, "no legal-basis record"),
        ([record(subject="professional")], False, "subject professional"),
        # Since 11 Aug 2026 a past customer is no basis under "fr" (L223-1).
        (
            [record(basis=Basis.CUSTOMER_ANALOGOUS, sale_order_id="o1", sale_date=NOW.date())],
            False,
            "not accepted by profile fr",
        ),
        (
            [
                record(
                    basis=Basis.CONTRACT_IN_PROGRESS,
                    contract_id="c1",
                    contract_end=NOW + timedelta(days=90),
                )
            ],
            True,
            "",
        ),
        (
            [
                record(
                    basis=Basis.CONTRACT_IN_PROGRESS,
                    contract_id="c1",
                    contract_end=NOW - timedelta(days=1),
                )
            ],
            False,
            "contract ended",
        ),
        # A newer version withdraws the older one.
        ([record(), record(version=2, withdrawn_at=NOW - timedelta(hours=1))], False, "withdrawn"),
        ([record(version=2), record(withdrawn_at=NOW - timedelta(hours=1))], True, ""),
    ],
)
def test_legal_basis_fr(records: list[object], allowed: bool, why: str) -> None:
    d = decide(inputs(records=records), NOW)  # type: ignore[arg-type]
    assert d.allowed is allowed, d.reason
    if not allowed:
        assert d.rule == "legal_basis" and why in d.reason


def test_consent_age_switch_off_accepts_old_consent() -> None:
    old = [record(collected_at=NOW - timedelta(days=400))]
    assert not decide(inputs(records=old), NOW).allowed
    assert decide(inputs(records=old), NOW, PolicySettings(consent_max_age=False)).allowed


def test_fr_2022_profile_accepts_customer_with_sale_evidence() -> None:
    c = dataclasses.replace(FR_CAMPAIGN, profile="fr-2022")
    rec = record(basis=Basis.CUSTOMER_ANALOGOUS, sale_order_id="o1", sale_date=NOW.date())
    assert decide(inputs(campaign=c, records=[rec]), NOW).allowed
    no_sale = dataclasses.replace(rec, sale_order_id="")
    d = decide(inputs(campaign=c, records=[no_sale]), NOW)
    assert "customer with no sale" in d.reason


def test_professional_audience_accepts_b2b_interest_with_relation() -> None:
    c = dataclasses.replace(FR_CAMPAIGN, audience="professional")
    rec = record(basis=Basis.B2B_INTEREST, subject="professional", profession="plumber",
                 profession_relation="plumbing supplies")  # fmt: skip
    assert decide(inputs(campaign=c, records=[rec]), NOW).allowed
    d = decide(inputs(campaign=c, records=[dataclasses.replace(rec, profession_relation="")]), NOW)
    assert "relation to the profession" in d.reason


def test_non_commercial_accepts_interest_only_with_information_and_objection() -> None:
    c = dataclasses.replace(FR_CAMPAIGN, purpose="charity")
    rec = record(basis=Basis.NON_COMMERCIAL_INTEREST, purposes=("charity",))
    assert decide(inputs(campaign=c, records=[rec]), NOW).allowed
    bad = dataclasses.replace(rec, objection_offered_at_collection=False)
    assert not decide(inputs(campaign=c, records=[bad]), NOW).allowed


def test_banned_sector_needs_a_running_contract() -> None:
    c = dataclasses.replace(FR_CAMPAIGN, sector="energy_renovation")
    d = decide(inputs(campaign=c), NOW)
    assert d.rule == "legal_basis" and "accepted: contract_in_progress" in d.reason
    contract = record(basis=Basis.CONTRACT_IN_PROGRESS, contract_id="c",
                      contract_end=NOW + timedelta(days=9))  # fmt: skip
    assert decide(inputs(campaign=c, records=[contract]), NOW).allowed


def test_us_telemarketing_needs_written_consent() -> None:
    express = record(NY, Basis.US_EXPRESS_CONSENT, advertiser="acme")
    d = decide(inputs(NY, US_CAMPAIGN, US_ADVERTISER, [express]), utc(2026, 11, 30, 15))
    assert d.rule == "legal_basis"
    info = dataclasses.replace(US_CAMPAIGN, purpose="informational")
    express = dataclasses.replace(express, purposes=("informational",))
    assert decide(inputs(NY, info, US_ADVERTISER, [express]), utc(2026, 11, 30, 15)).allowed


# -- campaign and number -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"active": False}, "not active"),
        ({"caller_id": "+33612000000"}, "not allowed by profile fr"),
        ({"caller_id": "+33162999999"}, "not authorised"),
        ({"caller_id": ""}, "withheld"),
        ({"optout_key": "99"}, "one DTMF digit"),
        ({"sector": "cpf_training"}, "banned"),
        ({"profile": "de"}, "unknown profile"),
        ({"advertiser": "nobody"}, "advertiser 'nobody' unknown"),
    ],
)
def test_campaign_rule_denies(change: dict[str, object], why: str) -> None:
    c = dataclasses.replace(FR_CAMPAIGN, **change)  # type: ignore[arg-type]
    d = decide(inputs(campaign=c), NOW)
    assert (d.verdict, d.rule) == (Verdict.DENY, "campaign") and why in d.reason
    assert [r.result for r in d.rules] == ["fail", "skip", "skip", "skip", "skip", "skip"]


def test_announcement_must_start_with_identity_then_optout() -> None:
    a = FR_CAMPAIGN.announcement
    swapped = dataclasses.replace(a, segments=(a.segments[1], a.segments[0], a.segments[2]))
    c = dataclasses.replace(FR_CAMPAIGN, announcement=swapped)
    assert "identity then optout" in decide(inputs(campaign=c), NOW).reason


def test_no_advertiser_fails_closed() -> None:
    assert decide(inputs(advertiser=None), NOW).rule == "campaign"


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("0612345678", "not a valid E.164"),
        ("+3361234", "not a valid E.164"),
        ("+33 6 12 34 56 78", "not a valid E.164"),
        ("+33891234567", "premium_rate"),
        ("+33800123456", "toll_free"),
        ("+447911123456", "outside profile fr"),
        (NY, "outside profile fr"),
    ],
)
def test_number_rule_denies(number: str, why: str) -> None:
    d = decide(inputs(number, records=[record(number)]), NOW)
    assert d.rule == "number" and why in d.reason


def test_allow_traces_every_rule_in_order() -> None:
    d = decide(inputs(), NOW)
    assert d.allowed and d.rule is None
    assert [r.rule for r in d.rules] == list(RULES)
    assert all(r.result == "pass" for r in d.rules)
    assert d.zone == "Europe/Paris" and d.local_time.startswith("2026-11-30T11:00:00+01:00")


def test_check_campaign_refuses_looser_overrides() -> None:
    c = dataclasses.replace(FR_CAMPAIGN, cap_override=(5, timedelta(days=30)))
    assert any("stricter" in p for p in check_campaign(c, FR_ADVERTISER))
    c = dataclasses.replace(FR_CAMPAIGN, window_override=((_t(9), _t(12)),))
    assert any("inside the profile" in p for p in check_campaign(c, FR_ADVERTISER))
    assert check_campaign(FR_CAMPAIGN, FR_ADVERTISER) == []


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        decide(inputs(), datetime(2026, 11, 30, 11))
