"""The dialer where no callee is needed: recovery after a crash (both backends), a store that
fails closed, and a campaign whose audio cannot be read. The calls themselves are tested against
SIPp in ``tests/interop/test_dialer.py``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

from gateway.calls.recovery import recover
from gateway.campaign.model import load_campaign
from gateway.campaign.scheduler import STORE_RETRY, ContactState, Step
from gateway.consent.model import Decision
from gateway.store import Store, decide_and_reserve
from tests.consent.helpers import FR_ADVERTISER, record
from tests.interop.test_dialer import NOW, campaign_toml, dialing, numbers, open_test_store, seed
from tests.store.conftest import backend, store  # noqa: F401 (fixtures: SQLite and PostgreSQL)

NOBODY = "127.0.0.1:9"  # discard: no INVITE may be sent anyway


async def test_recovery_settles_attempts_and_requeues_within_the_cap(
    store: Store,  # noqa: F811
) -> None:
    await store.put_advertiser(FR_ADVERTISER, NOW)
    await store.put_campaign(load_campaign(campaign_toml("c", attempts=2, retry_after=60)), NOW)
    a, b, c = numbers(3)
    await store.add_records([record(n) for n in (a, b, c)], NOW)
    await store.add_contacts("c", [a, b, c], NOW)
    # A dialer claimed all three, then died: a's first attempt was reserved and counted, b's
    # second attempt was reserved but not yet counted, c was never decided.
    claimed = await store.claim_due("c", NOW, 3, "dead")
    assert len(claimed) == 3
    da = await decide_and_reserve(store, "c", a, NOW, budget=30)
    assert da.attempt_id is not None
    await store.attempt_started("c", a, da.attempt_id)
    for _ in range(2):
        db = await decide_and_reserve(store, "c", b, NOW, budget=30)
        assert db.attempt_id is not None
    later = NOW + timedelta(seconds=5)
    recovery = await recover(store, lambda: later)
    assert len(recovery.settled_attempts) == 3
    assert sorted(recovery.requeued) == [a, c] and recovery.exhausted == (b,)
    after = {x.number: x for x in await store.contacts("c")}
    assert (after[a].state, after[a].attempts) == (ContactState.PENDING, 1)
    assert after[a].next_at == later + timedelta(seconds=60)  # it may have rung: retry_after
    assert (after[b].state, after[b].attempts) == (ContactState.DONE, 2)
    assert (after[c].state, after[c].next_at) == (ContactState.PENDING, later)
    assert await store.unsettled_attempts() == []
    settled = await store.attempts_for(a)
    assert settled[0]["outcome"] == {
        "ended_at": later.isoformat(timespec="microseconds"),
        "ended_by": "error",
        "extra.settled_after_restart": "true",
    }
    assert await store.verify_audit() == []
    again = await recover(store, lambda: later)
    assert again.settled_attempts == again.requeued == again.exhausted == ()


async def test_a_store_slower_than_the_budget_calls_nobody(tmp_path: Path) -> None:
    nums = numbers(2)
    db = await open_test_store(tmp_path)
    await seed(db, {"c": campaign_toml("c")}, {"c": nums}, nums)
    decisions: list[Decision] = []
    both = asyncio.Event()

    def on_decision(d: Decision) -> None:
        decisions.append(d)
        if len(decisions) == 2:
            both.set()

    async with dialing(db, NOBODY, tmp_path, budget=0.0, on_decision=on_decision) as dialer:
        await asyncio.wait_for(both.wait(), 30)
        await dialer.pause("c")
    assert [d.rule for d in decisions] == ["store", "store"] and dialer.records == []
    for contact in await db.contacts("c"):
        assert contact.state is ContactState.PENDING and contact.reason.startswith("store")
        assert contact.attempts == 0
        assert NOW < contact.next_at - STORE_RETRY < NOW + timedelta(seconds=30)
    await db.close()


async def test_a_campaign_whose_audio_cannot_be_read_says_so_and_calls_nobody(
    tmp_path: Path,
) -> None:
    nums = numbers(1)
    text = campaign_toml("c").replace('message = { text = "Merci." }',
                                      'message = { audio = "missing.wav" }')  # fmt: skip
    db = await open_test_store(tmp_path)
    await seed(db, {"c": text}, {"c": nums}, nums)
    async with dialing(db, NOBODY, tmp_path, start=False) as dialer:
        await dialer.refresh()
        assert "missing.wav" in dialer.failed["c"]
        assert dialer.runs == {} and dialer.counts == {}
    [contact] = await db.contacts("c")
    assert contact.state is ContactState.PENDING and contact.attempts == 0
    await db.close()


async def test_a_retry_written_while_the_dialer_looks_does_not_end_the_campaign(
    tmp_path: Path,
) -> None:
    # A call of the campaign ends while the dialer checks whether anything is left: the dialer
    # reads "nothing pending" (the contact is still "calling"), then the call's retry is
    # written, then the dialer reads the contact states. The campaign is not over: that retry
    # is due in a minute.
    [number] = numbers(1)
    db = await open_test_store(tmp_path)
    await seed(db, {"c": campaign_toml("c", attempts=3, retry_after=60)}, {"c": [number]},
               [number])  # fmt: skip
    later = Step(ContactState.PENDING, "no_answer (487)", next_at=NOW + timedelta(seconds=60))
    await db.settle_contact("c", number, later, NOW)  # not due: the dialer waits
    real_next_due = db.next_due
    armed, looked = asyncio.Event(), asyncio.Event()

    async def next_due_as_the_call_ends(campaign: str) -> datetime | None:
        due = await real_next_due(campaign)
        if armed.is_set() and not looked.is_set():
            await db.settle_contact("c", number, later, NOW)
            looked.set()
        return due

    db.next_due = next_due_as_the_call_ends  # type: ignore[method-assign]
    try:
        async with dialing(db, NOBODY, tmp_path, clock=lambda: NOW) as dialer:
            # The call in progress: the contact claimed (by the dialer of another node).
            assert len(await db.claim_due("c", NOW + timedelta(seconds=61), 1, "other")) == 1
            armed.set()
            await asyncio.wait_for(looked.wait(), 10)
        assert not dialer.runs["c"].done.is_set()
        status = await db.campaign_status("c")
        assert status.run_state == "active" and status.states == {"pending": 1}
    finally:
        await db.close()
