"""Persistence: one schema, SQLite (embedded default) and PostgreSQL (several nodes).

``await open_store(url, opposition_key)`` opens either backend from the ``[store] url`` of the
configuration; ``decide_and_reserve`` is the dialer's entry point (see :mod:`.engine`). Right
before each INVITE::

    decision = await decide_and_reserve(store, campaign.name, number, clock(),
                                        budget=config.consent.decision_budget_ms / 1000)
    if decision.allowed and not await store.is_opposed(number, campaign.advertiser):
        ...  # INVITE; then, as things happen:
        await store.record_outcome(decision.attempt_id, AttemptOutcome(final_status=200), now)
    elif decision.until is not None:
        ...  # reschedule at decision.until

On an opt-out: ``await store.add_opposition(number, advertiser, "dtmf", now, attempt_id=...)``
returns once the opposition is durable; ``store.subscribe_oppositions(callback)`` hears every
new opposition (on PostgreSQL, from every node) to drop queued attempts.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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

    ``schema`` (PostgreSQL only, or ``?schema=NAME`` in the URL) places the tables in that
    schema, created if needed.
    """
    if url.startswith("sqlite://"):
        # As SQLAlchemy writes it: sqlite:///relative.db, sqlite:////absolute/path.db.
        path = url.removeprefix("sqlite://").removeprefix("/")
        return await open_sqlite(path or "gateway.db", opposition_key)
    if url.startswith(("postgresql://", "postgres://")):
        # "?schema=NAME" places the tables in that schema (not a libpq parameter: removed).
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        for key, value in query:
            if key == "schema":
                schema = schema or value
        rest = urlencode([(k, v) for k, v in query if k != "schema"])
        return await open_postgres(urlunsplit(parts._replace(query=rest)), opposition_key,
                                   schema=schema)  # fmt: skip
    raise StoreError(f"[store] url must start with sqlite:// or postgresql://, not {url!r}")
