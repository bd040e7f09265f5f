"""Advertiser and campaign files: the issue's examples load; every problem is reported at once."""

from __future__ import annotations

from datetime import time, timedelta

import pytest

from gateway.campaign.model import DefinitionError, load_advertiser, load_campaign
from tests.consent.helpers import FR_CAMPAIGN_TOML

ISSUE_5_KEYS = (
    FR_CAMPAIGN_TOML.replace('language = "fr"', 'language = "fr"\ntrunk = "main"').replace(
        "[campaign.limits]\nmax_call_duration = 60\n",
        "[campaign.limits]\ncalls_per_second = 5\nmax_concurrent = 50\nmax_attempts = 3\n"
        "retry_after = 3600\nring_timeout = 25\nmax_call_duration = 90\nfuture_knob = 1\n",
    )
    + 'confirmation = { text = "Vous ne serez plus appelé." }\n'
)


def test_issue_examples_load() -> None:
    adv = load_advertiser(
        '[advertiser]\nid = "maison-dupont"\nlegal_name = "Maison Dupont SARL"\ncountry = "FR"\n'
        'callback_number = "+33162000001"\ncaller_ids = ["+33162000001"]\n'
    )
    assert adv.caller_ids == ("+33162000001",)
    c = load_campaign(FR_CAMPAIGN_TOML)
    assert c.segment_order == ("identity", "optout", "message")
    assert c.announcement.get("message") is not None and c.call_duration_bound.seconds == 60


def test_issue_5_keys_are_accepted_and_kept() -> None:
    c = load_campaign(ISSUE_5_KEYS)
    assert c.trunk == "main" and c.limits.ring_timeout == 25 and c.limits.max_concurrent == 50
    assert c.limits.extra == {"future_knob": 1}
    assert c.announcement.confirmation is not None
    assert c.raw["trunk"] == "main"


def test_caller_ids_may_carry_their_authorisation() -> None:
    adv = load_advertiser(
        '[advertiser]\nid = "a"\nlegal_name = "A"\ncountry = "FR"\n'
        'callback_number = "+33162000001"\n'
        'caller_ids = [{ number = "+33162000001", reference = "ARCEP 2026-17" }]\n'
    )
    assert adv.caller_id_refs == {"+33162000001": "ARCEP 2026-17"}


def test_compliance_override() -> None:
    c = load_campaign(
        FR_CAMPAIGN_TOML
        + '[campaign.compliance]\nhours = ["10:00-12:00"]\ncap = 2\ncap_days = 60\n'
    )
    assert c.window_override == ((time(10), time(12)),)
    assert c.cap_override == (2, timedelta(days=60))


@pytest.mark.parametrize(
    ("text", "reasons"),
    [
        ("nothing = 1\n", ["[campaign] table is missing"]),
        ("[campaign\n", ["not valid TOML"]),
        (
            '[campaign]\nname = 3\ncolour = "red"\n[campaign.announcement]\n'
            'identity = { text = "x", audio = "y" }\n',
            [
                "campaign.colour is not a known key",
                "campaign.name must be a string",
                "campaign.advertiser is missing",
                "campaign.announcement.identity must be",
                "campaign.announcement.optout is missing",
            ],
        ),
    ],
)
def test_every_problem_at_once(text: str, reasons: list[str]) -> None:
    with pytest.raises(DefinitionError) as err:
        load_campaign(text, "c.toml")
    for reason in reasons:
        assert any(reason in r for r in err.value.reasons), err.value.reasons
    assert str(err.value).startswith("c.toml: ")


def test_bad_advertiser() -> None:
    with pytest.raises(DefinitionError) as err:
        load_advertiser('[advertiser]\nid = "a"\ncountry = "France"\ncallback_number = "01"\n')
    text = str(err.value)
    assert "legal_name is missing" in text and "two-letter" in text and "E.164" in text
    assert "caller_ids must be a non-empty list" in text
