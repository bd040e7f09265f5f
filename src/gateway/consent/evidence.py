"""Validation of legal-basis records at import (COMPLIANCE.md section 4, last paragraph).

A record that cannot justify any call is refused here with a precise reason: a pre-ticked box,
consent only through general terms, "customer" with no sale, a legitimate-interest basis without
information and objection at collection, B2B without a stated relation to the profession, a
number that is not valid E.164, missing evidence. ``policy.decide`` checks the same points again
at call time, so a record that reached the store another way cannot make a call pass.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Final

from gateway.consent.model import CHANNEL, Basis, LegalBasisRecord
from gateway.consent.profiles import AUDIENCES, PURPOSES
from gateway.consent.zones import to_e164

__all__ = [
    "FIELDS",
    "RecordRow",
    "fingerprint",
    "record_from_json",
    "record_to_json",
    "to_row",
    "validate",
    "validate_rows",
]

#: The import fields of issue 4, item 3 (CSV header or JSON Lines keys).
FIELDS: Final = (
    "number", "advertiser", "basis", "subject", "profession", "profession_relation",
    "purposes", "channels", "collected_at", "source", "collected_by", "wording",
    "artefact_ref", "artefact_sha256", "checkbox_prechecked", "affirmative_act",
    "informed_at_collection", "objection_offered_at_collection", "sale_order_id", "sale_date",
    "contract_id", "contract_end", "valid_until", "withdrawn_at",
)  # fmt: skip
_FIELD_SET = frozenset(FIELDS) | {"withdrawn_channel"}
#: Affirmative acts that are no consent: accepting general terms (CNIL 2022).
TERMS_ONLY = frozenset({"terms", "general_terms", "cgv", "cgu", "terms_and_conditions", "tos"})
_CONSENT_LIKE = frozenset({Basis.CONSENT, Basis.US_WRITTEN_CONSENT, Basis.US_EXPRESS_CONSENT})
_INTEREST = frozenset({Basis.CUSTOMER_ANALOGOUS, Basis.NON_COMMERCIAL_INTEREST, Basis.B2B_INTEREST})
_TRUE = frozenset({"true", "yes", "1", "y", "oui"})
_FALSE = frozenset({"false", "no", "0", "n", "non"})
_HEX = frozenset("0123456789abcdef")


class _Bad(ValueError):
    pass


def _text(raw: Mapping[str, object], key: str) -> str:
    value = raw.get(key)
    if type(value) is str:
        return value.strip()
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return str(value).lower() if isinstance(value, bool) else str(value)
    if not isinstance(value, str):
        raise _Bad(f"{key}: expected text")
    return value.strip()


def _list(raw: Mapping[str, object], key: str) -> tuple[str, ...]:
    value = raw.get(key)
    if isinstance(value, list):
        items = [str(v).strip() for v in value]
    else:
        items = _text(raw, key).replace("|", ";").replace(",", ";").split(";")
    return tuple(sorted({i for i in items if i}))


def _bool(raw: Mapping[str, object], key: str) -> bool | None:
    value = raw.get(key)
    if isinstance(value, bool):
        return value
    text = _text(raw, key).lower()
    if not text:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _Bad(f"{key}: {text!r} is not true or false")


def _when(raw: Mapping[str, object], key: str) -> datetime | None:
    text = _text(raw, key)
    if not text:
        return None
    if len(text) == 10:  # a bare date: midnight UTC
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise _Bad(f"{key}: {text!r} is not an ISO-8601 date or time") from None
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _Bad(f"{key}: {text!r} is not an ISO-8601 date or time") from None
    if value.tzinfo is None:
        raise _Bad(f"{key}: {text!r} has no time zone offset")
    return value.astimezone(UTC)


def _day(raw: Mapping[str, object], key: str) -> date | None:
    when = _when(raw, key)
    return when.date() if when else None


def validate(raw: Mapping[str, object]) -> tuple[LegalBasisRecord | None, list[str]]:
    """Check one imported record; return it, or None and every reason it is refused."""
    reasons: list[str] = []
    unknown = sorted(k for k in raw if k not in _FIELD_SET)
    if unknown:
        reasons.append("unknown field " + ", ".join(unknown))
    try:
        return _validate(raw, reasons)
    except _Bad as exc:
        reasons.append(str(exc))
        return None, reasons


def _validate(
    raw: Mapping[str, object], reasons: list[str]
) -> tuple[LegalBasisRecord | None, list[str]]:
    number_text = _text(raw, "number")
    number = to_e164(number_text)
    if number is None:
        reasons.append(f"invalid number: {number_text!r} is not a valid E.164 number")
    advertiser = _text(raw, "advertiser")
    if not advertiser:
        reasons.append("missing evidence: advertiser")
    basis_text = _text(raw, "basis")
    basis = Basis(basis_text) if basis_text in Basis.__members__.values() else None
    if basis is None:
        reasons.append(f"unknown basis {basis_text!r}")
    withdrawn_at = _when(raw, "withdrawn_at")
    # Everything below is evidence that the record can justify a call. A withdrawal (a row with
    # withdrawn_at) needs none of it: it only names what it withdraws, and decide() denies on it.
    evidence: list[str] = []
    subject = _text(raw, "subject")
    if subject not in AUDIENCES:
        evidence.append(f"subject must be consumer or professional, not {subject!r}")
    purposes = _list(raw, "purposes")
    bad = [p for p in purposes if p not in PURPOSES]
    if not purposes or bad:
        evidence.append(f"purposes must be among {', '.join(PURPOSES)}")
    channels = _list(raw, "channels")
    if CHANNEL not in channels:
        evidence.append(f"channels does not include {CHANNEL}")
    collected_at = _when(raw, "collected_at")
    for key in ("collected_at", "source", "collected_by"):
        if not _text(raw, key):
            evidence.append(f"missing evidence: {key}")
    wording = _text(raw, "wording")
    artefact_ref, artefact_sha = _text(raw, "artefact_ref"), _text(raw, "artefact_sha256").lower()
    if artefact_sha and (len(artefact_sha) != 64 or not set(artefact_sha) <= _HEX):
        evidence.append("artefact_sha256 is not a SHA-256 hex digest")
    prechecked = _bool(raw, "checkbox_prechecked")
    act = _text(raw, "affirmative_act")
    informed = _bool(raw, "informed_at_collection")
    objection = _bool(raw, "objection_offered_at_collection")
    profession, relation = _text(raw, "profession"), _text(raw, "profession_relation")
    sale_order, sale_date = _text(raw, "sale_order_id"), _day(raw, "sale_date")
    contract_id, contract_end = _text(raw, "contract_id"), _when(raw, "contract_end")
    valid_until = _when(raw, "valid_until")

    if prechecked:
        evidence.append("pre-ticked box: consent needs a box that was not pre-ticked")
    if basis in _CONSENT_LIKE:
        if act.lower() in TERMS_ONLY:
            evidence.append("terms-only consent: accepting general terms is not consent")
        elif not act:
            evidence.append("missing evidence: affirmative_act")
        if act.lower() == "checkbox" and prechecked is None:
            evidence.append("missing evidence: checkbox_prechecked")
        if not wording:
            evidence.append("missing evidence: wording")
        if not artefact_ref or not artefact_sha:
            evidence.append("missing evidence: artefact_ref and artefact_sha256")
    if basis in _INTEREST and not (informed and objection):
        evidence.append(
            "legitimate interest without information and objection at collection"
            " (informed_at_collection and objection_offered_at_collection must be true)"
        )
    if basis is Basis.CUSTOMER_ANALOGOUS and not (sale_order and sale_date):
        evidence.append("customer with no sale: sale_order_id and sale_date are required")
    if basis is Basis.B2B_INTEREST:
        if subject != "professional":
            evidence.append("b2b_interest needs subject professional")
        if not profession or not relation:
            evidence.append("B2B with no relation to the profession: profession and"
                           " profession_relation are required")  # fmt: skip
    if basis is Basis.CONTRACT_IN_PROGRESS and not (contract_id and contract_end):
        evidence.append("missing evidence: contract_id and contract_end")
    if subject == "professional" and not profession:
        evidence.append("missing evidence: profession")
    if withdrawn_at is None:
        reasons += evidence
    elif collected_at is None:
        collected_at = withdrawn_at
    if reasons or number is None or basis is None or collected_at is None:
        return None, reasons
    record = LegalBasisRecord(
        number=number,
        advertiser=advertiser,
        basis=basis,
        subject=subject,
        purposes=purposes,
        channels=channels,
        collected_at=collected_at,
        source=_text(raw, "source"),
        collected_by=_text(raw, "collected_by"),
        wording=wording,
        wording_sha256=hashlib.sha256(wording.encode()).hexdigest() if wording else "",
        artefact_ref=artefact_ref,
        artefact_sha256=artefact_sha,
        checkbox_prechecked=prechecked,
        affirmative_act=act,
        informed_at_collection=informed,
        objection_offered_at_collection=objection,
        profession=profession,
        profession_relation=relation,
        sale_order_id=sale_order,
        sale_date=sale_date,
        contract_id=contract_id,
        contract_end=contract_end,
        valid_until=valid_until,
        withdrawn_at=withdrawn_at,
        withdrawn_channel=_text(raw, "withdrawn_channel"),
    )
    return record, []


def record_to_json(rec: LegalBasisRecord) -> str:
    """Canonical JSON of a record (without the store's id and version)."""
    out: dict[str, object] = {
        "number": rec.number,
        "advertiser": rec.advertiser,
        "basis": rec.basis.value,
        "subject": rec.subject,
        "purposes": list(rec.purposes),
        "channels": list(rec.channels),
        "collected_at": rec.collected_at.isoformat(),
        "source": rec.source,
        "collected_by": rec.collected_by,
        "wording": rec.wording,
        "wording_sha256": rec.wording_sha256,
        "artefact_ref": rec.artefact_ref,
        "artefact_sha256": rec.artefact_sha256,
        "checkbox_prechecked": rec.checkbox_prechecked,
        "affirmative_act": rec.affirmative_act,
        "informed_at_collection": rec.informed_at_collection,
        "objection_offered_at_collection": rec.objection_offered_at_collection,
        "profession": rec.profession,
        "profession_relation": rec.profession_relation,
        "sale_order_id": rec.sale_order_id,
        "sale_date": rec.sale_date.isoformat() if rec.sale_date else None,
        "contract_id": rec.contract_id,
        "contract_end": rec.contract_end.isoformat() if rec.contract_end else None,
        "valid_until": rec.valid_until.isoformat() if rec.valid_until else None,
        "withdrawn_at": rec.withdrawn_at.isoformat() if rec.withdrawn_at else None,
        "withdrawn_channel": rec.withdrawn_channel,
    }
    return json.dumps(out, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_from_json(text: str, record_id: int = 0, version: int = 1) -> LegalBasisRecord:
    """Inverse of :func:`record_to_json`."""
    data = json.loads(text)
    for key in ("collected_at", "contract_end", "valid_until", "withdrawn_at"):
        if data.get(key):
            data[key] = datetime.fromisoformat(data[key])
    if data.get("sale_date"):
        data["sale_date"] = date.fromisoformat(data["sale_date"])
    data["purposes"] = tuple(data["purposes"])
    data["channels"] = tuple(data["channels"])
    data["basis"] = Basis(data["basis"])
    return LegalBasisRecord(**data, record_id=record_id, version=version)


def fingerprint(rec: LegalBasisRecord) -> str:
    """SHA-256 of the canonical JSON: re-importing the same record changes nothing."""
    return hashlib.sha256(record_to_json(rec).encode()).hexdigest()


#: What the store keeps of a record: number, advertiser, basis, fingerprint, canonical JSON.
RecordRow = tuple[str, str, str, str, str]


def to_row(rec: LegalBasisRecord) -> RecordRow:
    """The stored form of ``rec``; its JSON is serialised once and hashed for the fingerprint."""
    text = record_to_json(rec)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return (rec.number, rec.advertiser, rec.basis.value, digest, text)


def validate_rows(
    items: list[tuple[int, Mapping[str, object]]],
) -> list[tuple[int, RecordRow | None, list[str]]]:
    """Validate a chunk of (line, fields); the unit of work of a parallel import."""
    out: list[tuple[int, RecordRow | None, list[str]]] = []
    for line, fields in items:
        error = fields.get("__error__")
        if error is not None:
            out.append((line, None, [str(error)]))
            continue
        rec, reasons = validate(fields)
        out.append((line, to_row(rec) if rec is not None else None, reasons))
    return out
