"""Persistence: one schema, SQLite (embedded default) and PostgreSQL (several nodes).

``await open_store(url, opposition_key)`` opens either backend from the ``[store] url`` of the
configuration; ``decide_and_reserve`` is the dialer's entry point (see :mod:`.engine`).
"""

from __future__ import annotations

from gateway.store.base import OppositionListener, Store
from gateway.store.common import StoreError
from gateway.store.engine import DEFAULT_BUDGET, decide_and_reserve
from gateway.store.postgres import open_postgres
from gateway.store.sqlite import open_sqlite

__all__ = [
    "DEFAULT_BUDGET",
    "OppositionListener",
    "Store",
    "StoreError",
    "decide_and_reserve",
    "open_store",
]


async def open_store(url: str, opposition_key: bytes, *, schema: str | None = None) -> Store:
    """Open and migrate the store at ``url``: ``sqlite:///path`` or ``postgresql://...``.

    ``schema`` (PostgreSQL only) places the tables in that schema, created if needed.
    """
    if url.startswith("sqlite://"):
        # As SQLAlchemy writes it: sqlite:///relative.db, sqlite:////absolute/path.db.
        path = url.removeprefix("sqlite://").removeprefix("/")
        return await open_sqlite(path or "gateway.db", opposition_key)
    if url.startswith(("postgresql://", "postgres://")):
        return await open_postgres(url, opposition_key, schema=schema)
    raise StoreError(f"[store] url must start with sqlite:// or postgresql://, not {url!r}")
