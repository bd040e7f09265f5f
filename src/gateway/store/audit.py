"""Reads over the whole store: ``gateway audit verify`` and the exports.

Shared by both backends through :class:`gateway.store.sql.SqlStore`; each backend supplies
``_read()``, a read-only transaction with one consistent snapshot.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from gateway.consent.evidence import fingerprint, record_from_json
from gateway.consent.model import Decision
from gateway.store import common

Row = Mapping[str, object]


class Tx(Protocol):
    """A transaction: SQL with ``?`` placeholders."""

    async def fetch(self, sql: str, *args: object) -> list[Row]: ...
    async def execute(self, sql: str, *args: object) -> None: ...
    async def executemany(self, sql: str, args: Sequence[tuple[object, ...]]) -> None: ...


class AuditReads:
    """Audit verification and exports, over any backend's read transactions."""

    def _read(self) -> AbstractAsyncContextManager[Tx]:
        raise NotImplementedError

    async def verify_audit(self) -> list[str]:
        async with self._read() as tx:
            head = (await tx.fetch("SELECT seq, hash FROM audit_head WHERE id = 1"))[0]
            entries = await tx.fetch("SELECT * FROM audit ORDER BY seq")
            attempts = {int(str(r["id"])): r for r in await tx.fetch("SELECT * FROM attempts")}
            oppositions = {
                int(str(r["id"])): r
                for r in await tx.fetch(
                    "SELECT id, number_hmac, scope, source, at, attempt_id FROM oppositions"
                )
            }
            records = await tx.fetch("SELECT id, fingerprint, data FROM legal_basis")
        problems = common.verify_chain(
            entries, int(str(head["seq"])), str(head["hash"]), attempts, oppositions
        )
        for r in records:
            if fingerprint(record_from_json(str(r["data"]))) != r["fingerprint"]:
                problems.append(f"legal-basis record {r['id']} altered")
        return problems

    async def export_attempts(self) -> AsyncIterator[dict[str, object]]:
        async for row in self._pages("attempts"):
            out = {c: row[c] for c in common.ATTEMPT_COLUMNS}
            out.update(json.loads(str(row["outcome"])))
            yield out

    async def export_oppositions(self) -> AsyncIterator[dict[str, object]]:
        async for row in self._pages("oppositions"):
            yield dict(row)

    async def _pages(self, table: str, size: int = 5000) -> AsyncIterator[Row]:
        last = 0
        while True:
            async with self._read() as tx:
                rows = await tx.fetch(
                    f"SELECT * FROM {table} WHERE id > ? ORDER BY id LIMIT {size}", last
                )
            for row in rows:
                yield row
            if len(rows) < size:
                return
            last = int(str(rows[-1]["id"]))

    async def attempts_for(self, number: str) -> list[dict[str, object]]:
        async with self._read() as tx:
            rows = await tx.fetch("SELECT * FROM attempts WHERE number = ? ORDER BY id", number)
        out = []
        for row in rows:
            item = {c: row[c] for c in common.ATTEMPT_COLUMNS}
            item["rules"] = json.loads(str(row["rules"]))
            item["outcome"] = json.loads(str(row["outcome"]))
            out.append(item)
        return out

    async def unsettled_attempts(self) -> list[Decision]:
        """Allowed attempts with no ``ended_at`` recorded: after a crash, the dialer settles
        them (they keep counting against the cap whatever happened)."""
        async with self._read() as tx:
            rows = await tx.fetch(
                "SELECT * FROM attempts WHERE verdict = 'allow' "
                "AND outcome NOT LIKE '%\"ended_at\"%' ORDER BY id"
            )
        return [common.decision_from_row(r) for r in rows]
