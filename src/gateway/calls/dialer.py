"""The dialer: runs the active campaigns' contacts through the compliance engine and onto trunks.

One loop task claims due contacts from the store (atomically: several dialers may share a
database) and starts one task per attempt, paced per campaign AND per trunk: calls per second as
token buckets, and a ceiling on concurrent calls; campaigns that share a trunk share its budget.
Each attempt takes the compliance decision (``decide_and_reserve``) right before
:func:`place_call`; what follows a decision or a call is the pure scheduler's answer
(``campaign/scheduler.py``), written back to the contact.

Nothing dials without a fresh ``allow``; a trunk that is down is not dialled; an opposition heard
(``store.subscribe_oppositions``, from every node on PostgreSQL) drops the queued contacts of that
number at once, and ``place_call``'s last-moment re-check stays the final guard. After a crash,
:meth:`Dialer.start` settles the attempts reserved but never finished and puts the contacts left
``calling`` back, their attempts recounted from the store: no cap is exceeded, no opposition lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import phonenumbers

from gateway.calls.outbound import CallContext, CallPlan, CallRecord, place_call
from gateway.calls.recovery import Recovery, recover
from gateway.campaign.model import Advertiser, Campaign
from gateway.campaign.scheduler import (
    Contact,
    ContactState,
    Step,
    TokenBucket,
    after_call,
    after_decision,
)
from gateway.consent.model import ADVERTISER_WIDE, Decision
from gateway.consent.policy import PolicySettings, decide
from gateway.store.engine import DEFAULT_BUDGET, decide_and_reserve

__all__ = ["Dialer", "Recovery", "TrunkLimits"]

log = logging.getLogger(__name__)

Prepare = Callable[[Campaign, Advertiser], CallPlan]
#: Seconds of tokens a bucket saves up: a loop that wakes a little late catches up, and below
#: 50 calls per second calls stay exactly 1 / rate apart.
JITTER = 0.020


@dataclass(frozen=True)
class TrunkLimits:
    """A trunk's budget, shared by every campaign using it (None: no limit of its own)."""

    calls_per_second: float | None = None
    max_concurrent: int | None = None


@dataclass
class _Pace:
    """One budget: a campaign's or a trunk's."""

    bucket: TokenBucket | None
    max_concurrent: int | None
    active: int = 0
    peak: int = 0

    @classmethod
    def of(cls, rate: float | None, max_concurrent: int | None, now: float) -> _Pace:
        return cls(TokenBucket(rate, rate * JITTER, now) if rate else None, max_concurrent)

    def room(self) -> int:
        return 1 << 30 if self.max_concurrent is None else self.max_concurrent - self.active

    def wait(self, now: float) -> float:
        return self.bucket.wait(now) if self.bucket is not None else 0.0


@dataclass
class _Run:
    """A campaign this dialer runs."""

    campaign: Campaign
    plan: CallPlan
    pace: _Pace
    done: asyncio.Event
    active: bool = True
    store_state: str = "active"  # the run state last read from the store
    queue: deque[Contact] = field(default_factory=deque)
    idle_until: float = 0.0


class Dialer:
    """Runs every campaign whose run state is ``active`` in the store.

    ``prepare`` turns a campaign and its advertiser into a :class:`CallPlan` (prompts decoded
    once; it runs in a thread). ``on_decision`` and ``on_record`` see every decision and every
    call record as they happen (``gateway demo``'s live display); :attr:`counts` and
    :attr:`records` keep them.
    """

    def __init__(
        self,
        ctx: CallContext,
        prepare: Prepare,
        *,
        trunks: Mapping[str, TrunkLimits] | None = None,
        budget: float = DEFAULT_BUDGET,
        settings: PolicySettings | None = None,
        poll_interval: float = 1.0,
        owner: str = "",
        on_decision: Callable[[Decision], None] | None = None,
        on_record: Callable[[CallRecord], None] | None = None,
    ) -> None:
        self.ctx, self.store, self.prepare = ctx, ctx.store, prepare
        self.budget, self.settings = budget, settings or PolicySettings()
        self.poll_interval = poll_interval
        self.owner = owner or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.on_decision, self.on_record = on_decision, on_record
        self.loop = asyncio.get_running_loop()
        self.trunks = {
            name: _Pace.of(t.calls_per_second, t.max_concurrent, self.loop.time())
            for name, t in (trunks or {}).items()
        }
        self.runs: dict[str, _Run] = {}
        #: Campaigns that could not be prepared (an audio file that cannot be read...): why.
        self.failed: dict[str, str] = {}
        self.counts: Counter[str] = Counter()
        self.records: list[CallRecord] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._done: dict[str, asyncio.Event] = {}
        self._refreshing = asyncio.Lock()
        self._stopping = False
        self._main: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None

    # -- life cycle ---------------------------------------------------------------------------
    async def start(self) -> Recovery:
        """Settle what a previous run left, then start dialing; returns what was settled."""
        recovery = await self.recover()
        self._unsubscribe = self.store.subscribe_oppositions(self._on_opposition)
        self._main = self.loop.create_task(self._run())
        return recovery

    async def recover(self) -> Recovery:
        """Settle what a dialer that died left (see :mod:`gateway.calls.recovery`)."""
        return await recover(self.store, self.ctx.clock)

    async def stop(self, grace: float) -> None:
        """SIGTERM: stop dialing at once, let calls in progress end for ``grace`` seconds, then
        hang up the rest (their records are still written)."""
        self._stopping = True
        self._wake.set()
        if self._main is not None:
            await self._main
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for run in self.runs.values():
            await self._release(run)
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
        if pending:
            log.warning("hanging up %d calls still in progress", len(pending))
            # Each call's task sends its CANCEL or BYE and records why.
            self.ctx.service.hangup_all("gateway shutting down")
            _, pending = await asyncio.wait(pending, timeout=10.0)
            for task in pending:  # left unsettled: the next start settles them
                task.cancel()

    async def pause(self, campaign: str) -> None:
        """No new calls for ``campaign`` (calls in progress finish); also in the store."""
        run = self.runs.get(campaign)
        if run is not None:
            run.active, run.store_state = False, "paused"  # the loop starts nothing more
            await self._release(run)
        await self.store.set_run_state(campaign, "paused", self.ctx.clock())

    async def wait_done(self, campaign: str) -> None:
        """Until ``campaign`` has no contact pending or calling (its run state is then done)."""
        await self._done_event(campaign).wait()

    def _done_event(self, campaign: str) -> asyncio.Event:
        return self._done.setdefault(campaign, asyncio.Event())

    def peak_concurrent(self, campaign: str | None = None, trunk: str | None = None) -> int:
        """The most calls (decisions included) that were in progress at once."""
        if trunk is not None:
            return self.trunks[trunk].peak if trunk in self.trunks else 0
        return self.runs[str(campaign)].pace.peak

    # -- the loop -----------------------------------------------------------------------------
    async def _run(self) -> None:
        next_refresh = 0.0
        while not self._stopping:
            self._wake.clear()
            wait = self.poll_interval
            try:
                if self.loop.time() >= next_refresh:
                    await self._refresh()
                    next_refresh = self.loop.time() + self.poll_interval
                for run in list(self.runs.values()):
                    wait = min(wait, await self._dispatch(run))
            except Exception:  # the store failed: nothing is dialled until it answers again
                log.exception("dialer loop")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(wait, 0.001))

    async def refresh(self) -> None:
        """Follow ``gateway campaign start|pause`` now (the loop does it every poll interval):
        open the campaigns made active, with their call plans; see :attr:`failed`."""
        await self._refresh()

    async def _refresh(self) -> None:
        async with self._refreshing:  # refresh() and the loop: one campaign opened once
            await self._follow_run_states()

    async def _follow_run_states(self) -> None:
        for name, state in (await self.store.run_states()).items():
            run = self.runs.get(name)
            if run is None and state == "active" and name not in self.failed:
                run = await self._open(name)
            if run is None or state == run.store_state:
                continue  # only a change in the store acts (pause() may be newer than this read)
            run.store_state = state
            if run.active and state != "active":
                log.info("campaign %s %s: no new calls", name, state)
                await self._release(run)
            elif not run.active and state == "active":
                run.done.clear()
            run.active = state == "active"

    async def _open(self, name: str) -> _Run | None:
        campaign = await self.store.get_campaign(name)
        advertiser = await self.store.get_advertiser(campaign.advertiser) if campaign else None
        if campaign is None or advertiser is None:
            self.failed[name] = "campaign or advertiser not in the store"
            log.error("campaign %s cannot start: %s", name, self.failed[name])
            return None
        try:
            plan = await asyncio.to_thread(self.prepare, campaign, advertiser)
        except Exception as exc:  # a prompt that cannot be read: say which, dial nothing
            self.failed[name] = f"{type(exc).__name__}: {exc}"
            log.error("campaign %s cannot start: %s", name, self.failed[name])
            return None
        # The first decision of a process loads the numbering plan and holiday data, longer than
        # the decision budget: load them now, recording nothing.
        # The numbering plan loads its time-zone tables per kind of number (a mobile's are not a
        # landline's: measured 50 ms for the first mobile), so warm up with one of each.
        now = self.ctx.clock()
        for number in (campaign.caller_id, *_sample_numbers(advertiser.country)):
            with contextlib.suppress(Exception):
                decide(await self.store.gather(name, number, now), now, self.settings)
        limits = campaign.limits
        pace = _Pace.of(limits.calls_per_second, limits.max_concurrent, self.loop.time())
        run = self.runs[name] = _Run(campaign, plan, pace, self._done_event(name))
        log.info("campaign %s running on trunk %s", name, campaign.trunk)
        return run

    async def _dispatch(self, run: _Run) -> float:
        """Start what ``run`` may start now; returns the seconds until it may start more."""
        name, trunk = run.campaign.name, self.trunks.get(run.campaign.trunk)
        if not run.active or run.done.is_set():
            return self.poll_interval
        if self.ctx.service.trunk_up.get(run.plan.trunk) is False:
            await self._release(run)  # a dead trunk: the contacts wait in the store
            return self.poll_interval
        while True:
            room = min(run.pace.room(), trunk.room() if trunk else run.pace.room())
            if room <= 0:
                return self.poll_interval  # a call's end wakes the loop
            t = self.loop.time()
            wait = max(run.pace.wait(t), trunk.wait(t) if trunk else 0.0)
            if wait > 0:
                return wait
            if not run.queue:
                if t < run.idle_until:
                    return run.idle_until - t
                # Claim about a second's worth, no more than may start: a crash leaves little
                # in "calling", and oppositions find few contacts already claimed.
                limit = min(room, max(1, math.ceil(run.campaign.limits.calls_per_second)))
                run.queue.extend(await self.store.claim_due(name, self.ctx.clock(), limit,
                                                            self.owner))  # fmt: skip
                if not run.queue:
                    return await self._idle(run)
            contact = run.queue.popleft()
            for pace in (run.pace, trunk):
                if pace is not None:
                    if pace.bucket is not None:
                        pace.bucket.take(t)
                    pace.active += 1
                    pace.peak = max(pace.peak, pace.active)
            task = self.loop.create_task(self._attempt(run, contact))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _idle(self, run: _Run) -> float:
        """Nothing due now: sleep until the next contact is due, or mark the campaign done."""
        name = run.campaign.name
        due = await self.store.next_due(name)
        if due is None:
            status = await self.store.campaign_status(name)
            # Decided on this one read, not the one before it: a call that ended in between
            # may have written its retry (pending again), and then the campaign goes on.
            states = status.states
            if run.pace.active == 0 and not states.get("calling") and not states.get("pending"):
                await self.store.set_run_state(name, "done", self.ctx.clock())
                run.active, run.store_state = False, "done"
                run.done.set()
                log.info("campaign %s done: %s", name, status.states)
            delay = self.poll_interval
        else:
            delay = min(self.poll_interval, (due - self.ctx.clock()).total_seconds())
        run.idle_until = self.loop.time() + max(delay, 0.0)
        return max(delay, 0.001)

    async def _attempt(self, run: _Run, contact: Contact) -> None:
        """Decide right before the call, call, and write the scheduler's next step."""
        name, number = run.campaign.name, contact.number
        trunk = self.trunks.get(run.campaign.trunk)
        try:
            now = self.ctx.clock()
            decision = await decide_and_reserve(
                self.store, name, number, now, budget=self.budget, settings=self.settings
            )
            self.counts[f"decision.{decision.verdict.value}"] += 1
            if self.on_decision is not None:
                self.on_decision(decision)
            step = after_decision(
                decision.verdict.value, decision.rule, decision.reason, decision.until, now
            )
            if not step.call or decision.attempt_id is None:
                for pace in (run.pace, trunk):
                    if pace is not None and pace.bucket is not None:
                        pace.bucket.refund()  # no INVITE: the token was not used
                outcome = "denied" if decision.verdict.value == "deny" else ""
                await self.store.settle_contact(name, number, step, now, outcome=outcome)
                return
            attempts = await self.store.attempt_started(name, number, decision.attempt_id)
            record = await place_call(self.ctx, run.plan, decision)
            self.records.append(record)
            self.counts[f"outcome.{record.outcome}"] += 1
            if self.on_record is not None:
                self.on_record(record)
            await self._after_call(run, contact, record, attempts)
        except Exception:
            # The contact stays "calling": the next start puts it back, its attempt counted.
            log.exception("attempt for %s in %s", number, name)
        finally:
            for pace in (run.pace, trunk):
                if pace is not None:
                    pace.active -= 1
            self._wake.set()

    async def _after_call(
        self, run: _Run, contact: Contact, record: CallRecord, attempts: int
    ) -> None:
        limits, end = run.campaign.limits, self.ctx.clock()
        step: Step = after_call(
            record.outcome,
            record.sip_cause,
            attempts=attempts,
            max_attempts=limits.max_attempts,
            retry_after=limits.retry_after,
            now=end,
        )
        if step.oppose:
            # RFC 8197: 607 Unwanted is the callee's refusal of these calls: an opposition.
            await self.store.add_opposition(
                contact.number, run.plan.advertiser, "callee_607", end, record.attempt_id
            )
        await self.store.settle_contact(
            run.campaign.name, contact.number, step, end,
            cause=record.sip_cause, outcome=record.outcome,
        )  # fmt: skip

    # -- oppositions and releases -------------------------------------------------------------
    def _on_opposition(self, number_hmac: str, scope: str) -> None:
        """Drop the queued contacts of an opposed number at once (COMPLIANCE.md 6)."""
        for run in self.runs.values():
            if scope not in (ADVERTISER_WIDE, run.plan.advertiser):
                continue
            hit = [c for c in run.queue if self.store.number_hmac(c.number) == number_hmac]
            for contact in hit:
                run.queue.remove(contact)
                self.counts["dropped.opposition"] += 1
                task = self.loop.create_task(self._stop_opposed(run, contact))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _stop_opposed(self, run: _Run, contact: Contact) -> None:
        step = Step(ContactState.STOPPED, "opposition registered while queued")
        await self.store.settle_contact(run.campaign.name, contact.number, step, self.ctx.clock())

    async def _release(self, run: _Run) -> None:
        if run.queue:
            numbers = [c.number for c in run.queue]
            run.queue.clear()
            await self.store.release(run.campaign.name, numbers, self.ctx.clock())


def _sample_numbers(country: str) -> list[str]:
    """Example mobile and landline numbers of ``country`` (phonenumbers' own examples)."""
    out = []
    for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
        example = phonenumbers.example_number_for_type(country, kind)
        if example is not None:
            out.append(phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164))
    return out
