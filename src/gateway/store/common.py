"""What both backends share: time format, keyed hashes, migrations, the audit chain.

The audit chain (COMPLIANCE.md section 4, attempts): record ``n`` stores
``hash_n = SHA-256(hash_{n-1} | n | kind | payload)``, and a one-row head keeps the last sequence
and hash, so that a record removed from the middle, from the end, or altered, is detectable.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import resources
from typing import Protocol

from gateway.campaign.model import Advertiser, Campaign, parse_advertiser, parse_campaign
from gateway.consent.model import AttemptOutcome, Decision, RuleResult, Verdict

GENESIS = "0" * 64
OPPOSITION_CHANNEL = "gateway_oppositions"
_KEY_CHECK = b"gateway opposition key check v1"

ATTEMPT_COLUMNS = (
    "id", "campaign", "advertiser", "number", "decided_at", "verdict", "rule", "reason",
    "until_at", "zone", "local_time", "rules", "basis_record_id", "basis_version",
)  # fmt: skip
OUTCOME_FIELDS = tuple(f for f in AttemptOutcome.__dataclass_fields__ if f != "extra")


class TxLike(Protocol):
    """The part of a transaction that pure helpers use: SQL with ``?`` placeholders."""

    async def fetch(self, sql: str, *args: object) -> list[Mapping[str, object]]: ...


class StoreError(RuntimeError):
    """The store cannot do what was asked (bad key, schema too new, unknown campaign...)."""


def ts(when: datetime) -> str:
    """Aware datetime -> fixed-width ISO-8601 UTC text, sortable as text on both backends."""
    if when.tzinfo is None:
        raise ValueError("naive datetime")
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def canonical(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def number_hmac(key: bytes, number: str) -> str:
    """HMAC-SHA256 of the E.164 number under the deployment key (CNIL retention guidance)."""
    return hmac.new(key, number.encode(), hashlib.sha256).hexdigest()


def key_check(key: bytes) -> str:
    """What the database remembers of the key, to refuse a different one later."""
    return hmac.new(key, _KEY_CHECK, hashlib.sha256).hexdigest()


def chain_hash(prev: str, seq: int, kind: str, payload: str) -> str:
    data = f"{prev}|{seq}|{kind}|{payload}".encode()
    return hashlib.sha256(data).hexdigest()


def migrations() -> list[tuple[int, str]]:
    """The schema migrations, ``(version, sql)``, in order."""
    out = []
    folder = resources.files("gateway.store") / "migrations"
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            out.append((int(name[:4]), entry.read_text(encoding="utf-8")))
    return sorted(out)


def statements(sql: str, id_type: str) -> list[str]:
    """Split a migration into statements; ``{id}`` becomes the backend's key type."""
    lines = [ln for ln in sql.replace("{id}", id_type).splitlines() if not ln.startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def advertiser_json(adv: Advertiser) -> str:
    data = asdict(adv)
    data["caller_ids"] = [
        {"number": n, "reference": adv.caller_id_refs.get(n, "")} for n in adv.caller_ids
    ]
    data.pop("caller_id_refs")
    if not data["registered_name"]:
        data.pop("registered_name")
    return canonical(data)


def advertiser_from_json(text: str) -> Advertiser:
    return parse_advertiser(json.loads(text), "<store>")


def campaign_json(campaign: Campaign) -> str:
    # Not sorted: the order of the announcement's segments is part of the definition.
    return json.dumps(campaign.raw, separators=(",", ":"), ensure_ascii=False, default=str)


def campaign_from_json(text: str) -> Campaign:
    return parse_campaign(json.loads(text), "<store>")


def decision_payload(attempt_id: int, d: Decision) -> dict[str, object]:
    """The decision as appended to the chain, and as the attempts row must still read."""
    return {
        "id": attempt_id,
        "campaign": d.campaign,
        "advertiser": d.advertiser,
        "number": d.number,
        "decided_at": ts(d.decided_at) if d.decided_at else "",
        "verdict": d.verdict.value,
        "rule": d.rule,
        "reason": d.reason,
        "until_at": ts(d.until) if d.until else None,
        "zone": d.zone,
        "local_time": d.local_time,
        "rules": canonical([[r.rule, r.result, r.detail] for r in d.rules]),
        "basis_record_id": d.basis_record_id,
        "basis_version": d.basis_version,
    }


def decision_from_row(row: Mapping[str, object]) -> Decision:
    rules = json.loads(str(row["rules"]))
    until = row["until_at"]
    return Decision(
        verdict=Verdict(str(row["verdict"])),
        rule=None if row["rule"] is None else str(row["rule"]),
        reason=str(row["reason"]),
        until=parse_ts(str(until)) if until else None,
        zone=str(row["zone"]),
        local_time=str(row["local_time"]),
        rules=tuple(RuleResult(*r) for r in rules),
        basis_record_id=_int(row["basis_record_id"]),
        basis_version=_int(row["basis_version"]),
        attempt_id=_int(row["id"]),
        decided_at=parse_ts(str(row["decided_at"])),
        number=str(row["number"]),
        campaign=str(row["campaign"]),
        advertiser=str(row["advertiser"]),
    )


def _int(value: object) -> int | None:
    return None if value is None else int(str(value))


def outcome_fields(outcome: AttemptOutcome) -> dict[str, object]:
    """The fields of ``outcome`` that say something, as text."""
    out: dict[str, object] = {}
    for name in OUTCOME_FIELDS:
        value = getattr(outcome, name)
        if value is None or value == "":
            continue
        out[name] = ts(value) if isinstance(value, datetime) else value
    for k, v in outcome.extra.items():
        out[f"extra.{k}"] = v
    return out


def opposition_payload(
    row_id: int, hmac_hex: str, *, scope: str, source: str, at: str, attempt_id: int | None
) -> dict[str, object]:
    return {
        "id": row_id,
        "number_hmac": hmac_hex,
        "scope": scope,
        "source": source,
        "at": at,
        "attempt_id": attempt_id,
    }


def verify_chain(
    entries: Iterable[Mapping[str, object]],
    head_seq: int,
    head_hash: str,
    attempts: Mapping[int, Mapping[str, object]],
    oppositions: Mapping[int, Mapping[str, object]],
) -> list[str]:
    """Every problem in the chain and in the tables it covers, one line each."""
    problems: list[str] = []
    prev, expected = GENESIS, 1
    seen_attempts: set[int] = set()
    seen_oppositions: set[int] = set()
    outcomes: dict[int, dict[str, object]] = {}
    for e in entries:
        seq = int(str(e["seq"]))
        if seq != expected:
            problems.append(f"audit records {expected}..{seq - 1} removed")
        if e["prev_hash"] != prev and seq == expected:
            problems.append(f"audit record {seq}: previous hash does not match")
        kind, payload = str(e["kind"]), str(e["payload"])
        if chain_hash(str(e["prev_hash"]), seq, kind, payload) != e["hash"]:
            problems.append(f"audit record {seq} altered")
        prev, expected = str(e["hash"]), seq + 1
        data = json.loads(payload)
        ref = int(str(e["ref"]))
        if kind == "decision":
            seen_attempts.add(ref)
            row = attempts.get(ref)
            if row is None:
                problems.append(f"attempt {ref} removed (audit record {seq})")
            elif {k: row[k] for k in ATTEMPT_COLUMNS} != data:
                problems.append(f"attempt {ref} altered (audit record {seq})")
        elif kind == "opposition":
            seen_oppositions.add(ref)
            orow = oppositions.get(ref)
            if orow is None:
                problems.append(f"opposition {ref} removed (audit record {seq})")
            elif dict(orow) != data:
                problems.append(f"opposition {ref} altered (audit record {seq})")
        elif kind == "outcome":
            outcomes.setdefault(ref, {}).update(data["fields"])
    if head_seq != expected - 1:
        problems.append(f"audit records {expected}..{head_seq} removed (head is {head_seq})")
    elif head_hash != prev:
        problems.append(f"audit head does not match record {head_seq}")
    for ref in sorted(set(attempts) - seen_attempts):
        problems.append(f"attempt {ref} is not in the audit chain")
    for ref in sorted(set(oppositions) - seen_oppositions):
        problems.append(f"opposition {ref} is not in the audit chain")
    for ref, row in attempts.items():
        if json.loads(str(row["outcome"])) != outcomes.get(ref, {}):
            problems.append(f"attempt {ref}: outcome altered")
    return problems


def iter_csv_rows(
    rows: Iterable[Mapping[str, object]], columns: tuple[str, ...]
) -> Iterator[list[str]]:
    for row in rows:
        yield ["" if row.get(c) is None else str(row.get(c)) for c in columns]
