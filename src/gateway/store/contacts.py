"""Contacts and campaign run states (migration 0002): the dialer's work list, in the store.

Written once over the backends' transactions, like :mod:`gateway.store.sql`. Claiming due
contacts is atomic across processes and nodes: on PostgreSQL the due rows are read
``FOR UPDATE SKIP LOCKED`` (two nodes never wait on, nor take, the same rows); on SQLite the
write transaction is ``BEGIN IMMEDIATE``, the database's one write lock. A claimed contact is in
state ``calling`` until the dialer records its next step; after a crash
:meth:`ContactStore.interrupted` finds the contacts left there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime

from gateway.campaign.scheduler import Contact, ContactState, Step
from gateway.store.audit import AuditReads, Row, Tx
from gateway.store.common import StoreError, parse_ts, ts

__all__ = ["RUN_STATES", "CampaignStatus", "ContactStore"]

RUN_STATES = ("active", "paused", "done")
_COLUMNS = (
    "campaign, number, state, attempts, next_at, last_cause, last_outcome, reason, attempt_id"
)


@dataclass(frozen=True)
class CampaignStatus:
    """``gateway campaign status``: where a campaign's contacts stand."""

    campaign: str
    run_state: str  # active | paused | done | "" (never started)
    states: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    opt_outs: int = 0
    next_due: datetime | None = None

    @property
    def total(self) -> int:
        return sum(self.states.values())


def _contact(row: Row) -> Contact:
    cause, attempt = row["last_cause"], row["attempt_id"]
    return Contact(
        campaign=str(row["campaign"]),
        number=str(row["number"]),
        state=ContactState(str(row["state"])),
        attempts=int(str(row["attempts"])),
        next_at=parse_ts(str(row["next_at"])),
        last_cause=None if cause is None else int(str(cause)),
        last_outcome=str(row["last_outcome"]),
        reason=str(row["reason"]),
        attempt_id=None if attempt is None else int(str(attempt)),
    )


class ContactStore(AuditReads):
    """The contacts part of :class:`gateway.store.base.Store` (mixed into both backends)."""

    #: Set by the PostgreSQL backend: rows read in a write transaction are locked.
    FOR_UPDATE = ""

    def _write(self, locks: Sequence[str] = ()) -> AbstractAsyncContextManager[Tx]:
        raise NotImplementedError

    async def add_contacts(self, campaign: str, numbers: Sequence[str], now: datetime) -> int:
        """Add ``numbers`` (valid E.164, checked by the caller) as pending, due ``now``;
        returns how many were new. A number already there keeps its state (re-import)."""
        at = ts(now)
        added = 0
        async with self._write() as tx:
            for start in range(0, len(numbers), 900):
                chunk = list(dict.fromkeys(numbers[start : start + 900]))
                # One statement per chunk (under the 999 parameters a statement may take);
                # RETURNING lists only the rows inserted, the new ones. "WHERE true" lets SQLite
                # read ON CONFLICT as the upsert clause, not as a join's ON.
                values = ", ".join(["(?)"] * len(chunk))
                rows = await tx.fetch(
                    "INSERT INTO contacts (campaign, number, state, attempts, next_at, added_at, "
                    "updated_at) SELECT ?, v.column1, 'pending', 0, ?, ?, ? "
                    f"FROM (VALUES {values}) AS v WHERE true "
                    "ON CONFLICT (campaign, number) DO NOTHING RETURNING number",
                    campaign, at, at, at, *chunk,
                )  # fmt: skip
                added += len(rows)
        return added

    async def set_run_state(self, campaign: str, state: str, now: datetime) -> None:
        """``active``, ``paused`` or ``done``: what ``gateway campaign start|pause`` write."""
        if state not in RUN_STATES:
            raise StoreError(f"run state must be one of {', '.join(RUN_STATES)}, not {state!r}")
        async with self._write() as tx:
            await tx.execute(
                "INSERT INTO campaign_runs (campaign, state, changed_at) VALUES (?, ?, ?) "
                "ON CONFLICT (campaign) DO UPDATE SET state = excluded.state, "
                "changed_at = excluded.changed_at",
                campaign, state, ts(now),
            )  # fmt: skip

    async def run_states(self) -> dict[str, str]:
        """Every started campaign's run state."""
        async with self._read() as tx:
            rows = await tx.fetch("SELECT campaign, state FROM campaign_runs")
        return {str(r["campaign"]): str(r["state"]) for r in rows}

    async def claim_due(
        self, campaign: str, now: datetime, limit: int, owner: str
    ) -> list[Contact]:
        """Up to ``limit`` pending contacts due by ``now``, earliest first, moved to ``calling``
        for ``owner`` in one transaction: no contact is claimed by two dialers."""
        if limit <= 0:
            return []
        async with self._write() as tx:
            rows = await tx.fetch(
                f"SELECT {_COLUMNS} FROM contacts WHERE campaign = ? AND state = 'pending' "
                f"AND next_at <= ? ORDER BY next_at, number LIMIT {int(limit)}"
                + (" FOR UPDATE SKIP LOCKED" if self.FOR_UPDATE else ""),
                campaign, ts(now),
            )  # fmt: skip
            await tx.executemany(
                "UPDATE contacts SET state = 'calling', claimed_by = ?, updated_at = ? "
                "WHERE campaign = ? AND number = ?",
                [(owner, ts(now), campaign, str(r["number"])) for r in rows],
            )
        return [dataclasses.replace(_contact(r), state=ContactState.CALLING) for r in rows]

    async def next_due(self, campaign: str) -> datetime | None:
        """When the earliest pending contact is due (None when none is pending)."""
        async with self._read() as tx:
            rows = await tx.fetch(
                "SELECT MIN(next_at) AS t FROM contacts WHERE campaign = ? AND state = 'pending'",
                campaign,
            )
        t = rows[0]["t"]
        return None if t is None else parse_ts(str(t))

    async def attempt_started(self, campaign: str, number: str, attempt_id: int) -> int:
        """An ``allow`` was reserved for this contact: count it (before the INVITE, so that a
        crash cannot lose it); returns the contact's attempts, this one included."""
        async with self._write() as tx:
            await tx.execute(
                "UPDATE contacts SET attempts = attempts + 1, attempt_id = ? "
                "WHERE campaign = ? AND number = ?",
                attempt_id, campaign, number,
            )  # fmt: skip
            rows = await tx.fetch(
                "SELECT attempts FROM contacts WHERE campaign = ? AND number = ?", campaign, number
            )
        if not rows:
            raise StoreError(f"no contact {number} in campaign {campaign}")
        return int(str(rows[0]["attempts"]))

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
        """Record the scheduler's ``step`` for a contact: its state, when due, and why."""
        async with self._write() as tx:
            await tx.execute(
                "UPDATE contacts SET state = ?, next_at = COALESCE(?, next_at), "
                "last_cause = COALESCE(?, last_cause), "
                "last_outcome = CASE WHEN ? = '' THEN last_outcome ELSE ? END, "
                "reason = ?, claimed_by = NULL, updated_at = ? WHERE campaign = ? AND number = ?",
                step.state.value, ts(step.next_at) if step.next_at else None, cause,
                outcome, outcome, step.reason, ts(now), campaign, number,
            )  # fmt: skip

    async def release(self, campaign: str, numbers: Sequence[str], now: datetime) -> None:
        """Claimed contacts that were not dialled (pause, stop): pending again, due as before."""
        async with self._write() as tx:
            await tx.executemany(
                "UPDATE contacts SET state = 'pending', claimed_by = NULL, updated_at = ? "
                "WHERE campaign = ? AND number = ? AND state = 'calling'",
                [(ts(now), campaign, n) for n in numbers],
            )

    async def interrupted(self, owner: str | None = None) -> list[Contact]:
        """Contacts left in ``calling`` (by ``owner``, or by anyone), each with its attempts
        counted again from the attempts table: a reservation made just before a crash, and not
        yet counted on the contact, still counts against ``max_attempts``."""
        where = "c.state = 'calling'" + (" AND c.claimed_by = ?" if owner else "")
        args = (owner,) if owner else ()
        async with self._write() as tx:
            await tx.execute(
                "UPDATE contacts SET attempts = (SELECT COUNT(*) FROM attempts a "
                "WHERE a.campaign = contacts.campaign AND a.number = contacts.number "
                "AND a.verdict = 'allow') WHERE state = 'calling'"
                + (" AND claimed_by = ?" if owner else ""),
                *args,
            )
            rows = await tx.fetch(f"SELECT {_COLUMNS} FROM contacts c WHERE {where}", *args)
        return [_contact(r) for r in rows]

    async def contacts(self, campaign: str) -> list[Contact]:
        """Every contact of ``campaign``, by number."""
        async with self._read() as tx:
            rows = await tx.fetch(
                f"SELECT {_COLUMNS} FROM contacts WHERE campaign = ? ORDER BY number", campaign
            )
        return [_contact(r) for r in rows]

    async def campaign_status(self, campaign: str) -> CampaignStatus:
        """Counts per state and per last outcome, opt-outs, and the next due time."""
        async with self._read() as tx:
            run = await tx.fetch("SELECT state FROM campaign_runs WHERE campaign = ?", campaign)
            states = await tx.fetch(
                "SELECT state, COUNT(*) AS n FROM contacts WHERE campaign = ? GROUP BY state",
                campaign,
            )
            outcomes = await tx.fetch(
                "SELECT last_outcome, COUNT(*) AS n FROM contacts WHERE campaign = ? "
                "AND last_outcome <> '' GROUP BY last_outcome",
                campaign,
            )
            due = await tx.fetch(
                "SELECT MIN(next_at) AS t FROM contacts WHERE campaign = ? AND state = 'pending'",
                campaign,
            )
        by_outcome = {str(r["last_outcome"]): int(str(r["n"])) for r in outcomes}
        t = due[0]["t"]
        return CampaignStatus(
            campaign=campaign,
            run_state=str(run[0]["state"]) if run else "",
            states={str(r["state"]): int(str(r["n"])) for r in states},
            outcomes=by_outcome,
            opt_outs=by_outcome.get("opted_out", 0),
            next_due=None if t is None else parse_ts(str(t)),
        )
