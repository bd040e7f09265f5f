"""The same store tests on both backends, for real: a SQLite file and a PostgreSQL schema.

The PostgreSQL fixture creates a fresh schema per test and drops it afterwards. A PostgreSQL that
cannot be reached fails the tests: it is never a skip (ARCHITECTURE.md section 5).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from gateway.store import Store, open_store
from tests.consent.helpers import FR_ADVERTISER, FR_CAMPAIGN, MONDAY_11_PARIS

#: GATEWAY_TEST_PG: host:port (database test, user postgres) or a whole postgresql:// URL;
#: ``make test`` sets it to the server it found or started (tests/run.sh).
_PG = os.environ.get("GATEWAY_TEST_PG", "127.0.0.1:5432")
PG_URL = _PG if "://" in _PG else f"postgresql://postgres@{_PG}/test"
KEY = b"test-deployment-key-0123456789"


@dataclass(frozen=True)
class Backend:
    """Where a test's store lives, so that a test can open more connections to it."""

    name: str
    url: str
    schema: str | None

    async def open(self, key: bytes = KEY) -> Store:
        return await open_store(self.url, key, schema=self.schema)


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite", f"sqlite:///{tmp_path}/gateway.db", None)
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield Backend("postgres", PG_URL, schema)
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    s = await backend.open()
    yield s
    await s.close()


@pytest.fixture
async def seeded(store: Store) -> Store:
    """A store with the French advertiser and campaign of the consent tests."""
    await store.put_advertiser(FR_ADVERTISER, MONDAY_11_PARIS)
    await store.put_campaign(FR_CAMPAIGN, MONDAY_11_PARIS)
    return store


Opener = Callable[[], Awaitable[Store]]


async def raw_execute(backend: Backend, sql: str) -> None:
    """Change the database behind the store's back, as an intruder would (audit tests)."""
    if backend.name == "sqlite":
        import sqlite3

        path = backend.url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            conn.execute(sql)
        return
    conn = await asyncpg.connect(PG_URL, server_settings={"search_path": str(backend.schema)})
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
