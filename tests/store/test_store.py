"""The Store on SQLite and PostgreSQL: definitions, records, oppositions, reservations, audit."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest

from gateway.campaign.model import load_campaign
from gateway.consent.model import ADVERTISER_WIDE, AttemptOutcome, Basis, Decision, Verdict
from gateway.store import Store, StoreError, decide_and_reserve
from gateway.store.common import number_hmac
from tests.consent.helpers import (
    FR_CAMPAIGN,
    FR_CAMPAIGN_TOML,
    MOBILE,
    MONDAY_11_PARIS,
    record,
)
from tests.store.conftest import KEY, Backend, raw_execute

NOW = MONDAY_11_PARIS


async def decide(
    store: Store, number: str = MOBILE, campaign: str = "spring-offer", minutes: float = 0
) -> Decision:
    return await decide_and_reserve(
        store, campaign, number, NOW + timedelta(minutes=minutes), budget=5.0
    )


async def test_opening_twice_applies_migrations_once(backend: Backend) -> None:
    for _ in range(2):
        s = await backend.open()
        await s.close()


async def test_another_opposition_key_is_refused(backend: Backend, store: Store) -> None:
    with pytest.raises(StoreError, match="opposition key differs"):
        await backend.open(b"another-key-another-key-1234")


async def test_campaign_versions_and_issue_5_keys_are_kept(seeded: Store) -> None:
    assert await seeded.put_campaign(FR_CAMPAIGN, NOW) == 1  # identical: no new version
    text = FR_CAMPAIGN_TOML.replace('language = "fr"', 'language = "fr"\ntrunk = "main"') + (
        'confirmation = { text = "Vous ne serez plus appelé." }\n'
        "[campaign.limits]\ncalls_per_second = 2\nmax_concurrent = 5\nretry_after = 600\n"
    ).replace("[campaign.limits]\ncalls", "[campaign.limits]\ncalls")
    text = text.replace("[campaign.limits]\nmax_call_duration = 60\n", "")
    changed = load_campaign(text)
    assert await seeded.put_campaign(changed, NOW) == 2
    got = await seeded.get_campaign("spring-offer")
    assert got is not None and got == changed
    assert got.trunk == "main" and got.limits.calls_per_second == 2
    assert got.announcement.confirmation is not None
    assert got.segment_order == ("identity", "optout", "message")


async def test_records_are_versioned_and_reimport_changes_nothing(store: Store) -> None:
    first = record(collected_at=NOW - timedelta(days=10))
    assert await store.add_records([first, record(basis=Basis.CONTRACT_IN_PROGRESS)], NOW) == 2
    assert await store.add_records([first], NOW) == 0
    withdrawn = dataclasses.replace(first, withdrawn_at=NOW - timedelta(hours=1))
    assert await store.add_records([withdrawn, withdrawn], NOW) == 1
    versions = sorted((r.basis.value, r.version) for r in await store.records_for(MOBILE))
    assert versions == [("consent", 1), ("consent", 2), ("contract_in_progress", 1)]


async def test_a_withdrawal_row_stops_the_calls(seeded: Store) -> None:
    from gateway.consent.evidence import validate

    await seeded.add_records([record()], NOW)
    assert (await decide(seeded)).allowed
    withdrawal, _ = validate(
        {"number": MOBILE, "advertiser": "maison-dupont", "basis": "consent",
         "withdrawn_at": (NOW - timedelta(minutes=1)).isoformat()}
    )  # fmt: skip
    assert withdrawal is not None
    assert await seeded.add_records([withdrawal], NOW) == 1
    d = await decide(seeded, minutes=1)
    assert d.rule == "legal_basis" and "withdrawn" in d.reason


async def test_four_attempts_then_defer_across_campaigns(seeded: Store) -> None:
    await seeded.add_records([record()], NOW)
    other = dataclasses.replace(load_campaign(FR_CAMPAIGN_TOML), name="autumn-offer")
    other = dataclasses.replace(other, raw={**other.raw, "name": "autumn-offer"})
    await seeded.put_campaign(other, NOW)
    verdicts = []
    for i in range(6):
        d = await decide(seeded, campaign=("spring-offer", "autumn-offer")[i % 2], minutes=i)
        verdicts.append(d.verdict.value)
        assert d.attempt_id is not None
    assert verdicts == ["allow"] * 4 + ["defer"] * 2
    assert d.attempt_id is not None
    last = await seeded.attempt(d.attempt_id)
    assert last is not None and last.rule == "frequency" and last.until == NOW + timedelta(days=30)


async def test_concurrent_decisions_in_one_process_never_exceed_the_cap(
    backend: Backend, seeded: Store
) -> None:
    await seeded.add_records([record()], NOW)
    others = [await backend.open() for _ in range(3)]
    try:
        stores = [seeded, *others]
        results = await asyncio.gather(*(decide(stores[i % 4]) for i in range(24)))
    finally:
        for s in others:
            await s.close()
    assert sum(d.allowed for d in results) == 4


async def test_opposition_keeps_only_the_keyed_hash(seeded: Store) -> None:
    await seeded.add_opposition(MOBILE, "maison-dupont", "dtmf", NOW)
    rows = [row async for row in seeded.export_oppositions()]
    assert len(rows) == 1
    assert rows[0]["number_hmac"] == number_hmac(KEY, MOBILE)
    assert all(MOBILE not in str(v) and MOBILE[1:] not in str(v) for v in rows[0].values())


@pytest.mark.parametrize(("scope", "blocked"), [("maison-dupont", True), (ADVERTISER_WIDE, True),
                                                ("other", False)])  # fmt: skip
async def test_opposition_from_another_connection_stops_the_next_decision(
    backend: Backend, seeded: Store, scope: str, blocked: bool
) -> None:
    await seeded.add_records([record()], NOW)
    assert (await decide(seeded)).allowed
    other = await backend.open()
    try:
        await other.add_opposition(MOBILE, scope, "api", NOW)
    finally:
        await other.close()
    assert await seeded.is_opposed(MOBILE, "maison-dupont") is blocked
    d = await decide(seeded, minutes=1)
    assert d.allowed is not blocked
    if blocked:
        assert d.rule == "opposition"


async def test_an_opposition_matches_every_spelling_of_the_number(seeded: Store) -> None:
    await seeded.add_opposition("+33 6 12 34 56 78", "maison-dupont", "callback_line", NOW)
    assert await seeded.is_opposed(MOBILE, "maison-dupont")
    await seeded.add_records([record()], NOW)
    assert (await decide(seeded)).rule == "opposition"


async def test_opposition_listeners_hear_every_write(backend: Backend, store: Store) -> None:
    heard: list[tuple[str, str]] = []
    got = asyncio.Event()

    def listener(h: str, scope: str) -> None:
        heard.append((h, scope))
        got.set()

    unsubscribe = store.subscribe_oppositions(listener)
    await store.add_opposition(MOBILE, "maison-dupont", "api", NOW)
    assert heard == [(number_hmac(KEY, MOBILE), "maison-dupont")]
    if backend.name == "postgres":  # LISTEN/NOTIFY: another node's write reaches this one
        got.clear()
        other = await backend.open()
        try:
            await other.add_opposition("+33612345670", ADVERTISER_WIDE, "api", NOW)
            await asyncio.wait_for(got.wait(), 5)
        finally:
            await other.close()
        assert heard[-1] == (number_hmac(KEY, "+33612345670"), ADVERTISER_WIDE)
    unsubscribe()


async def test_outcomes_are_appended_and_exported(seeded: Store) -> None:
    await seeded.add_records([record()], NOW)
    d = await decide(seeded)
    assert d.attempt_id is not None
    await seeded.record_outcome(d.attempt_id, AttemptOutcome(invite_sent_at=NOW), NOW)
    await seeded.record_outcome(
        d.attempt_id, AttemptOutcome(final_status=200, dtmf="9", ended_by="gateway"), NOW
    )
    rows = [r async for r in seeded.export_attempts()]
    assert rows[0]["final_status"] == 200 and rows[0]["invite_sent_at"]
    assert [a.attempt_id for a in await seeded.unsettled_attempts()] == [d.attempt_id]
    await seeded.record_outcome(d.attempt_id, AttemptOutcome(ended_at=NOW), NOW)
    assert await seeded.unsettled_attempts() == []
    assert await seeded.verify_audit() == []
    with pytest.raises(StoreError):
        await seeded.record_outcome(999, AttemptOutcome(dtmf="1"), NOW)


async def test_gather_records_nothing(seeded: Store) -> None:
    inputs = await seeded.gather("spring-offer", MOBILE, NOW)
    assert inputs.advertiser is not None and inputs.records == []
    assert [r async for r in seeded.export_attempts()] == []


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("DELETE FROM attempts WHERE id = 2", "attempt 2 removed"),
        ("UPDATE attempts SET verdict = 'allow', reason = 'x' WHERE id = 3", "attempt 3 altered"),
        ("DELETE FROM audit WHERE seq = 2", "audit records 2..2 removed"),
        ("DELETE FROM audit WHERE seq >= 4", "removed (head is"),
        ("UPDATE audit SET payload = replace(payload, 'allow', 'deny') WHERE seq = 3",
         "audit record 3 altered"),
        ("DELETE FROM oppositions", "opposition 1 removed"),
        ("UPDATE oppositions SET scope = 'other'", "opposition 1 altered"),
        ("UPDATE attempts SET outcome = '{}' WHERE id = 1", "attempt 1: outcome altered"),
        ("UPDATE legal_basis SET data = replace(data, 'false', 'true')",
         "legal-basis record 1 altered"),
    ],
)  # fmt: skip
async def test_audit_verify_names_what_was_removed_or_altered(
    backend: Backend, seeded: Store, sql: str, problem: str
) -> None:
    await seeded.add_records([record()], NOW)
    for i in range(3):
        await decide(seeded, minutes=i)
    assert (await decide(seeded, minutes=3)).verdict is Verdict.ALLOW
    await seeded.record_outcome(1, AttemptOutcome(final_status=486), NOW)
    await seeded.add_opposition(MOBILE, "maison-dupont", "dtmf", NOW, attempt_id=1)
    assert await seeded.verify_audit() == []
    await raw_execute(backend, sql)
    problems = await seeded.verify_audit()
    assert any(problem in p for p in problems), problems


class _Slow:
    """A real store that answers late: the budget must fail closed."""

    def __init__(self, store: Store, delay: float) -> None:
        self._store, self._delay = store, delay

    async def decide_and_reserve(self, *args: object) -> object:
        await asyncio.sleep(self._delay)
        return await self._store.decide_and_reserve(*args)  # type: ignore[arg-type]


async def test_a_store_slower_than_the_budget_fails_closed(seeded: Store) -> None:
    await seeded.add_records([record()], NOW)
    d = await decide_and_reserve(_Slow(seeded, 0.2), "spring-offer", MOBILE, NOW, budget=0.05)  # type: ignore[arg-type]
    assert (d.verdict, d.rule) == (Verdict.DEFER, "store") and "budget of 50 ms" in d.reason
    assert not d.allowed


async def test_a_store_error_fails_closed(seeded: Store) -> None:
    d = await decide_and_reserve(seeded, "no-such-campaign", MOBILE, NOW)
    assert (d.verdict, d.rule) == (Verdict.DEFER, "store") and "unknown campaign" in d.reason
    await seeded.close()
    d = await decide_and_reserve(seeded, "spring-offer", MOBILE, NOW)
    assert not d.allowed and d.rule == "store"


async def test_evidence_queries(seeded: Store) -> None:
    await seeded.add_records([record()], NOW)
    await decide(seeded)
    attempts = await seeded.attempts_for(MOBILE)
    assert len(attempts) == 1 and attempts[0]["verdict"] == "allow"
    assert [o.scope for o in await seeded.oppositions_for(MOBILE)] == []
