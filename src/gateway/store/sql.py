"""The store's logic, written once over a small SQL interface that both backends provide.

Each backend gives transactions (:meth:`SqlStore._write`, :meth:`SqlStore._read`) whose ``Tx``
runs ``?``-style SQL; the backend makes the write transactions exclusive for what they touch:
SQLite with ``BEGIN IMMEDIATE`` (one writer per database, any number of processes), PostgreSQL
with an advisory lock on each number concerned and ``SELECT ... FOR UPDATE`` of the chain head.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta

from gateway.campaign.model import Advertiser, Campaign
from gateway.consent.evidence import RecordRow, record_from_json, to_row
from gateway.consent.model import (
    ADVERTISER_WIDE,
    AttemptOutcome,
    Decision,
    DecisionInputs,
    LegalBasisRecord,
    Opposition,
)
from gateway.consent.policy import PolicySettings, decide
from gateway.consent.zones import to_e164
from gateway.store import common
from gateway.store.audit import AuditReads, Tx
from gateway.store.base import OppositionListener
from gateway.store.common import StoreError, canonical, parse_ts, ts
from gateway.store.decisions import (
    INSERT_ATTEMPT,
    INSERT_AUDIT,
    MAX_BATCH,
    Request,
    Snapshot,
    chain_rows,
    load_snapshot,
    lookback,
)


class SqlStore(AuditReads):
    """:class:`gateway.store.base.Store` over a backend's transactions."""

    #: Appended to the read of the chain head inside a write transaction.
    FOR_UPDATE = ""

    def __init__(self, opposition_key: bytes) -> None:
        if len(opposition_key) < 16:
            raise StoreError("the opposition key must be at least 16 bytes")
        self._key = opposition_key
        self._listeners: list[OppositionListener] = []
        self._campaigns: dict[tuple[str, int], Campaign] = {}
        self._advertisers: dict[tuple[str, int], Advertiser] = {}
        self._queue: list[Request] = []
        self._batcher: asyncio.Task[None] | None = None

    # -- what a backend provides -------------------------------------------------------------
    def _write(self, locks: Sequence[str] = ()) -> AbstractAsyncContextManager[Tx]:
        """A write transaction holding ``locks`` (numbers) until it ends (see module doc)."""
        raise NotImplementedError

    async def _notify_opposition(self, tx: Tx, number_hmac: str, scope: str) -> None:
        """Tell other processes (PostgreSQL NOTIFY); the local listeners are called anyway."""

    async def close(self) -> None:
        raise NotImplementedError

    async def _finish_batches(self) -> None:
        """Let the decisions already queued be decided and recorded before closing."""
        if self._batcher is not None and not self._batcher.done():
            await asyncio.shield(self._batcher)

    # -- setup ---------------------------------------------------------------------------------
    async def _check_key(self) -> None:
        """Refuse a key other than the one the oppositions were hashed under: with another key
        every recorded opposition would silently stop matching."""
        check = common.key_check(self._key)
        async with self._write() as tx:
            # The first process to open the database records the key (a race is harmless).
            await tx.execute(
                "INSERT INTO meta (key, value) VALUES ('opposition_key_check', ?) "
                "ON CONFLICT (key) DO NOTHING",
                check,
            )
            rows = await tx.fetch("SELECT value FROM meta WHERE key = 'opposition_key_check'")
            if rows[0]["value"] != check:
                raise StoreError(
                    "the opposition key differs from the one this database was created with"
                )

    # -- definitions ---------------------------------------------------------------------------
    async def put_advertiser(self, advertiser: Advertiser, now: datetime) -> int:
        text = common.advertiser_json(advertiser)
        return await self._put("advertisers", "id", advertiser.id, text=text, now=now)

    async def put_campaign(self, campaign: Campaign, now: datetime) -> int:
        text = common.campaign_json(campaign)
        return await self._put(
            "campaigns", "name", campaign.name, text=text, now=now, advertiser=campaign.advertiser
        )

    async def _put(
        self,
        table: str,
        key: str,
        value: str,
        *,
        text: str,
        now: datetime,
        advertiser: str | None = None,
    ) -> int:
        async with self._write() as tx:
            rows = await tx.fetch(
                f"SELECT version, definition FROM {table} WHERE {key} = ? "
                "ORDER BY version DESC LIMIT 1",
                value,
            )
            if rows and rows[0]["definition"] == text:
                return int(str(rows[0]["version"]))
            version = int(str(rows[0]["version"])) + 1 if rows else 1
            if advertiser is None:
                await tx.execute(
                    f"INSERT INTO {table} ({key}, version, definition, added_at) "
                    "VALUES (?, ?, ?, ?)",
                    value, version, text, ts(now),
                )  # fmt: skip
            else:
                await tx.execute(
                    f"INSERT INTO {table} ({key}, version, advertiser, definition, added_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    value, version, advertiser, text, ts(now),
                )  # fmt: skip
            return version

    async def get_advertiser(self, advertiser_id: str) -> Advertiser | None:
        async with self._read() as tx:
            return await self._advertiser(tx, advertiser_id)

    async def get_campaign(self, name: str) -> Campaign | None:
        async with self._read() as tx:
            return await self._campaign(tx, name)

    async def campaign_names(self) -> list[str]:
        """Every campaign ever stored (the opt-out line serves all their caller IDs)."""
        async with self._read() as tx:
            rows = await tx.fetch("SELECT DISTINCT name FROM campaigns ORDER BY name")
        return [str(row["name"]) for row in rows]

    async def _advertiser(self, tx: Tx, advertiser_id: str) -> Advertiser | None:
        rows = await tx.fetch(
            "SELECT version, definition FROM advertisers WHERE id = ? "
            "ORDER BY version DESC LIMIT 1",
            advertiser_id,
        )
        if not rows:
            return None
        cache_key = (advertiser_id, int(str(rows[0]["version"])))
        if cache_key not in self._advertisers:
            self._advertisers[cache_key] = common.advertiser_from_json(str(rows[0]["definition"]))
        return self._advertisers[cache_key]

    async def _campaign(self, tx: Tx, name: str) -> Campaign | None:
        rows = await tx.fetch(
            "SELECT version, definition FROM campaigns WHERE name = ? "
            "ORDER BY version DESC LIMIT 1",
            name,
        )
        if not rows:
            return None
        cache_key = (name, int(str(rows[0]["version"])))
        if cache_key not in self._campaigns:
            self._campaigns[cache_key] = common.campaign_from_json(str(rows[0]["definition"]))
        return self._campaigns[cache_key]

    # -- legal-basis records -------------------------------------------------------------------
    async def add_records(self, records: Sequence[LegalBasisRecord], now: datetime) -> int:
        return await self.add_record_rows([to_row(r) for r in records], now)

    async def add_record_rows(self, rows: Sequence[RecordRow], now: datetime) -> int:
        """One transaction per batch. Versions are computed in SQL, inside the write lock; a
        record whose fingerprint is already stored is ignored (idempotent re-import)."""
        unique: dict[str, RecordRow] = {}
        for row in rows:
            unique.setdefault(row[3], row)
        if not unique:
            return 0
        async with self._write(locks=["legal_basis import"]) as tx:
            return await self._insert_records(tx, list(unique.values()), ts(now))

    async def _insert_records(self, tx: Tx, rows: Sequence[RecordRow], at: str) -> int:
        raise NotImplementedError

    async def refresh_statistics(self) -> None:
        """Nothing by default: SQLite's planner picks the indexes without statistics."""

    async def records_for(self, number: str) -> list[LegalBasisRecord]:
        async with self._read() as tx:
            rows = await tx.fetch(
                "SELECT id, version, data FROM legal_basis WHERE number = ? ORDER BY id", number
            )
        return [
            record_from_json(str(r["data"]), int(str(r["id"])), int(str(r["version"])))
            for r in rows
        ]

    # -- oppositions ---------------------------------------------------------------------------
    def number_hmac(self, number: str) -> str:
        # Hash the E.164 form whatever the writing ("+33 6 12 34 56 78"): an opposition kept
        # under another spelling of the number would match nothing. A string that is no valid
        # number is hashed as given (trimmed) rather than lost.
        return common.number_hmac(self._key, to_e164(number) or number.strip())

    async def add_opposition(
        self,
        number: str,
        scope: str,
        source: str,
        now: datetime,
        attempt_id: int | None = None,
    ) -> Opposition:
        key = self.number_hmac(number)
        at = ts(now)
        # The number's lock orders this write with any decision for the number (PostgreSQL).
        async with self._write(locks=[number]) as tx:
            await tx.execute(
                "INSERT INTO oppositions (number_hmac, scope, source, at, attempt_id) "
                "VALUES (?, ?, ?, ?, ?)",
                key, scope, source, at, attempt_id,
            )  # fmt: skip
            rows = await tx.fetch(
                "SELECT MAX(id) AS id FROM oppositions WHERE number_hmac = ?", key
            )
            row_id = int(str(rows[0]["id"]))
            payload = common.opposition_payload(
                row_id, key, scope=scope, source=source, at=at, attempt_id=attempt_id
            )
            await self._append(tx, "opposition", row_id, at=at, payload=canonical(payload))
            await self._notify_opposition(tx, key, scope)
        for listener in list(self._listeners):
            listener(key, scope)
        return Opposition(key, scope, source, now, attempt_id)

    async def oppositions_for(self, number: str) -> list[Opposition]:
        async with self._read() as tx:
            return await self._oppositions(tx, self.number_hmac(number))

    async def _oppositions(self, tx: Tx, key: str) -> list[Opposition]:
        rows = await tx.fetch(
            "SELECT number_hmac, scope, source, at, attempt_id FROM oppositions "
            "WHERE number_hmac = ? ORDER BY id",
            key,
        )
        return [
            Opposition(
                str(r["number_hmac"]),
                str(r["scope"]),
                str(r["source"]),
                parse_ts(str(r["at"])),
                None if r["attempt_id"] is None else int(str(r["attempt_id"])),
            )
            for r in rows
        ]

    async def is_opposed(self, number: str, advertiser: str) -> bool:
        async with self._read() as tx:
            rows = await tx.fetch(
                "SELECT 1 AS x FROM oppositions WHERE number_hmac = ? AND scope IN (?, ?) LIMIT 1",
                self.number_hmac(number), advertiser, ADVERTISER_WIDE,
            )  # fmt: skip
        return bool(rows)

    def subscribe_oppositions(self, listener: OppositionListener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # -- decisions -----------------------------------------------------------------------------
    async def gather(self, campaign: str, number: str, now: datetime) -> DecisionInputs:
        async with self._read() as tx:
            snap = await self._snapshot(tx, [(campaign, number)], now, with_head=False)
        return snap.inputs(campaign, number, self.number_hmac(number))

    async def _snapshot(
        self, tx: Tx, pairs: Sequence[tuple[str, str]], now: datetime, *, with_head: bool
    ) -> Snapshot:
        """What the decisions for ``pairs`` need, in one query (see .decisions)."""
        since = now - lookback(list(self._campaigns.values())) - timedelta(seconds=1)
        hmacs = [self.number_hmac(n) for _, n in pairs]

        async def load(since: datetime) -> Snapshot:
            return await load_snapshot(
                tx, pairs, hmacs, since, with_head=with_head, lock_head=self.FOR_UPDATE,
                parse_campaign=self._parse_campaign, parse_advertiser=self._parse_advertiser,
            )  # fmt: skip

        snap = await load(since)
        needed = now - lookback(list(snap.campaigns.values())) - timedelta(seconds=1)
        return await load(needed) if needed < since else snap

    def _parse_campaign(self, name: str, version: int, text: str) -> Campaign:
        key = (name, version)
        if key not in self._campaigns:
            self._campaigns[key] = common.campaign_from_json(text)
        return self._campaigns[key]

    def _parse_advertiser(self, advertiser_id: str, version: int, text: str) -> Advertiser:
        key = (advertiser_id, version)
        if key not in self._advertisers:
            self._advertisers[key] = common.advertiser_from_json(text)
        return self._advertisers[key]

    async def decide_and_reserve(
        self, campaign: str, number: str, now: datetime, settings: PolicySettings
    ) -> Decision:
        """Queue the decision; the batch it joins decides and records it (see .decisions)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Decision] = loop.create_future()
        self._queue.append(Request(campaign, number, now, settings, future))
        if self._batcher is None or self._batcher.done():
            self._batcher = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch = [r for r in self._queue[:MAX_BATCH] if not r.future.done()]
            del self._queue[:MAX_BATCH]
            if not batch:
                continue
            try:
                results = await self._decide_batch(batch)
            except Exception as exc:  # the whole batch fails closed
                results = [exc] * len(batch)
            for request, result in zip(batch, results, strict=True):
                if request.future.done():
                    continue  # the caller gave up (decision budget); it was told "no call"
                if isinstance(result, Exception):
                    request.future.set_exception(result)
                else:
                    request.future.set_result(result)

    async def _decide_batch(self, batch: Sequence[Request]) -> list[Decision | Exception]:
        results: list[Decision | Exception] = []
        decided: list[tuple[int, Decision]] = []
        pairs = [(r.campaign, r.number) for r in batch]
        async with self._write(locks=sorted({r.number for r in batch})) as tx:
            snap = await self._snapshot(tx, pairs, min(r.now for r in batch), with_head=True)
            for r in batch:
                try:
                    inputs = snap.inputs(r.campaign, r.number, self.number_hmac(r.number))
                    d = decide(inputs, r.now, r.settings)
                except Exception as exc:  # fails closed for this request only
                    results.append(exc)
                    continue
                if d.allowed:  # later decisions of the batch count this reservation
                    snap.attempts[(d.advertiser, r.number)].append(r.now)
                decided.append((len(results), d))
                results.append(d)
            if decided:
                head = snap.head or await self._head(tx)
                attempts, audit, new_head = chain_rows([d for _, d in decided], head)
                await self._append_decisions(tx, attempts, audit, new_head)
                for offset, (index, d) in enumerate(decided, start=1):
                    results[index] = dataclasses.replace(d, attempt_id=head[0] + offset)
        return results

    async def _append_decisions(
        self,
        tx: Tx,
        attempts: Sequence[tuple[object, ...]],
        audit: Sequence[tuple[object, ...]],
        head: tuple[int, str],
    ) -> None:
        """Write a batch's attempt rows and chain records and move the head."""
        await tx.executemany(INSERT_ATTEMPT, attempts)
        await tx.executemany(INSERT_AUDIT, audit)
        await tx.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", *head)

    async def _head(self, tx: Tx) -> tuple[int, str]:
        rows = await tx.fetch("SELECT seq, hash FROM audit_head WHERE id = 1" + self.FOR_UPDATE)
        return int(str(rows[0]["seq"])), str(rows[0]["hash"])

    async def _append(
        self,
        tx: Tx,
        kind: str,
        ref: int,
        *,
        at: str,
        payload: str,
        head: tuple[int, str] | None = None,
    ) -> int:
        if head is None:
            head = await self._head(tx)
        seq, prev = head[0] + 1, head[1]
        digest = common.chain_hash(prev, seq, kind, payload)
        await tx.execute(
            "INSERT INTO audit (seq, kind, ref, at, payload, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            seq, kind, ref, at, payload, prev, digest,
        )  # fmt: skip
        await tx.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", seq, digest)
        return seq

    async def record_outcome(self, attempt_id: int, outcome: AttemptOutcome, now: datetime) -> None:
        fields = common.outcome_fields(outcome)
        async with self._write() as tx:
            rows = await tx.fetch(
                "SELECT outcome, verdict FROM attempts WHERE id = ?" + self.FOR_UPDATE, attempt_id
            )
            if not rows:
                raise StoreError(f"unknown attempt {attempt_id}")
            merged = json.loads(str(rows[0]["outcome"]))
            merged.update(fields)
            await tx.execute(
                "UPDATE attempts SET outcome = ? WHERE id = ?", canonical(merged), attempt_id
            )
            payload = canonical({"attempt_id": attempt_id, "fields": fields})
            await self._append(tx, "outcome", attempt_id, at=ts(now), payload=payload)

    async def attempt(self, attempt_id: int) -> Decision | None:
        async with self._read() as tx:
            rows = await tx.fetch("SELECT * FROM attempts WHERE id = ?", attempt_id)
        return common.decision_from_row(rows[0]) if rows else None
