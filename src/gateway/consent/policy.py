"""``decide()``: COMPLIANCE.md section 5, rule by rule, in order.

Each rule is a small pure function returning a :class:`RuleResult`. Rules 1 to 4 deny for good
(the first failure decides and the rest are skipped); rules 5 and 6 defer, and the decision then
carries the earliest time at which both could pass together. Anything unknown fails closed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from gateway.consent.evidence import TERMS_ONLY
from gateway.consent.model import (
    ADVERTISER_WIDE,
    CHANNEL,
    AdvertiserTerms,
    Basis,
    CampaignTerms,
    Decision,
    DecisionInputs,
    LegalBasisRecord,
    RuleResult,
    Verdict,
)
from gateway.consent.profiles import AUDIENCES, PURPOSES, Profile, get_profile
from gateway.consent.zones import (
    NumberFacts,
    intersect,
    intersect_hours,
    number_facts,
    open_intervals,
)

__all__ = ["RULES", "PolicySettings", "check_campaign", "decide", "frequency_bounds"]

RULES = ("campaign", "number", "opposition", "legal_basis", "window", "frequency")
_DTMF = frozenset("0123456789*#")
_CONSENT_BASES = frozenset({Basis.CONSENT, Basis.US_WRITTEN_CONSENT, Basis.US_EXPRESS_CONSENT})
_BASIS_ORDER = {b: i for i, b in enumerate(Basis)}  # consent first: the strongest basis
_INTEREST_BASES = frozenset(
    {Basis.CUSTOMER_ANALOGOUS, Basis.NON_COMMERCIAL_INTEREST, Basis.B2B_INTEREST}
)


@dataclass(frozen=True)
class PolicySettings:
    """Switches of COMPLIANCE.md section 2 ("reported but not confirmed": on by default)."""

    #: Consent valid at most one year, no tacit renewal (décret 2026-662 as reported).
    consent_max_age: bool = True
    #: How far ahead to look for the next calling window.
    horizon: timedelta = timedelta(days=62)


def frequency_bounds(
    profile: Profile, campaign_cap: tuple[int, timedelta] | None
) -> tuple[int | None, timedelta]:
    """The effective cap and window: a campaign override may only be stricter."""
    cap, window = profile.cap, profile.cap_window
    if campaign_cap is not None:
        ccap, cwin = campaign_cap
        cap = ccap if cap is None else min(cap, ccap)
        window = max(window, cwin)
    return cap, window


def decide(
    inputs: DecisionInputs, now: datetime, settings: PolicySettings | None = None
) -> Decision:
    """Decide whether ``inputs.number`` may be called for ``inputs.campaign`` at ``now``.

    ``now`` must be an aware datetime. The result is ``allow`` (the store then reserves the
    attempt), ``deny`` with the rule and reason, or ``defer`` with ``until``.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    now = now.astimezone(UTC)
    settings = settings or PolicySettings()
    trace: list[RuleResult] = []
    campaign = inputs.campaign

    def finish(verdict: Verdict, rule: str | None, reason: str, **kw: object) -> Decision:
        done = {r.rule for r in trace}
        rules = tuple(trace) + tuple(
            RuleResult(r, "skip", "not evaluated") for r in RULES if r not in done
        )
        return Decision(
            verdict=verdict,
            rule=rule,
            reason=reason,
            rules=rules,
            decided_at=now,
            number=inputs.number,
            campaign=campaign.name,
            advertiser=campaign.advertiser,
            **kw,  # type: ignore[arg-type]
        )

    # 1. Campaign.
    profile, problem = _check_campaign(inputs)
    if problem or profile is None:
        trace.append(RuleResult("campaign", "fail", problem))
        return finish(Verdict.DENY, "campaign", problem)
    trace.append(RuleResult("campaign", "pass", f"profile {profile.name}"))

    # 2. Number.
    facts = number_facts(inputs.number)
    problem = _check_number(inputs.number, facts, profile)
    if problem or facts is None:
        trace.append(RuleResult("number", "fail", problem))
        return finish(Verdict.DENY, "number", problem)
    trace.append(RuleResult("number", "pass", f"{facts.region} {facts.number_type}"))
    zone = ",".join(facts.zones)
    local = " ".join(now.astimezone(_tz(z)).isoformat(timespec="seconds") for z in facts.zones)

    # 3. Oppositions: any, for this advertiser or for all, denies for good.
    for opp in inputs.oppositions:
        if opp.scope in (campaign.advertiser, ADVERTISER_WIDE):
            scope = "all advertisers" if opp.scope == ADVERTISER_WIDE else opp.scope
            reason = f"opposition ({opp.source}, {opp.at.isoformat()}) for {scope}"
            trace.append(RuleResult("opposition", "fail", reason))
            return finish(Verdict.DENY, "opposition", reason, zone=zone, local_time=local)
    trace.append(RuleResult("opposition", "pass", "none"))

    # 4. Legal basis.
    record, reason = _legal_basis(inputs, profile, now, settings)
    if record is None:
        trace.append(RuleResult("legal_basis", "fail", reason))
        return finish(Verdict.DENY, "legal_basis", reason, zone=zone, local_time=local)
    trace.append(RuleResult("legal_basis", "pass", reason))
    basis_kw: dict[str, object] = {
        "zone": zone,
        "local_time": local,
        "basis_record_id": record.record_id or None,
        "basis_version": record.version,
    }

    # 5 and 6. Window and frequency, then the earliest time both pass together.
    hours = _effective_hours(profile, campaign.window_override)

    def windows(days: int) -> list[tuple[datetime, datetime]]:
        return intersect(
            [
                open_intervals(
                    z,
                    facts.region,
                    hours=hours,
                    closed_on_holidays=profile.closed_on_holidays,
                    margin=campaign.call_duration_bound,
                    start=now,
                    days=days,
                )
                for z in facts.zones
            ]
        )

    cap, window = frequency_bounds(profile, campaign.cap_override)
    basis_cap = profile.basis_caps.get(record.basis)
    if basis_cap is not None:
        cap = basis_cap if cap is None else min(cap, basis_cap)
    attempts = sorted(inputs.attempts)
    # Far enough to see past the oldest attempt's release, then a month of openings.
    horizon = max(settings.horizon.days, window.days + 31)
    # Today and tomorrow answer the common case; the whole horizon only when deferring.
    short = windows(2)
    intervals = short if _next_opening(short, now) == now else windows(horizon)

    opening = _next_opening(intervals, now)
    window_ok = opening == now
    if opening is None:
        reason = f"no calling window in the next {horizon} days"
        trace.append(RuleResult("window", "fail", reason))
        return finish(Verdict.DENY, "window", reason, **basis_kw)
    if window_ok:
        trace.append(RuleResult("window", "pass", f"open in {zone} at {local}"))
    else:
        trace.append(RuleResult("window", "fail", f"closed in {zone}; opens {opening.isoformat()}"))
    release = _release(attempts, cap, window, now)
    if release is None:
        trace.append(RuleResult("frequency", "pass", f"{_count(attempts, window, now)}/{cap}"))
    else:
        detail = f"{_count(attempts, window, now)} attempts in {window.days} days, cap {cap}"
        trace.append(RuleResult("frequency", "fail", detail))
    if window_ok and release is None:
        return finish(Verdict.ALLOW, None, "every rule passed", **basis_kw)

    if intervals is short:
        intervals = windows(horizon)
    until = _earliest(intervals, attempts, cap, window, now)
    rule = "window" if not window_ok else "frequency"
    reason = next(r.detail for r in trace if r.rule == rule)
    if until is None:  # e.g. a cap of 0: no time at which the answer becomes allow
        reason += f"; no time in the next {horizon} days when window and cap both allow a call"
        return finish(Verdict.DENY, rule, reason, **basis_kw)
    return finish(Verdict.DEFER, rule, reason, until=until, **basis_kw)


def _tz(zone: str) -> ZoneInfo:
    return ZoneInfo(zone)


def check_campaign(campaign: CampaignTerms, advertiser: AdvertiserTerms | None) -> list[str]:
    """Every reason ``campaign`` cannot call, for ``gateway campaign add`` (issue 4, item 2).

    Rule 1 of the decision, plus: an override of the window or the cap may only be stricter
    than the profile (COMPLIANCE.md section 4).
    """
    profile, problems = _campaign_problems(campaign, advertiser)
    if profile is not None:
        hours = _effective_hours(profile, campaign.window_override)
        if campaign.window_override and any(
            set(campaign.window_override) - set(h) for h in hours.values() if h
        ):
            problems.append("compliance.hours must lie inside the profile's hours")
        if campaign.cap_override is not None and profile.cap is not None:
            cap, window = campaign.cap_override
            if cap > profile.cap or window < profile.cap_window:
                problems.append(
                    f"compliance cap may only be stricter than {profile.cap} per "
                    f"{profile.cap_window.days} days"
                )
        if not any(hours.values()):
            problems.append("no calling hours left")
    return problems


def _check_campaign(inputs: DecisionInputs) -> tuple[Profile | None, str]:
    profile, problems = _campaign_problems(inputs.campaign, inputs.advertiser)
    return profile, "; ".join(problems)


def _campaign_problems(
    c: CampaignTerms, adv: AdvertiserTerms | None
) -> tuple[Profile | None, list[str]]:
    """Rule 1: active, announcement order, caller ID, sector (COMPLIANCE.md 5, step 1)."""
    problems: list[str] = []
    profile: Profile | None = None
    try:
        profile = get_profile(c.profile)
    except KeyError:
        problems.append(f"unknown profile {c.profile!r}")
    if not c.active:
        problems.append("campaign is not active")
    if adv is None or adv.id != c.advertiser:
        problems.append(f"advertiser {c.advertiser!r} unknown")
    if c.purpose not in PURPOSES:
        problems.append(f"unknown purpose {c.purpose!r}")
    if c.audience not in AUDIENCES:
        problems.append(f"unknown audience {c.audience!r}")
    # Identity first, the opt-out instruction right after it (L221-16; 47 CFR 64.1200(b)).
    if tuple(c.segment_order[:2]) != ("identity", "optout"):
        problems.append("announcement must start with identity then optout")
    if len(c.optout_key) != 1 or c.optout_key not in _DTMF:
        problems.append(f"opt-out key {c.optout_key!r} is not one DTMF digit")
    if not c.caller_id:
        problems.append("caller ID withheld")
    elif adv is not None and c.caller_id not in adv.caller_ids:
        problems.append(f"caller ID {c.caller_id} not authorised for {c.advertiser}")
    if profile is not None:
        if c.caller_id and not profile.caller_id_ok(c.caller_id):
            problems.append(f"caller ID {c.caller_id} not allowed by profile {profile.name}")
        if c.sector in profile.banned_sectors:
            problems.append(f"sector {c.sector} is banned")
    return profile, problems


def _check_number(number: str, facts: NumberFacts | None, profile: Profile) -> str:
    """Rule 2: valid E.164, in the profile's territory, not a protected number."""
    if facts is None:
        return f"{number!r} is not a valid E.164 number"
    if facts.region not in profile.regions:
        return f"region {facts.region or 'unknown'} is outside profile {profile.name}"
    if not facts.callable:
        return f"protected number type {facts.number_type}"
    if not facts.zones:
        return "time zone unknown"
    return ""


def _legal_basis(
    inputs: DecisionInputs, profile: Profile, now: datetime, settings: PolicySettings
) -> tuple[LegalBasisRecord | None, str]:
    """Rule 4: the latest version of each basis, checked against the profile."""
    c = inputs.campaign
    accepted = profile.accepted_bases(c.audience, c.purpose)
    if c.audience == "consumer" and c.sector in profile.contract_only_sectors:
        accepted = accepted & {Basis.CONTRACT_IN_PROGRESS}  # L223-1: contract in progress only
    latest: dict[Basis, LegalBasisRecord] = {}
    for rec in inputs.records:
        if rec.number != inputs.number or rec.advertiser != c.advertiser:
            continue
        seen = latest.get(rec.basis)
        if seen is None or (rec.version, rec.record_id) > (seen.version, seen.record_id):
            latest[rec.basis] = rec
    if not latest:
        return None, "no legal-basis record"
    refusals: list[str] = []
    order = sorted(latest.values(), key=lambda r: _BASIS_ORDER[r.basis])
    for rec in order:
        problem = _record_problem(
            rec,
            accepted,
            purpose=c.purpose,
            audience=c.audience,
            profile=profile,
            now=now,
            settings=settings,
        )
        if not problem:
            return rec, f"{rec.basis.value} v{rec.version} collected {rec.collected_at.date()}"
        refusals.append(f"{rec.basis.value}: {problem}")
    return None, "; ".join(refusals)


def _record_problem(
    rec: LegalBasisRecord,
    accepted: frozenset[Basis],
    *,
    purpose: str,
    audience: str,
    profile: Profile,
    now: datetime,
    settings: PolicySettings,
) -> str:
    if rec.withdrawn_at is not None and rec.withdrawn_at <= now:
        return f"withdrawn {rec.withdrawn_at.isoformat()}"
    if rec.basis not in accepted:
        names = ", ".join(sorted(b.value for b in accepted)) or "none"
        return f"not accepted by profile {profile.name} here (accepted: {names})"
    if CHANNEL not in rec.channels:
        return f"does not cover {CHANNEL}"
    if purpose not in rec.purposes:
        return f"does not cover purpose {purpose}"
    if rec.subject != audience:
        return f"subject {rec.subject} but audience {audience}"
    if rec.valid_until is not None and rec.valid_until <= now:
        return f"expired {rec.valid_until.isoformat()}"
    if rec.collected_at > now:
        return "collected after the decision time"
    if rec.checkbox_prechecked:
        return "pre-ticked box"
    if rec.basis in _CONSENT_BASES:
        # The import refuses these already; checked again so that no other road to the store
        # can make a call pass (issue 4, "Bad input").
        if not rec.affirmative_act or rec.affirmative_act.lower() in TERMS_ONLY:
            return "no affirmative act (terms-only consent is no consent)"
        if not rec.wording or not rec.artefact_ref or not rec.artefact_sha256:
            return "missing evidence (wording, artefact)"
        age = profile.consent_max_age
        if settings.consent_max_age and age is not None and rec.collected_at + age <= now:
            return f"consent older than {age.days} days"
    if rec.basis in _INTEREST_BASES and not (
        rec.informed_at_collection and rec.objection_offered_at_collection
    ):
        return "no information or objection at collection"
    if rec.basis is Basis.CUSTOMER_ANALOGOUS and not (rec.sale_order_id and rec.sale_date):
        return "customer with no sale"
    if rec.basis is Basis.B2B_INTEREST and not rec.profession_relation:
        return "no relation to the profession"
    if rec.basis is Basis.CONTRACT_IN_PROGRESS:
        if not rec.contract_id or rec.contract_end is None:
            return "contract without id or end"
        if rec.contract_end <= now:
            return f"contract ended {rec.contract_end.isoformat()}"
    return ""


def _effective_hours(
    profile: Profile, override: Sequence[tuple[time, time]]
) -> dict[int, tuple[tuple[time, time], ...]]:
    """The profile's hours narrowed by the campaign's override (never widened)."""
    if not override:
        return dict(profile.hours)
    return {d: intersect_hours(h, tuple(override)) for d, h in profile.hours.items()}


def _next_opening(intervals: Sequence[tuple[datetime, datetime]], t: datetime) -> datetime | None:
    for a, b in intervals:
        if b >= t:
            return max(a, t)
    return None


def _count(attempts: Sequence[datetime], window: timedelta, t: datetime) -> int:
    return sum(1 for a in attempts if t - window < a)


def _release(
    attempts: Sequence[datetime], cap: int | None, window: timedelta, t: datetime
) -> datetime | None:
    """None if another attempt fits under the cap at ``t``; else when the oldest leaves."""
    if cap is None:
        return None
    inside = [a for a in attempts if t - window < a]
    if len(inside) < cap:
        return None
    if cap <= 0:
        return datetime.max.replace(tzinfo=UTC)
    return inside[len(inside) - cap] + window


def _earliest(
    intervals: Sequence[tuple[datetime, datetime]],
    attempts: Sequence[datetime],
    cap: int | None,
    window: timedelta,
    now: datetime,
) -> datetime | None:
    """The first t >= now inside the window and under the cap: the answer can change then."""
    t = now
    for _ in range(64):
        opening = _next_opening(intervals, t)
        if opening is None:
            return None
        release = _release(attempts, cap, window, opening)
        if release is None:
            return opening
        t = release
    return None
