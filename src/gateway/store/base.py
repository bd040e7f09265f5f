"""The ``Store`` protocol: everything the gateway keeps, behind one async interface.

Two backends implement it over one schema (``migrations/``): :mod:`gateway.store.sqlite`, the
embedded default, and :mod:`gateway.store.postgres` for several nodes sharing one database.
The same test suite runs against both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Protocol

from gateway.campaign.model import Advertiser, Campaign
from gateway.campaign.scheduler import Contact, Step
from gateway.consent.evidence import RecordRow
from gateway.consent.model import (
    AttemptOutcome,
    Decision,
    DecisionInputs,
    LegalBasisRecord,
    Opposition,
)
from gateway.consent.policy import PolicySettings
from gateway.store.contacts import CampaignStatus

__all__ = ["OppositionListener", "Store"]

#: Called with (number_hmac, scope) when an opposition is written, in this process or, on
#: PostgreSQL, on any node (LISTEN/NOTIFY).
OppositionListener = Callable[[str, str], None]


class Store(Protocol):
    """Persistence for advertisers, campaigns, legal bases, oppositions, attempts and audit."""

    async def close(self) -> None:
        """Release connections (and the PostgreSQL listener)."""

    # Definitions: each put is a new version unless identical to the latest.
    async def put_advertiser(self, advertiser: Advertiser, now: datetime) -> int:
        """Store ``advertiser``; returns its version (unchanged if identical to the latest)."""

    async def get_advertiser(self, advertiser_id: str) -> Advertiser | None: ...

    async def put_campaign(self, campaign: Campaign, now: datetime) -> int:
        """Store ``campaign``; returns its version (unchanged if identical to the latest)."""

    async def get_campaign(self, name: str) -> Campaign | None: ...

    async def campaign_names(self) -> list[str]:
        """Every campaign ever stored, by name."""

    # Legal-basis records (COMPLIANCE.md 4): versioned, never edited.
    async def add_records(self, records: Sequence[LegalBasisRecord], now: datetime) -> int:
        """Add validated records in one transaction; returns how many were new."""

    async def add_record_rows(self, rows: Sequence[RecordRow], now: datetime) -> int:
        """Like :meth:`add_records`, for rows already made by ``consent.evidence.to_row``."""

    async def refresh_statistics(self) -> None:
        """After a bulk import: let the query planner know the tables' new sizes."""

    async def records_for(self, number: str) -> list[LegalBasisRecord]:
        """Every version of every record for ``number`` (any advertiser)."""

    # Oppositions.
    def number_hmac(self, number: str) -> str:
        """The keyed hash under which oppositions of ``number`` are kept."""

    async def add_opposition(
        self,
        number: str,
        scope: str,
        source: str,
        now: datetime,
        attempt_id: int | None = None,
    ) -> Opposition:
        """Record an opposition durably (full sync) before returning; appended to the audit."""

    async def oppositions_for(self, number: str) -> list[Opposition]: ...

    async def is_opposed(self, number: str, advertiser: str) -> bool:
        """Fresh from the database: the re-check of COMPLIANCE.md 5, step 7, before an INVITE."""

    def subscribe_oppositions(self, listener: OppositionListener) -> Callable[[], None]:
        """Call ``listener`` on every new opposition; returns a function that unsubscribes."""

    # Decisions.
    async def gather(self, campaign: str, number: str, now: datetime) -> DecisionInputs:
        """Read what a decision needs, recording nothing (``gateway check``)."""

    async def decide_and_reserve(
        self, campaign: str, number: str, now: datetime, settings: PolicySettings
    ) -> Decision:
        """Decide and append the decision in one transaction; on ``allow`` it is the reserved
        attempt, counted by every later decision on every node (COMPLIANCE.md 5, step 7)."""

    async def record_outcome(self, attempt_id: int, outcome: AttemptOutcome, now: datetime) -> None:
        """Append what happened on the wire for an allowed attempt (a new chained fact)."""

    async def attempt(self, attempt_id: int) -> Decision | None: ...

    async def unsettled_attempts(self) -> list[Decision]:
        """Allowed attempts with no end recorded (to settle after a crash)."""

    # Audit and export.
    async def verify_audit(self) -> list[str]:
        """Every record removed or altered, one line each; empty when the chain holds."""

    def export_attempts(self) -> AsyncIterator[dict[str, object]]: ...

    def export_oppositions(self) -> AsyncIterator[dict[str, object]]: ...

    async def attempts_for(self, number: str) -> list[dict[str, object]]: ...

    # Contacts and run states (migration 0002; gateway.store.contacts): the dialer's work list.
    async def add_contacts(self, campaign: str, numbers: Sequence[str], now: datetime) -> int:
        """Add valid E.164 ``numbers`` as pending; returns how many were new (idempotent)."""

    async def set_run_state(self, campaign: str, state: str, now: datetime) -> None:
        """``active``, ``paused`` or ``done``."""

    async def run_states(self) -> dict[str, str]:
        """Every started campaign's run state."""

    async def claim_due(
        self, campaign: str, now: datetime, limit: int, owner: str
    ) -> list[Contact]:
        """Pending contacts due by ``now`` -> ``calling``, atomically across processes."""

    async def next_due(self, campaign: str) -> datetime | None: ...

    async def attempt_started(self, campaign: str, number: str, attempt_id: int) -> int:
        """Count a reserved attempt on the contact; returns its attempts so far."""

    async def settle_contact(
        self,
        campaign: str,
        number: str,
        step: Step,
        now: datetime,
        *,
        cause: int | None = None,
        outcome: str = "",
    ) -> None:
        """Record the scheduler's step for a contact."""

    async def release(self, campaign: str, numbers: Sequence[str], now: datetime) -> None:
        """Claimed contacts not dialled: pending again."""

    async def interrupted(self, owner: str | None = None) -> list[Contact]:
        """Contacts left ``calling`` (after a crash), attempts recounted from the attempts."""

    async def contacts(self, campaign: str) -> list[Contact]: ...

    async def campaign_status(self, campaign: str) -> CampaignStatus: ...
