"""The dialer against real callees (SIPp on loopback): pacing, who gets an INVITE, retries by
cause, caps across campaigns, oppositions while queued, pause, SIGTERM, and a SIGKILL mid-campaign
followed by a restart (issue 5, item 3 and "Prove it").

Times are measured on the records' clock, which runs with the event loop from a Monday 11:00 in
Paris (inside the French window). Run as ``python -m tests.interop.test_dialer URL ADDR T0 DIR``
this module is the dialer process that the crash test kills.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.calls.dialer import Dialer, TrunkLimits
from gateway.calls.outbound import CallContext, CallRecord
from gateway.calls.plan import PromptSettings, prepare_plan
from gateway.calls.service import CallService
from gateway.campaign.model import load_campaign
from gateway.campaign.scheduler import ContactState
from gateway.consent.model import Decision
from gateway.media.transport import MediaEngine
from gateway.sip.endpoint import Endpoint, EndpointSettings, TrunkSettings
from gateway.sip.events import TrunkStateChanged
from gateway.sip.transport import ListenSpec, SipTransport
from gateway.store import Store, open_store
from tests.consent.helpers import FR_ADVERTISER, record
from tests.interop.conftest import SippUasFactory
from tests.store.conftest import Backend, backend  # noqa: F401 (the fixture: both backends)

KEY = b"dialer-test-key-0123456789"
#: Monday 2026-11-30, 11:00 in Paris: inside the French calling window.
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def numbers(n: int, base: int = 0) -> list[str]:
    return [f"+336123460{base + i:02d}" for i in range(n)]


def campaign_toml(
    name: str,
    *,
    cps: float = 10.0,
    concurrent: int = 10,
    attempts: int = 3,
    retry_after: float = 0.5,
    message: str = "Merci.",
    duration: float = 30.0,
    ring: float = 5.0,
) -> str:
    return f"""
[campaign]
name = "{name}"
advertiser = "maison-dupont"
purpose = "commercial"
audience = "consumer"
profile = "fr"
caller_id = "+33162000001"
optout_key = "9"
language = "fr"
trunk = "callee"
[campaign.limits]
calls_per_second = {cps}
max_concurrent = {concurrent}
max_attempts = {attempts}
retry_after = {retry_after}
ring_timeout = {ring}
max_call_duration = {duration}
[campaign.announcement]
identity = {{ text = "Maison Dupont." }}
optout = {{ text = "Tapez 9." }}
message = {{ text = "{message}" }}
confirmation = {{ text = "Noté." }}
"""


async def seed(
    store: Store,
    campaigns: Mapping[str, str],
    contacts: Mapping[str, Sequence[str]],
    consented: Sequence[str],
) -> None:
    """Advertiser, campaigns (active), consents and contacts, as the commands would store them."""
    await store.put_advertiser(FR_ADVERTISER, NOW)
    for text in campaigns.values():
        await store.put_campaign(load_campaign(text), NOW)
    await store.add_records([record(n) for n in consented], NOW)
    for name, nums in contacts.items():
        await store.add_contacts(name, nums, NOW)
        await store.set_run_state(name, "active", NOW)


def loop_clock(start: datetime = NOW, origin: float | None = None) -> Callable[[], datetime]:
    """Wall time for consent and scheduling that starts at ``start`` and runs at the pace of the
    monotonic clock from ``origin`` (``time.monotonic()``, the same in every process of this
    machine, so a child process can share it), never reading the real date."""
    t0 = time.monotonic() if origin is None else origin
    return lambda: start + timedelta(seconds=time.monotonic() - t0)


@asynccontextmanager
async def dialing(
    store: Store,
    callee: str,
    work: Path,
    *,
    clock: Callable[[], datetime] | None = None,
    trunks: Mapping[str, TrunkLimits] | None = None,
    on_decision: Callable[[Decision], None] | None = None,
    on_record: Callable[[CallRecord], None] | None = None,
    start: bool = True,
    seed: int = 7,
    budget: float = 2.0,
) -> AsyncIterator[Dialer]:
    """A dialer with its SIP and media sides, dialing ``callee`` (host:port) as trunk "callee"."""
    endpoint = Endpoint(
        EndpointSettings(user_agent="gateway-test"),
        [TrunkSettings("callee", f"sip:{callee}", keepalive_interval=0)],
        rng=random.Random(seed),
    )
    service = CallService(endpoint)
    transport = SipTransport(endpoint, service.on_event)
    service.attach(transport)
    await transport.listen(ListenSpec("udp", "127.0.0.1", 0))
    media = MediaEngine(host="127.0.0.1", port_min=0, port_max=0, rng=random.Random(seed + 1))
    ctx = CallContext(service, media, store, clock or loop_clock(), "127.0.0.1")
    settings = PromptSettings(work_dir=work, cache_dir=work / "prompts")
    dialer = Dialer(
        ctx,
        lambda c, a: prepare_plan(c, a, settings),
        trunks=trunks,
        budget=budget,  # 2 s by default: the 50 ms budget is the store tests' business
        poll_interval=0.2,
        on_decision=on_decision,
        on_record=on_record,
    )
    try:
        if start:
            await dialer.start()
        yield dialer
    finally:
        await dialer.stop(grace=5.0)
        await media.close()
        await transport.close()


async def allowed_attempts(store: Store, number: str) -> list[dict[str, object]]:
    return [a for a in await store.attempts_for(number) if a["verdict"] == "allow"]


def peak_overlap(records: Sequence[CallRecord]) -> int:
    """The most calls that were between their INVITE and their end at one moment."""
    edges = []
    for r in records:
        if r.invite_at is not None and r.ended_at is not None:
            edges += [(r.invite_at, 1), (r.ended_at, -1)]
    peak = now = 0
    for _, delta in sorted(edges, key=lambda e: (e[0], e[1])):
        now += delta
        peak = max(peak, now)
    return peak


async def open_test_store(tmp: Path) -> Store:
    return await open_store(f"sqlite:///{tmp}/gw.db", KEY)


# -- pacing ----------------------------------------------------------------------------------
async def test_calls_per_second_paces_the_invites(sipp_uas: SippUasFactory, tmp_path: Path) -> None:
    nums = numbers(10)
    callee = sipp_uas("uas_answer", calls=len(nums))
    store = await open_test_store(tmp_path)
    await seed(store, {"c": campaign_toml("c", cps=5, concurrent=20)}, {"c": nums}, nums)
    async with dialing(store, callee.address, tmp_path) as dialer:
        await asyncio.wait_for(dialer.wait_done("c"), 60)
    invites = sorted(r.invite_at for r in dialer.records if r.invite_at is not None)
    assert len(invites) == 10 and {r.outcome for r in dialer.records} == {"completed"}
    span = (invites[-1] - invites[0]).total_seconds()
    # 10 calls at 5 per second: 9 intervals of 0.2 s.
    assert 1.7 <= span <= 2.4, span
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(invites)]
    # The first INVITE waits on the first call set-up (media socket); the rest are 0.2 s apart.
    assert min(gaps) >= 0.08 and sorted(gaps)[len(gaps) // 2] >= 0.18, gaps
    assert len(callee.received("INVITE ")) == 10
    await store.close()


async def test_concurrency_never_exceeds_max_concurrent(
    sipp_uas: SippUasFactory, tmp_path: Path
) -> None:
    nums = numbers(6)
    callee = sipp_uas("uas_answer", calls=len(nums))
    store = await open_test_store(tmp_path)
    await seed(store, {"c": campaign_toml("c", cps=50, concurrent=2)}, {"c": nums}, nums)
    async with dialing(store, callee.address, tmp_path) as dialer:
        await asyncio.wait_for(dialer.wait_done("c"), 60)
    assert len(dialer.records) == 6
    assert peak_overlap(dialer.records) == 2
    assert dialer.peak_concurrent("c") == 2
    await store.close()


async def test_campaigns_sharing_a_trunk_share_its_budget(
    sipp_uas: SippUasFactory, tmp_path: Path
) -> None:
    a, b = numbers(4), numbers(4, base=10)
    callee = sipp_uas("uas_answer", calls=8)
    store = await open_test_store(tmp_path)
    campaigns = {n: campaign_toml(n, cps=50, concurrent=10) for n in ("a", "b")}
    await seed(store, campaigns, {"a": a, "b": b}, a + b)
    trunks = {"callee": TrunkLimits(calls_per_second=4, max_concurrent=3)}
    async with dialing(store, callee.address, tmp_path, trunks=trunks) as dialer:
        await asyncio.wait_for(asyncio.gather(dialer.wait_done("a"), dialer.wait_done("b")), 60)
    assert {r.campaign for r in dialer.records} == {"a", "b"} and len(dialer.records) == 8
    assert peak_overlap(dialer.records) <= 3 and dialer.peak_concurrent(trunk="callee") == 3
    invites = sorted(r.invite_at for r in dialer.records if r.invite_at is not None)
    # 8 calls through a trunk of 4 per second: at least 7 intervals of 0.25 s between them.
    assert (invites[-1] - invites[0]).total_seconds() >= 1.6
    await store.close()


# -- who is called -----------------------------------------------------------------------------
async def test_only_numbers_that_may_be_called_get_an_invite(
    sipp_uas: SippUasFactory, tmp_path: Path
) -> None:
    ok = numbers(3)
    no_consent, opposed = "+33612346050", "+33612346051"
    guadeloupe = "+590690123456"  # 06:00 there: outside the window, deferred
    callee = sipp_uas("uas_answer", calls=3)
    store = await open_test_store(tmp_path)
    contacts = [*ok, no_consent, opposed, guadeloupe]
    await seed(store, {"c": campaign_toml("c")}, {"c": contacts}, [*ok, opposed, guadeloupe])
    await store.add_opposition(opposed, "maison-dupont", "api", NOW)
    decisions: list[Decision] = []
    seen = asyncio.Event()

    def on_decision(d: Decision) -> None:
        decisions.append(d)
        if len(decisions) == len(contacts):
            seen.set()

    async with dialing(store, callee.address, tmp_path, on_decision=on_decision) as dialer:
        await asyncio.wait_for(seen.wait(), 30)
        assert await asyncio.to_thread(callee.wait, 30) == 0
    called = sorted(m.split()[1].split("@")[0].removeprefix("sip:") for m in
                    callee.received("INVITE "))  # fmt: skip
    assert called == sorted(ok)
    by_number = {c.number: c for c in await store.contacts("c")}
    assert by_number[no_consent].state is ContactState.DONE
    assert by_number[no_consent].reason.startswith("legal_basis")
    assert by_number[opposed].state is ContactState.STOPPED
    deferred = by_number[guadeloupe]
    assert deferred.state is ContactState.PENDING and deferred.reason.startswith("window")
    assert deferred.next_at > NOW + timedelta(hours=3)
    assert {r.outcome for r in dialer.records} == {"completed"}
    await store.close()


async def test_busy_is_retried_later_within_max_attempts(
    sipp_uas: SippUasFactory, tmp_path: Path
) -> None:
    [number] = numbers(1)
    callee = sipp_uas("uas_busy", calls=2)
    store = await open_test_store(tmp_path)
    campaign = campaign_toml("c", attempts=2, retry_after=1.0)
    await seed(store, {"c": campaign}, {"c": [number]}, [number])
    async with dialing(store, callee.address, tmp_path) as dialer:
        await asyncio.wait_for(dialer.wait_done("c"), 30)
    first, second = sorted(dialer.records, key=lambda r: r.invite_at or NOW)
    assert (first.sip_cause, second.sip_cause) == (486, 486)
    assert first.ended_at and second.invite_at
    assert (second.invite_at - first.ended_at).total_seconds() >= 0.95  # retry_after
    assert len(callee.received("INVITE ")) == 2
    [contact] = await store.contacts("c")
    assert (contact.state, contact.attempts, contact.last_cause) == (ContactState.DONE, 2, 486)
    assert "2 attempts" in contact.reason
    assert len(await allowed_attempts(store, number)) == 2
    await store.close()


async def test_a_callee_that_never_answers_is_cancelled_then_retried(
    sipp_uas: SippUasFactory, tmp_path: Path
) -> None:
    [number] = numbers(1)
    callee = sipp_uas("uas_noanswer", calls=2)
    store = await open_test_store(tmp_path)
    campaign = campaign_toml("c", attempts=2, retry_after=0.3, ring=1.0)
    await seed(store, {"c": campaign}, {"c": [number]}, [number])
    decisions: list[Decision] = []
    async with dialing(store, callee.address, tmp_path, on_decision=decisions.append) as dialer:
        await asyncio.wait_for(dialer.wait_done("c"), 30)
    assert [(r.outcome, r.sip_cause) for r in dialer.records] == [("no_answer", 487)] * 2, (
        [(d.verdict, d.rule, d.reason) for d in decisions],
        await store.contacts("c"),
    )
    assert len(callee.received("CANCEL ")) == 2  # our ring timeout, each time
    [contact] = await store.contacts("c")
    assert (contact.state, contact.attempts) == (ContactState.DONE, 2)
    await store.close()


async def test_603_is_never_retried(sipp_uas: SippUasFactory, tmp_path: Path) -> None:
    [number] = numbers(1)
    callee = sipp_uas("uas_decline", calls=1)
    store = await open_test_store(tmp_path)
    await seed(store, {"c": campaign_toml("c", attempts=3, retry_after=0.1)}, {"c": [number]},
               [number])  # fmt: skip
    async with dialing(store, callee.address, tmp_path) as dialer:
        await asyncio.wait_for(dialer.wait_done("c"), 30)
    assert [r.sip_cause for r in dialer.records] == [603]
    [contact] = await store.contacts("c")
    assert contact.state is ContactState.STOPPED and "never retried" in contact.reason
    assert len(await allowed_attempts(store, number)) == 1
    await store.close()


async def test_607_records_an_opposition_for_every_campaign_of_the_advertiser(
    sipp_uas: SippUasFactory, tmp_path: Path
) -> None:
    [number] = numbers(1)
    callee = sipp_uas("uas_unwanted", calls=1)
    store = await open_test_store(tmp_path)
    campaigns = {"a": campaign_toml("a"), "b": campaign_toml("b")}
    await seed(store, campaigns, {"a": [number]}, [number])
    async with dialing(store, callee.address, tmp_path) as dialer:
        await asyncio.wait_for(dialer.wait_done("a"), 30)
        assert [r.sip_cause for r in dialer.records] == [607]
        [opposition] = await store.oppositions_for(number)
        assert (opposition.scope, opposition.source) == ("maison-dupont", "callee_607")
        assert opposition.attempt_id == dialer.records[0].attempt_id
        # The other campaign of the advertiser starts later: the number is not called again.
        await store.add_contacts("b", [number], NOW)
        await store.set_run_state("b", "active", NOW)
        await dialer.refresh()
        await asyncio.wait_for(dialer.wait_done("b"), 30)
    assert len(callee.received("INVITE ")) == 1
    [a] = await store.contacts("a")
    [b] = await store.contacts("b")
    assert a.state is ContactState.STOPPED and "607" in a.reason
    assert b.state is ContactState.STOPPED and b.reason.startswith("opposition")
    await store.close()


async def test_caps_hold_across_two_campaigns_of_one_advertiser(
    sipp_uas: SippUasFactory,
    tmp_path: Path,
    backend: Backend,  # noqa: F811
) -> None:
    [number] = numbers(1)
    callee = sipp_uas("uas_busy", calls=None)
    store = await open_store(backend.url, KEY, schema=backend.schema)  # SQLite and PostgreSQL
    campaigns = {n: campaign_toml(n, attempts=3, retry_after=0.2) for n in ("a", "b")}
    await seed(store, campaigns, {"a": [number], "b": [number]}, [number])
    capped: set[str] = set()
    both = asyncio.Event()

    def on_decision(d: Decision) -> None:
        if d.rule == "frequency":
            capped.add(d.campaign)
            if capped == {"a", "b"}:
                both.set()

    async with dialing(store, callee.address, tmp_path, on_decision=on_decision):
        await asyncio.wait_for(both.wait(), 30)
    # The French cap: 4 calls or attempts by one professional in 30 days, all campaigns.
    assert len(await allowed_attempts(store, number)) == 4
    assert len(callee.received("INVITE ")) == 4
    for contact in [*(await store.contacts("a")), *(await store.contacts("b"))]:
        assert contact.state is ContactState.PENDING and contact.reason.startswith("frequency")
        assert contact.next_at > NOW + timedelta(days=29)
    await store.close()


async def test_an_opposition_stops_queued_calls(sipp_uas: SippUasFactory, tmp_path: Path) -> None:
    first, queued, last = numbers(3)
    callee = sipp_uas("uas_answer", calls=2)
    store = await open_test_store(tmp_path)
    await seed(store, {"c": campaign_toml("c", cps=2, concurrent=5)}, {"c": [first, queued, last]},
               [first, queued, last])  # fmt: skip
    tasks: list[asyncio.Task[object]] = []

    def on_decision(d: Decision) -> None:
        # The first call is allowed while the second waits for its token (0.5 s at 2 per
        # second): the person behind the second number objects now, through another channel.
        if d.number == first and d.allowed:
            tasks.append(asyncio.ensure_future(store.add_opposition(queued, "*", "api", NOW)))

    async with dialing(store, callee.address, tmp_path, on_decision=on_decision) as dialer:
        await asyncio.wait_for(dialer.wait_done("c"), 30)
    assert dialer.counts["dropped.opposition"] == 1
    assert sorted(r.number for r in dialer.records) == [first, last]
    states = {c.number: (c.state, c.reason) for c in await store.contacts("c")}
    assert states[queued] == (ContactState.STOPPED, "opposition registered while queued")
    assert await allowed_attempts(store, queued) == []
    assert len(callee.received("INVITE ")) == 2
    await store.close()


# -- pause, SIGTERM, a dead trunk --------------------------------------------------------------
async def test_pause_stops_new_calls_and_lets_calls_in_progress_finish(
    sipp_uas: SippUasFactory, tmp_path: Path
) -> None:
    nums = numbers(6)
    callee = sipp_uas("uas_answer", calls=2)
    store = await open_test_store(tmp_path)
    await seed(store, {"c": campaign_toml("c", cps=2)}, {"c": nums}, nums)
    tasks: list[asyncio.Task[None]] = []
    allowed: list[str] = []

    async with dialing(store, callee.address, tmp_path) as dialer:

        def on_decision(d: Decision) -> None:
            allowed.append(d.number)
            if len(allowed) == 2:
                tasks.append(asyncio.ensure_future(dialer.pause("c")))

        dialer.on_decision = on_decision
        assert await asyncio.to_thread(callee.wait, 30) == 0  # the two calls ended normally
        await asyncio.gather(*tasks)
    assert [r.outcome for r in dialer.records] == ["completed", "completed"]
    status = await store.campaign_status("c")
    assert status.run_state == "paused" and status.states == {"done": 2, "pending": 4}
    assert len(callee.received("INVITE ")) == 2
    await store.close()


async def test_stop_hangs_up_what_outlives_the_grace_and_records_it(
    sipp_uas: SippUasFactory, tmp_path: Path
) -> None:
    nums = numbers(2)
    callee = sipp_uas("uas_answer", calls=2)
    store = await open_test_store(tmp_path)
    long = "Nos offres de printemps sont arrivées. " * 6  # about fifteen seconds
    await seed(store, {"c": campaign_toml("c", message=long)}, {"c": nums}, nums)
    answered = asyncio.Event()
    async with dialing(store, callee.address, tmp_path, start=False) as dialer:
        await dialer.start()
        loop = asyncio.get_running_loop()

        def on_decision(d: Decision) -> None:
            if d.number == nums[-1]:
                loop.call_later(1.0, answered.set)  # both calls are up: 180, 200 ms, 200

        dialer.on_decision = on_decision
        await asyncio.wait_for(answered.wait(), 30)
        started = loop.time()
        await dialer.stop(grace=0.5)
        assert loop.time() - started < 5.0
    assert sorted(r.ended_by for r in dialer.records) == ["gateway", "gateway"]
    assert await store.unsettled_attempts() == []
    assert await asyncio.to_thread(callee.wait, 10) == 0  # SIPp got its BYEs
    await store.close()


async def test_a_trunk_that_is_down_is_not_dialled(
    sipp_uas: SippUasFactory, tmp_path: Path
) -> None:
    nums = numbers(2)
    callee = sipp_uas("uas_answer", calls=2)
    store = await open_test_store(tmp_path)
    await seed(store, {"c": campaign_toml("c")}, {"c": nums}, nums)
    async with dialing(store, callee.address, tmp_path, start=False) as dialer:
        service = dialer.ctx.service
        service.on_event(TrunkStateChanged("callee", False, 408, None, service.now()))
        await dialer.start()
        await asyncio.sleep(1.0)  # the condition under test: a second with the trunk down
        up_at = dialer.ctx.clock()
        assert dialer.records == [] and callee.received("INVITE ") == []
        service.on_event(TrunkStateChanged("callee", True, 200, 0.001, service.now()))
        await asyncio.wait_for(dialer.wait_done("c"), 30)
    assert all(r.invite_at is not None and r.invite_at >= up_at for r in dialer.records)
    assert len(dialer.records) == 2
    await store.close()


# -- crash and restart -------------------------------------------------------------------------
async def test_sigkill_mid_campaign_then_restart_loses_no_opposition_and_exceeds_no_cap(
    sipp_uas: SippUasFactory, tmp_path: Path
) -> None:
    nums = numbers(8)
    # Every callee answers and presses 1 then 9 (RFC 4733) about 1.5 s later: an opt-out.
    callee = sipp_uas("uas_answer_dtmf.xml", calls=None)
    store = await open_test_store(tmp_path)
    campaign = campaign_toml("k", cps=4, concurrent=4, attempts=2, retry_after=0.5)
    await seed(store, {"k": campaign}, {"k": nums}, nums)
    await store.close()
    origin = time.monotonic()
    url = f"sqlite:///{tmp_path}/gw.db"
    with (tmp_path / "child.log").open("wb") as child_log:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.interop.test_dialer", url, callee.address, str(origin),
            str(tmp_path), cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=child_log,
        )  # fmt: skip
    assert child.stdout is not None
    opted_out, in_flight = 0, set[str]()
    try:
        while opted_out < 2 or not in_flight:  # kill with opt-outs written and calls under way
            line = (await asyncio.wait_for(child.stdout.readline(), 30)).decode().split()
            assert line, (tmp_path / "child.log").read_text()[-3000:]
            if line[0] == "ALLOW":
                in_flight.add(line[1])
            elif line[0] == "RECORD":
                in_flight.discard(line[1])
                opted_out += line[2] == "opted_out"
    finally:  # the kill under test, or the clean-up of a failure: no child outlives the test
        child.send_signal(signal.SIGKILL)
        await child.wait()
    before = _oppositions(tmp_path)
    assert len(before) >= 2

    store = await open_test_store(tmp_path)
    # Another process: other Call-IDs (the same seed would repeat the dead one's).
    async with dialing(store, callee.address, tmp_path, clock=loop_clock(NOW, origin),
                       start=False, seed=11) as dialer:  # fmt: skip
        recovery = await dialer.start()
        await asyncio.wait_for(dialer.wait_done("k"), 60)
    assert set(recovery.settled_attempts) and set(recovery.requeued) >= in_flight
    assert _oppositions(tmp_path) >= before  # nothing lost
    hmacs = {store.number_hmac(n): n for n in nums}
    opposed_at = {hmacs[h]: at for h, _, at in _oppositions(tmp_path)}
    assert set(opposed_at) == set(nums)  # every callee opted out, once its call went through
    for number in nums:
        allowed = await allowed_attempts(store, number)
        assert 1 <= len(allowed) <= 2, (number, allowed)  # max_attempts, across the restart
        # No call was allowed after the person's opposition.
        assert all(str(a["decided_at"]) < opposed_at[number] for a in allowed), number
    assert await store.unsettled_attempts() == []
    settled = [
        a
        for n in nums
        for a in await store.attempts_for(n)
        if "extra.settled_after_restart" in a["outcome"]
    ]  # type: ignore[operator]
    assert {int(str(a["id"])) for a in settled} == set(recovery.settled_attempts)
    assert await store.verify_audit() == []
    assert {c.state for c in await store.contacts("k")} <= {ContactState.DONE,
                                                             ContactState.STOPPED}  # fmt: skip
    await store.close()


def _oppositions(tmp: Path) -> set[tuple[str, str, str]]:
    with sqlite3.connect(tmp / "gw.db") as db:
        rows = db.execute("SELECT number_hmac, scope, at FROM oppositions").fetchall()
    return {(str(h), str(s), str(a)) for h, s, a in rows}


def _child(url: str, callee: str, origin: str, work: str) -> None:
    """The dialer process the crash test kills: one line on stdout per allow and per record."""

    def on_decision(d: Decision) -> None:
        if d.allowed:
            print("ALLOW", d.number, flush=True)

    def on_record(r: CallRecord) -> None:
        print("RECORD", r.number, r.outcome, flush=True)

    async def run() -> None:
        store = await open_store(url, KEY)
        clock = loop_clock(NOW, float(origin))
        async with dialing(store, callee, Path(work), clock=clock, on_decision=on_decision,
                           on_record=on_record):  # fmt: skip
            await asyncio.Event().wait()  # until killed

    asyncio.run(run())


if __name__ == "__main__":
    _child(*sys.argv[1:5])
