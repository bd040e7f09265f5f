"""Decisions in batches: one transaction, one read and three writes for many decisions.

The dialer asks for decisions one at a time, many at once. Each store runs them through a
single queue: whatever is waiting when a transaction starts is decided in it, in order, each
decision seeing the reservations made before it in the same batch. The reservation stays atomic
(COMPLIANCE.md 5, step 7): the batch holds the write lock (SQLite) or the per-number advisory
locks (PostgreSQL) from its read to its commit. Under load this is a group commit: the fsync of
``synchronous=FULL`` and the round trips are shared by every decision of the batch.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gateway.campaign.model import Advertiser, Campaign
from gateway.consent.evidence import record_from_json
from gateway.consent.model import Decision, DecisionInputs, LegalBasisRecord, Opposition
from gateway.consent.policy import PolicySettings
from gateway.consent.profiles import PROFILES
from gateway.store import common
from gateway.store.common import StoreError, canonical, parse_ts, ts

__all__ = ["MAX_BATCH", "Request", "Snapshot", "chain_rows", "load_snapshot", "lookback"]

#: Most decisions in one transaction.
MAX_BATCH = 256
#: The longest frequency window of any profile: older attempts never count.
_LOOKBACK = max(p.cap_window for p in PROFILES.values())


@dataclass
class Request:
    """One waiting decision; ``future`` receives the recorded decision or the store's error."""

    campaign: str
    number: str
    now: datetime
    settings: PolicySettings
    future: asyncio.Future[Decision]


@dataclass
class Snapshot:
    """Everything the decisions of a batch need, read at once under the batch's locks."""

    campaigns: dict[str, Campaign] = field(default_factory=dict)
    advertisers: dict[str, Advertiser] = field(default_factory=dict)
    records: dict[tuple[str, str], list[LegalBasisRecord]] = field(
        default_factory=lambda: defaultdict(list)
    )
    oppositions: dict[str, list[Opposition]] = field(default_factory=lambda: defaultdict(list))
    attempts: dict[tuple[str, str], list[datetime]] = field(
        default_factory=lambda: defaultdict(list)
    )
    head: tuple[int, str] | None = None

    def inputs(self, campaign: str, number: str, number_hmac: str) -> DecisionInputs:
        c = self.campaigns.get(campaign)
        if c is None:
            raise StoreError(f"unknown campaign {campaign!r}")
        return DecisionInputs(
            number=number,
            campaign=c,
            advertiser=self.advertisers.get(c.advertiser),
            records=list(self.records[(number, c.advertiser)]),
            oppositions=list(self.oppositions[number_hmac]),
            attempts=list(self.attempts[(c.advertiser, number)]),
        )


def lookback(campaigns: Sequence[Campaign]) -> timedelta:
    """How far back attempts may count for these campaigns (an override may only lengthen)."""
    longest = _LOOKBACK
    for c in campaigns:
        if c.cap_override is not None:
            longest = max(longest, c.cap_override[1])
    return longest


def _marks(n: int) -> str:
    return ", ".join("?" * n)


async def load_snapshot(
    tx: common.TxLike,
    pairs: Sequence[tuple[str, str]],
    hmacs: Sequence[str],
    since: datetime,
    *,
    with_head: bool,
    lock_head: str = "",
    parse_campaign: Callable[[str, int, str], Campaign],
    parse_advertiser: Callable[[str, int, str], Advertiser],
) -> Snapshot:
    """One query for (campaign, number) ``pairs``: campaigns, advertisers, records,
    oppositions (by keyed hash), counted attempts, and (SQLite) the chain head."""
    names = sorted({c for c, _ in pairs})
    numbers = sorted({n for _, n in pairs})
    hashes = sorted(set(hmacs))
    latest_campaigns = (
        f"SELECT name, advertiser, version, definition FROM campaigns c WHERE name IN "
        f"({_marks(len(names))}) AND version = "
        "(SELECT MAX(version) FROM campaigns WHERE name = c.name)"
    )
    their_advertisers = f"SELECT advertiser FROM campaigns WHERE name IN ({_marks(len(names))})"
    parts = [
        "SELECT 'c' AS k, name AS s1, advertiser AS s2, CAST(version AS BIGINT) AS i1, "
        f"CAST(NULL AS BIGINT) AS i2, definition AS t1, CAST(NULL AS TEXT) AS t2 "
        f"FROM ({latest_campaigns}) lc",
        "SELECT 'd', id, NULL, version, NULL, definition, NULL FROM advertisers a "
        f"WHERE id IN ({their_advertisers}) "
        "AND version = (SELECT MAX(version) FROM advertisers WHERE id = a.id)",
        "SELECT 'r', number, advertiser, id, version, data, NULL FROM legal_basis "
        f"WHERE number IN ({_marks(len(numbers))}) AND advertiser IN ({their_advertisers})",
        "SELECT 'o', number_hmac, scope, attempt_id, NULL, source, at FROM oppositions "
        f"WHERE number_hmac IN ({_marks(len(hashes))})",
        "SELECT 'a', number, advertiser, NULL, NULL, decided_at, NULL FROM attempts "
        f"WHERE verdict = 'allow' AND number IN ({_marks(len(numbers))}) "
        f"AND advertiser IN ({their_advertisers}) AND decided_at > ?",
    ]
    args: list[object] = [*names, *names, *numbers, *names, *hashes, *numbers, *names, ts(since)]
    prefix = ""
    if with_head:
        # The chain head, locked for the batch's appends where the backend can (PostgreSQL:
        # FOR UPDATE inside a CTE, as a UNION may not carry it).
        prefix = f"WITH h AS (SELECT seq, hash FROM audit_head WHERE id = 1{lock_head}) "
        parts.append("SELECT 'h', NULL, NULL, seq, NULL, hash, NULL FROM h")
    rows = await tx.fetch(prefix + " UNION ALL ".join(parts), *args)
    snap = Snapshot()
    for r in rows:
        k, s1, s2, i1, i2, t1, t2 = (r["k"], r["s1"], r["s2"], r["i1"], r["i2"], r["t1"], r["t2"])
        if k == "c":
            snap.campaigns[str(s1)] = parse_campaign(str(s1), _i(i1), str(t1))
        elif k == "d":
            snap.advertisers[str(s1)] = parse_advertiser(str(s1), _i(i1), str(t1))
        elif k == "r":
            rec = record_from_json(str(t1), _i(i1), _i(i2))
            snap.records[(str(s1), str(s2))].append(rec)
        elif k == "o":
            opp = Opposition(str(s1), str(s2), str(t1), parse_ts(str(t2)), _o(i1))
            snap.oppositions[str(s1)].append(opp)
        elif k == "a":
            snap.attempts[(str(s2), str(s1))].append(parse_ts(str(t1)))
        elif k == "h":
            snap.head = (_i(i1), str(t1))
    return snap


def _i(value: object) -> int:
    return int(str(value))


def _o(value: object) -> int | None:
    return None if value is None else int(str(value))


def chain_rows(
    decisions: Sequence[Decision], head: tuple[int, str]
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], tuple[int, str]]:
    """Attempt rows and audit rows for ``decisions``, chained after ``head``."""
    seq, prev = head
    attempts: list[tuple[object, ...]] = []
    audit: list[tuple[object, ...]] = []
    for d in decisions:
        seq += 1
        payload = common.decision_payload(seq, d)
        attempts.append((*(payload[c] for c in common.ATTEMPT_COLUMNS), "{}"))
        text = canonical(payload)
        digest = common.chain_hash(prev, seq, "decision", text)
        audit.append((seq, "decision", seq, str(payload["decided_at"]), text, prev, digest))
        prev = digest
    return attempts, audit, (seq, prev)


INSERT_ATTEMPT = (
    f"INSERT INTO attempts ({', '.join(common.ATTEMPT_COLUMNS)}, outcome) "
    f"VALUES ({_marks(len(common.ATTEMPT_COLUMNS) + 1)})"
)
INSERT_AUDIT = (
    "INSERT INTO audit (seq, kind, ref, at, payload, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
