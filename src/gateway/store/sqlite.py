"""The embedded backend: SQLite through aiosqlite.

WAL lets readers run while one writer writes; ``synchronous=FULL`` makes every committed
opposition and attempt survive a power cut (COMPLIANCE.md section 6: "write the opposition
durably first"). Legal-basis imports alone run with ``synchronous=NORMAL``: a lost batch is
re-imported by running the same, idempotent, import again.

Write transactions use ``BEGIN IMMEDIATE``, which takes the database's single write lock at once:
two processes cannot both read the attempt count and both reserve (COMPLIANCE.md 5, step 7).
Inside one process an ``asyncio.Lock`` keeps coroutines from sharing a transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import aiosqlite

from gateway.consent.evidence import RecordRow
from gateway.store import common
from gateway.store.audit import Row, Tx
from gateway.store.common import StoreError
from gateway.store.contacts import ContactStore
from gateway.store.sql import SqlStore

__all__ = ["SqliteStore", "open_sqlite"]

CACHE_KIB = 256 * 1024
MMAP_BYTES = 4 << 30


def _dict_row(cursor: sqlite3.Cursor, row: tuple[object, ...]) -> dict[str, object]:
    return {d[0]: v for d, v in zip(cursor.description, row, strict=True)}


class _SqliteTx:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        # One trip to the connection's thread (execute and fetch together).
        return list(await self._conn.execute_fetchall(sql, args))  # type: ignore[arg-type]

    async def execute(self, sql: str, *args: object) -> None:
        await self._conn.execute(sql, args)

    async def executemany(self, sql: str, args: Sequence[tuple[object, ...]]) -> None:
        await self._conn.executemany(sql, args)


class SqliteStore(ContactStore, SqlStore):
    """:class:`gateway.store.base.Store` on one SQLite file."""

    def __init__(self, conn: aiosqlite.Connection, opposition_key: bytes) -> None:
        super().__init__(opposition_key)
        self._conn = conn
        self._lock = asyncio.Lock()
        self._tx = _SqliteTx(conn)

    @asynccontextmanager
    async def _write(self, locks: Sequence[str] = ()) -> AsyncIterator[Tx]:
        async with self._lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._tx
            except BaseException:
                await _rollback(self._conn)
                raise
            await self._conn.execute("COMMIT")

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[Tx]:
        # A deferred transaction gives the reads one consistent snapshot (WAL).
        async with self._lock:
            await self._conn.execute("BEGIN")
            try:
                yield self._tx
            finally:
                await _rollback(self._conn)

    async def add_record_rows(self, rows: Sequence[RecordRow], now: datetime) -> int:
        await self._conn.execute("PRAGMA synchronous = NORMAL")
        try:
            return await super().add_record_rows(rows, now)
        finally:
            await self._conn.execute("PRAGMA synchronous = FULL")

    async def _insert_records(self, tx: Tx, rows: Sequence[RecordRow], at: str) -> int:
        cursor = await self._conn.executemany(
            "INSERT INTO legal_basis (number, advertiser, basis, version, fingerprint, data, "
            "imported_at) SELECT ?1, ?2, ?3, COALESCE(MAX(version), 0) + 1, ?4, ?5, ?6 "
            "FROM legal_basis WHERE number = ?1 AND advertiser = ?2 AND basis = ?3 "
            "ON CONFLICT (fingerprint) DO NOTHING",
            [(*row, at) for row in rows],
        )
        return cursor.rowcount

    async def close(self) -> None:
        await self._finish_batches()
        await self._conn.close()


async def _rollback(conn: aiosqlite.Connection) -> None:
    # No transaction may be left (a COMMIT already ran): nothing to undo then.
    with contextlib.suppress(sqlite3.OperationalError):
        await conn.execute("ROLLBACK")


async def open_sqlite(path: str | Path, opposition_key: bytes) -> SqliteStore:
    """Open (creating if needed) and migrate the database at ``path``."""
    conn = await aiosqlite.connect(str(path), isolation_level=None)
    conn.row_factory = _dict_row  # type: ignore[assignment]
    try:
        await conn.execute("PRAGMA busy_timeout = 10000")
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = FULL")
        # Keep the indexes of millions of records in memory: the default 2 MB cache makes
        # every lookup of a random fingerprint or number a read.
        await conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        await conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
        await _migrate(conn)
        store = SqliteStore(conn, opposition_key)
        await store._check_key()
    except BaseException:
        await conn.close()
        raise
    return store


async def _migrate(conn: aiosqlite.Connection) -> None:
    """Apply the migrations not yet applied, each in its own transaction, in order."""
    await conn.execute("BEGIN IMMEDIATE")
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
            "applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
        )
        async with conn.execute("SELECT version FROM schema_version") as cur:
            done = {int(r["version"]) for r in await cur.fetchall()}
        known = common.migrations()
        if done - {v for v, _ in known}:
            raise StoreError("the database schema is newer than this gateway")
        for version, sql in known:
            if version in done:
                continue
            for statement in common.statements(sql, "INTEGER PRIMARY KEY"):
                await conn.execute(statement)
            await conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
    except BaseException:
        await _rollback(conn)
        raise
    await conn.execute("COMMIT")
