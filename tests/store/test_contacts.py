"""Contacts and run states (migration 0002) on both backends: import, claims, steps, recovery."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from datetime import timedelta
from multiprocessing.synchronize import Barrier

from gateway.campaign.scheduler import ContactState, Step
from gateway.store import Store, decide_and_reserve
from tests.consent.helpers import MONDAY_11_PARIS, record
from tests.store.conftest import Backend

NOW = MONDAY_11_PARIS
PROCESSES = 3
NUMBERS = [f"+336123456{i:02d}" for i in range(40)]


async def test_add_contacts_is_idempotent(seeded: Store) -> None:
    assert await seeded.add_contacts("spring-offer", NUMBERS[:10], NOW) == 10
    assert await seeded.add_contacts("spring-offer", NUMBERS[:12] + NUMBERS[:2], NOW) == 2
    contacts = await seeded.contacts("spring-offer")
    assert [c.number for c in contacts] == sorted(NUMBERS[:12])
    assert {c.state for c in contacts} == {ContactState.PENDING}
    assert all(c.attempts == 0 and c.next_at == NOW for c in contacts)


async def test_a_reimport_keeps_the_state_of_contacts_already_worked(seeded: Store) -> None:
    await seeded.add_contacts("spring-offer", NUMBERS[:2], NOW)
    [first] = await seeded.claim_due("spring-offer", NOW, 1, "node-a")
    await seeded.settle_contact(
        "spring-offer", first.number, Step(ContactState.STOPPED, "603"), NOW,
        cause=603, outcome="rejected",
    )  # fmt: skip
    assert await seeded.add_contacts("spring-offer", NUMBERS[:2], NOW) == 0
    states = {c.number: c.state for c in await seeded.contacts("spring-offer")}
    assert states[first.number] is ContactState.STOPPED


async def test_claim_takes_due_contacts_earliest_first_once(seeded: Store) -> None:
    await seeded.add_contacts("spring-offer", NUMBERS[:5], NOW)
    later = Step(ContactState.PENDING, "busy", next_at=NOW + timedelta(hours=1))
    [c0] = await seeded.claim_due("spring-offer", NOW, 1, "a")
    await seeded.settle_contact("spring-offer", c0.number, later, NOW, cause=486)
    claimed = await seeded.claim_due("spring-offer", NOW, 10, "a")
    assert [c.number for c in claimed] == NUMBERS[1:5]
    assert all(c.state is ContactState.CALLING for c in claimed)
    assert await seeded.claim_due("spring-offer", NOW, 10, "b") == []
    assert await seeded.next_due("spring-offer") == NOW + timedelta(hours=1)
    again = await seeded.claim_due("spring-offer", NOW + timedelta(hours=1), 10, "b")
    assert [c.number for c in again] == [c0.number]


def _claimer(backend: Backend, barrier: Barrier, out: multiprocessing.Queue[list[str]]) -> None:
    async def run() -> list[str]:
        store = await backend.open()
        try:
            barrier.wait(timeout=60)
            got: list[str] = []
            while batch := await store.claim_due("spring-offer", NOW, 2, str(os.getpid())):
                got += [c.number for c in batch]
            return got
        finally:
            await store.close()

    out.put(asyncio.run(run()))


async def test_processes_claiming_at_once_never_share_a_contact(
    backend: Backend, seeded: Store
) -> None:
    await seeded.add_contacts("spring-offer", NUMBERS, NOW)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    out: multiprocessing.Queue[list[str]] = ctx.Queue()
    procs = [ctx.Process(target=_claimer, args=(backend, barrier, out)) for _ in range(PROCESSES)]
    for proc in procs:
        proc.start()
    loop = asyncio.get_running_loop()
    results = [await loop.run_in_executor(None, out.get, True, 120) for _ in procs]
    for proc in procs:
        await loop.run_in_executor(None, proc.join, 60)
        assert proc.exitcode == 0
    everything = [n for r in results for n in r]
    assert sorted(everything) == sorted(NUMBERS)  # every contact claimed, none twice
    claimed = await seeded.contacts("spring-offer")
    assert {c.state for c in claimed} == {ContactState.CALLING}


async def test_attempts_are_counted_and_recounted_after_a_crash(seeded: Store) -> None:
    await seeded.add_records([record()], NOW)
    number = record().number
    await seeded.add_contacts("spring-offer", [number], NOW)
    [c] = await seeded.claim_due("spring-offer", NOW, 1, "dead-node")
    d = await decide_and_reserve(seeded, "spring-offer", number, NOW, budget=30.0)
    assert d.allowed and d.attempt_id is not None
    # The node died between the reservation and counting it on the contact.
    [left] = await seeded.interrupted()
    assert (left.number, left.state, left.attempts) == (c.number, ContactState.CALLING, 1)
    assert await seeded.interrupted(owner="another-node") == []


async def test_release_puts_claimed_contacts_back(seeded: Store) -> None:
    await seeded.add_contacts("spring-offer", NUMBERS[:3], NOW)
    claimed = await seeded.claim_due("spring-offer", NOW, 3, "a")
    await seeded.release("spring-offer", [c.number for c in claimed], NOW)
    assert {c.state for c in await seeded.contacts("spring-offer")} == {ContactState.PENDING}


async def test_status_counts_states_outcomes_and_opt_outs(seeded: Store) -> None:
    await seeded.add_contacts("spring-offer", NUMBERS[:4], NOW)
    status = await seeded.campaign_status("spring-offer")
    assert (status.run_state, status.states, status.next_due) == ("", {"pending": 4}, NOW)
    await seeded.set_run_state("spring-offer", "active", NOW)
    a, b, c = await seeded.claim_due("spring-offer", NOW, 3, "n")
    await seeded.settle_contact(
        "spring-offer", a.number, Step(ContactState.DONE, "opted_out"), NOW, cause=200,
        outcome="opted_out",
    )  # fmt: skip
    await seeded.settle_contact(
        "spring-offer", b.number, Step(ContactState.DONE, "completed"), NOW, cause=200,
        outcome="completed",
    )  # fmt: skip
    status = await seeded.campaign_status("spring-offer")
    assert status.run_state == "active"
    assert status.states == {"pending": 1, "calling": 1, "done": 2}
    assert status.outcomes == {"opted_out": 1, "completed": 1}
    assert status.opt_outs == 1 and status.total == 4
    await seeded.set_run_state("spring-offer", "paused", NOW)
    assert await seeded.run_states() == {"spring-offer": "paused"}
    assert [x.number for x in await seeded.interrupted()] == [c.number]


async def test_a_large_import_counts_new_numbers_across_its_chunks(seeded: Store) -> None:
    many = [f"+3361{i:07d}" for i in range(2000)]
    assert await seeded.add_contacts("spring-offer", many[:1300], NOW) == 1300
    # Duplicates inside the file and across chunks of 900, and numbers already stored.
    assert await seeded.add_contacts("spring-offer", many + many[::-1], NOW) == 700
    assert (await seeded.campaign_status("spring-offer")).total == 2000
