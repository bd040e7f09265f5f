"""Validation at import: every refusal of COMPLIANCE.md section 4 with its precise reason."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.consent.evidence import fingerprint, record_from_json, record_to_json, validate
from gateway.consent.model import Basis

GOOD: dict[str, object] = {
    "number": "+33612345678",
    "advertiser": "maison-dupont",
    "basis": "consent",
    "subject": "consumer",
    "purposes": "commercial",
    "channels": "automated_call;sms",
    "collected_at": "2026-09-01T10:00:00+02:00",
    "source": "web form",
    "collected_by": "maison-dupont",
    "wording": "J'accepte d'être appelé par Maison Dupont.",
    "artefact_ref": "forms/2026/1.pdf",
    "artefact_sha256": "a" * 64,
    "checkbox_prechecked": "false",
    "affirmative_act": "checkbox",
    "informed_at_collection": "",
    "objection_offered_at_collection": "",
}


def test_good_record_is_accepted_and_normalised() -> None:
    rec, reasons = validate(GOOD)
    assert reasons == [] and rec is not None
    assert rec.basis is Basis.CONSENT
    assert rec.channels == ("automated_call", "sms")
    assert rec.collected_at == datetime(2026, 9, 1, 8, tzinfo=UTC)
    assert len(rec.wording_sha256) == 64


def test_round_trip_and_fingerprint_are_stable() -> None:
    rec, _ = validate(GOOD)
    assert rec is not None
    assert record_from_json(record_to_json(rec)) == rec
    assert fingerprint(rec) == fingerprint(validate(dict(GOOD))[0])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"checkbox_prechecked": "true"}, "pre-ticked box"),
        ({"affirmative_act": "general_terms"}, "terms-only consent"),
        ({"affirmative_act": ""}, "missing evidence: affirmative_act"),
        ({"wording": ""}, "missing evidence: wording"),
        ({"artefact_sha256": ""}, "missing evidence: artefact_ref and artefact_sha256"),
        ({"artefact_sha256": "xyz"}, "not a SHA-256"),
        ({"number": "0612345678"}, "invalid number"),
        ({"number": "+3361234"}, "invalid number"),
        ({"collected_at": ""}, "missing evidence: collected_at"),
        ({"collected_at": "2026-09-01T10:00:00"}, "no time zone offset"),
        ({"collected_at": "yesterday"}, "not an ISO-8601"),
        ({"source": ""}, "missing evidence: source"),
        ({"channels": "sms"}, "channels does not include automated_call"),
        ({"purposes": "spam"}, "purposes must be among"),
        ({"basis": "vibes"}, "unknown basis"),
        ({"checkbox_prechecked": "maybe"}, "is not true or false"),
        ({"basis": "customer_analogous", "informed_at_collection": "true",
          "objection_offered_at_collection": "true"}, "customer with no sale"),
        ({"basis": "customer_analogous", "sale_order_id": "o", "sale_date": "2026-01-02"},
         "legitimate interest without information and objection"),
        ({"basis": "non_commercial_interest", "informed_at_collection": "true"},
         "legitimate interest without information and objection"),
        ({"basis": "b2b_interest", "subject": "professional", "profession": "baker",
          "informed_at_collection": "true", "objection_offered_at_collection": "true"},
         "B2B with no relation to the profession"),
        ({"basis": "contract_in_progress"}, "missing evidence: contract_id and contract_end"),
        ({"surprise": "x"}, "unknown field surprise"),
    ],
)  # fmt: skip
def test_refusals_name_the_reason(change: dict[str, object], reason: str) -> None:
    rec, reasons = validate({**GOOD, **change})
    assert rec is None
    assert any(reason in r for r in reasons), reasons


def test_a_withdrawal_needs_only_what_it_withdraws() -> None:
    rec, reasons = validate(
        {"number": "+33612345678", "advertiser": "maison-dupont", "basis": "consent",
         "withdrawn_at": "2026-11-02T09:00:00+01:00"}
    )  # fmt: skip
    assert reasons == [] and rec is not None
    assert rec.withdrawn_at == rec.collected_at == datetime(2026, 11, 2, 8, tzinfo=UTC)
    _, reasons = validate({"number": "06", "basis": "consent", "withdrawn_at": "2026-11-02"})
    assert any("invalid number" in r for r in reasons)


def test_every_reason_at_once() -> None:
    _, reasons = validate({**GOOD, "number": "x", "checkbox_prechecked": "yes", "wording": ""})
    assert len(reasons) == 3


def test_json_lines_values_may_be_typed() -> None:
    rec, reasons = validate({**GOOD, "purposes": ["commercial"], "checkbox_prechecked": False})
    assert reasons == [] and rec is not None and rec.checkbox_prechecked is False


def test_b2b_interest_with_relation_is_accepted() -> None:
    rec, reasons = validate(
        {**GOOD, "basis": "b2b_interest", "subject": "professional", "profession": "baker",
         "profession_relation": "flour supplies", "informed_at_collection": "yes",
         "objection_offered_at_collection": "yes"}
    )  # fmt: skip
    assert reasons == [] and rec is not None
