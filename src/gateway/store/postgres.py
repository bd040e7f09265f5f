"""The shared backend: PostgreSQL through asyncpg, for several gateway nodes on one database.

The reservation of COMPLIANCE.md 5, step 7 is atomic across nodes: the decisions' transaction
takes ``pg_advisory_xact_lock`` on each number (an opposition's transaction takes the same), so
two nodes deciding for the same number queue behind each other; it then reads the chain head
``FOR UPDATE`` to append in order.
Oppositions reach every node's listeners through ``LISTEN/NOTIFY``; the notification is sent
inside the opposition's transaction, so PostgreSQL delivers it only once it is committed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import asyncpg

from gateway.consent.evidence import RecordRow
from gateway.store import common
from gateway.store.audit import Row, Tx
from gateway.store.common import StoreError
from gateway.store.contacts import ContactStore
from gateway.store.sql import SqlStore

__all__ = ["PostgresStore", "open_postgres"]

_PLACEHOLDER = re.compile(r"\?")
_MIGRATION_LOCK = 0x6761746577617901  # "gatewa" + "y\x01": one migrator at a time
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_APPEND_DECISIONS = (
    "WITH a AS (INSERT INTO attempts (id, campaign, advertiser, number, decided_at, verdict, "
    "rule, reason, until_at, zone, local_time, rules, basis_record_id, basis_version, outcome) "
    "SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], "
    "$6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], "
    "$13::bigint[], $14::int[], $15::text[])), "
    "b AS (INSERT INTO audit (seq, kind, ref, at, payload, prev_hash, hash) "
    "SELECT * FROM unnest($16::bigint[], $17::text[], $18::bigint[], $19::text[], $20::text[], "
    "$21::text[], $22::text[])) "
    "UPDATE audit_head SET seq = $23, hash = $24 WHERE id = 1"
)


def _numbered(sql: str, cache: dict[str, str] = {}) -> str:  # noqa: B006 (a deliberate memo)
    """``?`` placeholders -> ``$1, $2, ...`` (the SQL text has no literal question marks)."""
    out = cache.get(sql)
    if out is None:
        counter = iter(range(1, 1000))
        out = cache[sql] = _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)
    return out


class _PgTx:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    @property
    def conn(self) -> asyncpg.Connection:
        return self._conn

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        rows: list[Row] = await self._conn.fetch(_numbered(sql), *args)
        return rows

    async def execute(self, sql: str, *args: object) -> None:
        await self._conn.execute(_numbered(sql), *args)

    async def executemany(self, sql: str, args: Sequence[tuple[object, ...]]) -> None:
        await self._conn.executemany(_numbered(sql), args)


class PostgresStore(ContactStore, SqlStore):
    """:class:`gateway.store.base.Store` on a PostgreSQL database shared by several nodes."""

    FOR_UPDATE = " FOR UPDATE"

    def __init__(self, pool: asyncpg.Pool, listener: asyncpg.Connection, key: bytes) -> None:
        super().__init__(key)
        self._pool = pool
        self._listener = listener
        self._channel = common.OPPOSITION_CHANNEL
        self._node = ""

    @asynccontextmanager
    async def _write(self, locks: Sequence[str] = ()) -> AsyncIterator[Tx]:
        async with self._pool.acquire() as conn, conn.transaction():
            if locks:
                # Sorted by the caller, taken in that order: two batches never wait on each other
                # in a cycle. Held until commit; every node takes the same ones.
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
                    "FROM unnest($1::text[]) k",
                    list(locks),
                )
            yield _PgTx(conn)

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[Tx]:
        async with (
            self._pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            yield _PgTx(conn)

    async def _insert_records(self, tx: Tx, rows: Sequence[RecordRow], at: str) -> int:
        # Set-based: one statement per batch. The version continues each (number, advertiser,
        # basis) after the stored ones, in the file's order; the import lock keeps two imports
        # from numbering the same versions.
        columns = [list(c) for c in zip(*rows, strict=True)]
        status = await self._conn_of(tx).execute(
            "INSERT INTO legal_basis (number, advertiser, basis, version, fingerprint, data, "
            "imported_at) SELECT n.number, n.advertiser, n.basis, COALESCE((SELECT MAX(l.version) "
            "FROM legal_basis l WHERE l.number = n.number AND l.advertiser = n.advertiser "
            "AND l.basis = n.basis), 0) + ROW_NUMBER() OVER (PARTITION BY n.number, n.advertiser, "
            "n.basis ORDER BY n.ord), n.fingerprint, n.data, $6 "
            "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) "
            "WITH ORDINALITY AS n(number, advertiser, basis, fingerprint, data, ord) "
            "WHERE NOT EXISTS (SELECT 1 FROM legal_basis l WHERE l.fingerprint = n.fingerprint) "
            "ON CONFLICT (fingerprint) DO NOTHING",
            *columns, at,
        )  # fmt: skip
        return int(str(status).rsplit(" ", 1)[-1])

    async def _append_decisions(
        self,
        tx: Tx,
        attempts: Sequence[tuple[object, ...]],
        audit: Sequence[tuple[object, ...]],
        head: tuple[int, str],
    ) -> None:
        # One round trip while the chain head is locked: that lock is what every node waits
        # for, so the shorter it is held, the more decisions all nodes make together.
        await self._conn_of(tx).execute(
            _APPEND_DECISIONS, *(list(c) for c in zip(*attempts, strict=True)),
            *(list(c) for c in zip(*audit, strict=True)), head[0], head[1],
        )  # fmt: skip

    async def refresh_statistics(self) -> None:
        # Without fresh statistics after a bulk load, PostgreSQL may take the table for small
        # and scan all of it for a batch of decisions (228 decisions/s at 10 million records).
        async with self._pool.acquire() as conn:
            await conn.execute("ANALYZE legal_basis")
            await conn.execute("ANALYZE attempts")

    @staticmethod
    def _conn_of(tx: Tx) -> asyncpg.Connection:
        assert isinstance(tx, _PgTx)
        return tx.conn

    async def _notify_opposition(self, tx: Tx, number_hmac: str, scope: str) -> None:
        payload = json.dumps([number_hmac, scope, self._node])
        await tx.execute("SELECT pg_notify(?, ?)", self._channel, payload)

    def _on_notify(self, conn: object, pid: int, channel: str, payload: str) -> None:
        number_hmac, scope, node = json.loads(payload)
        if node == self._node:
            return  # this process called its listeners already
        for listener in list(self._listeners):
            listener(number_hmac, scope)

    async def start_listening(self, channel: str, node: str) -> None:
        self._channel, self._node = channel, node
        await self._listener.add_listener(channel, self._on_notify)

    async def close(self) -> None:
        await self._finish_batches()
        with contextlib.suppress(Exception):
            await self._listener.remove_listener(self._channel, self._on_notify)
        await self._listener.close()
        await self._pool.close()


async def open_postgres(
    url: str, opposition_key: bytes, *, schema: str | None = None
) -> PostgresStore:
    """Connect, migrate, and listen for oppositions; ``schema`` isolates a test run."""
    settings: dict[str, str] = {}
    if schema is not None:
        if not _SCHEMA.match(schema):
            raise StoreError(f"bad schema name {schema!r}")
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        finally:
            await conn.close()
        settings["search_path"] = schema
    pool = await asyncpg.create_pool(url, min_size=1, max_size=10, server_settings=settings)
    listener: asyncpg.Connection | None = None
    try:
        async with pool.acquire() as conn:
            await _migrate(conn)
        listener = await asyncpg.connect(url, server_settings=settings)
        store = PostgresStore(pool, listener, opposition_key)
        channel = f"{common.OPPOSITION_CHANNEL}_{schema}" if schema else common.OPPOSITION_CHANNEL
        await store.start_listening(channel, node=_node_id())
        await store._check_key()
    except BaseException:
        if listener is not None:
            await listener.close()
        await pool.close()
        raise
    return store


def _node_id() -> str:
    return f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


async def _migrate(conn: asyncpg.Connection) -> None:
    """Apply pending migrations in order, one node at a time (advisory lock)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
            "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_version")}
        known = common.migrations()
        if done - {v for v, _ in known}:
            raise StoreError("the database schema is newer than this gateway")
        for version, sql in known:
            if version in done:
                continue
            for statement in common.statements(
                sql, "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
            ):
                await conn.execute(statement)
            await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
