"""Listing the campaigns: the opt-out line serves the caller IDs of every one of them."""

from __future__ import annotations

import dataclasses

from gateway.store.base import Store
from tests.consent.helpers import FR_CAMPAIGN, MONDAY_11_PARIS


async def test_every_campaign_is_listed_once_whatever_its_versions(seeded: Store) -> None:
    other = dataclasses.replace(FR_CAMPAIGN, name="autumn-offer")
    changed = dataclasses.replace(FR_CAMPAIGN, optout_key="8")
    await seeded.put_campaign(other, MONDAY_11_PARIS)
    await seeded.put_campaign(changed, MONDAY_11_PARIS)  # a second version of spring-offer
    assert await seeded.campaign_names() == ["autumn-offer", "spring-offer"]
