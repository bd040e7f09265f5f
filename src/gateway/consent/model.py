"""The records the consent engine reasons about, and the decision it returns.

COMPLIANCE.md section 4: records that justify a call are never edited in place; a correction is a
new version and a withdrawal is a new fact. Every dataclass here is therefore frozen.

The engine does not import the campaign package (both are pure cores, ARCHITECTURE.md section 2):
it states what it needs from a campaign and an advertiser as the read-only protocols
:class:`CampaignTerms` and :class:`AdvertiserTerms`, which ``gateway.campaign.model`` satisfies.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Protocol

__all__ = [
    "ADVERTISER_WIDE",
    "CHANNEL",
    "AdvertiserTerms",
    "AttemptOutcome",
    "Basis",
    "CampaignTerms",
    "Decision",
    "DecisionInputs",
    "LegalBasisRecord",
    "Opposition",
    "OppositionSource",
    "RuleResult",
    "Verdict",
]

#: The channel every usable legal-basis record must cover (COMPLIANCE.md section 4).
CHANNEL = "automated_call"
#: Scope value of an opposition that applies to every advertiser.
ADVERTISER_WIDE = "*"


class Basis(enum.StrEnum):
    """Legal bases of COMPLIANCE.md section 4."""

    CONSENT = "consent"
    CONTRACT_IN_PROGRESS = "contract_in_progress"
    CUSTOMER_ANALOGOUS = "customer_analogous"  # CNIL exception 1
    NON_COMMERCIAL_INTEREST = "non_commercial_interest"  # CNIL exception 2
    B2B_INTEREST = "b2b_interest"
    US_WRITTEN_CONSENT = "us_written_consent"
    US_EXPRESS_CONSENT = "us_express_consent"
    US_EXEMPT = "us_exempt"


class Verdict(enum.StrEnum):
    """What a decision says: only ``allow`` lets a call be placed."""

    ALLOW = "allow"
    DENY = "deny"
    DEFER = "defer"


class OppositionSource(enum.StrEnum):
    """Where an opposition came from (COMPLIANCE.md section 4)."""

    DTMF = "dtmf"
    CALLBACK_LINE = "callback_line"
    API = "api"
    IMPORT = "import"
    SIP_607 = "sip_607"  # RFC 8197 "Unwanted", COMPLIANCE.md section 6
    CLI = "cli"


@dataclass(frozen=True, slots=True)
class LegalBasisRecord:
    """One version of the legal basis for calling ``number`` on behalf of ``advertiser``.

    Validated at import by :mod:`gateway.consent.evidence`; ``policy.decide`` checks it again,
    so a record that reached the store by another road cannot make a call pass either.
    """

    number: str
    advertiser: str
    basis: Basis
    subject: str  # consumer | professional
    purposes: tuple[str, ...]
    channels: tuple[str, ...]
    collected_at: datetime
    source: str
    collected_by: str
    wording: str = ""
    wording_sha256: str = ""
    artefact_ref: str = ""
    artefact_sha256: str = ""
    checkbox_prechecked: bool | None = None
    affirmative_act: str = ""
    informed_at_collection: bool | None = None
    objection_offered_at_collection: bool | None = None
    profession: str = ""
    profession_relation: str = ""
    sale_order_id: str = ""
    sale_date: date | None = None
    contract_id: str = ""
    contract_end: datetime | None = None
    valid_until: datetime | None = None
    withdrawn_at: datetime | None = None
    withdrawn_channel: str = ""
    #: Set by the store: the row id and the version within (number, advertiser, basis).
    record_id: int = 0
    version: int = 1


@dataclass(frozen=True, slots=True)
class Opposition:
    """An objection to further calls: ``scope`` is an advertiser id or :data:`ADVERTISER_WIDE`.

    The number itself is not kept, only its keyed hash (COMPLIANCE.md section 2, retention).
    """

    number_hmac: str
    scope: str
    source: str
    at: datetime
    attempt_id: int | None = None


class AdvertiserTerms(Protocol):
    """What the decision needs to know about an advertiser."""

    @property
    def id(self) -> str: ...
    @property
    def caller_ids(self) -> tuple[str, ...]: ...


class CampaignTerms(Protocol):
    """What the decision needs to know about a campaign (COMPLIANCE.md section 4)."""

    @property
    def name(self) -> str: ...
    @property
    def advertiser(self) -> str: ...
    @property
    def purpose(self) -> str: ...
    @property
    def audience(self) -> str: ...
    @property
    def sector(self) -> str: ...
    @property
    def profile(self) -> str: ...
    @property
    def caller_id(self) -> str: ...
    @property
    def optout_key(self) -> str: ...
    @property
    def active(self) -> bool: ...
    @property
    def segment_order(self) -> tuple[str, ...]: ...
    @property
    def call_duration_bound(self) -> timedelta: ...
    @property
    def window_override(self) -> tuple[tuple[time, time], ...]: ...
    @property
    def cap_override(self) -> tuple[int, timedelta] | None: ...


@dataclass(frozen=True, slots=True)
class DecisionInputs:
    """Everything the store fetched for one decision; :func:`policy.decide` reads only this."""

    number: str
    campaign: CampaignTerms
    advertiser: AdvertiserTerms | None
    records: Sequence[LegalBasisRecord]
    oppositions: Sequence[Opposition]
    #: Times of the attempts reserved by the same advertiser for this number, any campaign,
    #: over at least the profile's frequency window.
    attempts: Sequence[datetime]


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One line of the rule trace: ``result`` is ``pass``, ``fail`` or ``skip``."""

    rule: str
    result: str
    detail: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer of COMPLIANCE.md section 5.

    ``until`` is, for ``defer``, the earliest time at which the answer could change; ``rule`` is
    the id of the deciding rule (``None`` on allow). ``attempt_id`` is set once the store has
    recorded the decision; on ``allow`` that record is the reserved attempt.
    """

    verdict: Verdict
    rule: str | None
    reason: str
    until: datetime | None = None
    zone: str = ""
    local_time: str = ""
    rules: tuple[RuleResult, ...] = ()
    basis_record_id: int | None = None
    basis_version: int | None = None
    attempt_id: int | None = None
    decided_at: datetime | None = None
    number: str = ""
    campaign: str = ""
    advertiser: str = ""

    @property
    def allowed(self) -> bool:
        """True only for a fresh ``allow``: the one answer that lets a call be placed."""
        return self.verdict is Verdict.ALLOW

    def to_json(self) -> dict[str, object]:
        """The shape printed by ``gateway check --json`` (issue 4, item 7)."""
        return {
            "decision": self.verdict.value,
            "rule": self.rule,
            "reason": self.reason,
            "until": self.until.isoformat() if self.until else None,
            "zone": self.zone,
            "local_time": self.local_time,
            "rules": [{"rule": r.rule, "result": r.result, "detail": r.detail} for r in self.rules],
        }


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What happened on the wire after an ``allow`` (COMPLIANCE.md section 4, attempts).

    Each field is optional: the dialer records what it knows as it learns it, and every call of
    ``Store.record_outcome`` appends a new, hash-chained fact; nothing is overwritten.
    """

    invite_sent_at: datetime | None = None
    final_status: int | None = None
    answered_at: datetime | None = None
    identity_started_at: datetime | None = None
    optout_started_at: datetime | None = None
    dtmf: str = ""
    opposition_committed_at: datetime | None = None
    ended_at: datetime | None = None
    ended_by: str = ""  # callee | gateway | timeout | error
    extra: dict[str, str] = field(default_factory=dict)
