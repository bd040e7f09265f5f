"""Builders shared by the consent tests: a French and a US campaign, records, inputs."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from gateway.campaign.model import Advertiser, Campaign, load_advertiser, load_campaign
from gateway.consent.model import Basis, DecisionInputs, LegalBasisRecord, Opposition

FR_ADVERTISER = load_advertiser(
    """
[advertiser]
id = "maison-dupont"
legal_name = "Maison Dupont SARL"
country = "FR"
callback_number = "+33162000001"
caller_ids = ["+33162000001", "+33612000000"]
"""
)
US_ADVERTISER = load_advertiser(
    """
[advertiser]
id = "acme"
legal_name = "Acme Inc."
country = "US"
callback_number = "+12125550100"
caller_ids = ["+12125550100"]
"""
)

FR_CAMPAIGN_TOML = """
[campaign]
name = "spring-offer"
advertiser = "maison-dupont"
purpose = "commercial"
audience = "consumer"
sector = "general"
profile = "fr"
caller_id = "+33162000001"
optout_key = "9"
language = "fr"
[campaign.limits]
max_call_duration = 60
[campaign.announcement]
identity = { text = "Bonjour, ceci est un message de Maison Dupont." }
optout = { text = "Pour ne plus recevoir nos appels, appuyez sur 9." }
message = { audio = "spring.wav" }
"""
FR_CAMPAIGN = load_campaign(FR_CAMPAIGN_TOML)
US_CAMPAIGN = dataclasses.replace(
    FR_CAMPAIGN, name="us-offer", advertiser="acme", profile="us", caller_id="+12125550100"
)

MOBILE = "+33612345678"
NY = "+12125551234"
#: Sunday 2026-11-29 10:00 UTC; Monday 2026-11-30 is an ordinary working day.
MONDAY_11_PARIS = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def record(number: str = MOBILE, basis: Basis = Basis.CONSENT, **kw: object) -> LegalBasisRecord:
    base: dict[str, object] = {
        "number": number,
        "advertiser": "maison-dupont",
        "basis": basis,
        "subject": "consumer",
        "purposes": ("commercial",),
        "channels": ("automated_call",),
        "collected_at": datetime(2026, 6, 1, tzinfo=UTC),
        "source": "web form",
        "collected_by": "maison-dupont",
        "wording": "J'accepte d'être appelé.",
        "artefact_ref": "form-1",
        "artefact_sha256": "0" * 64,
        "checkbox_prechecked": False,
        "affirmative_act": "checkbox",
        "informed_at_collection": True,
        "objection_offered_at_collection": True,
    }
    base.update(kw)
    return LegalBasisRecord(**base)  # type: ignore[arg-type]


def inputs(
    number: str = MOBILE,
    campaign: Campaign = FR_CAMPAIGN,
    advertiser: Advertiser | None = FR_ADVERTISER,
    records: Sequence[LegalBasisRecord] | None = None,
    *,
    oppositions: Sequence[Opposition] = (),
    attempts: Sequence[datetime] = (),
) -> DecisionInputs:
    return DecisionInputs(
        number=number,
        campaign=campaign,
        advertiser=advertiser,
        records=[record(number)] if records is None else records,
        oppositions=oppositions,
        attempts=attempts,
    )


def days(n: float) -> timedelta:
    return timedelta(days=n)
