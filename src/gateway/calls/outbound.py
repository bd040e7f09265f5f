"""One outbound call: last opposition check -> INVITE -> media -> script -> call record.

The decision (with its reserved attempt) is taken by the dialer right before calling
:func:`place_call`; this module re-checks the oppositions at the last moment (COMPLIANCE.md 5,
step 7), carries events between SIP, media and the pure :class:`~gateway.calls.script.Script`,
commits an opposition durably before anything else happens on the line, and appends what
happened to the attempt's record.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gateway.calls import script as sc
from gateway.calls.service import CallService, HangupRequested
from gateway.consent.model import AttemptOutcome, Decision
from gateway.media.events import DtmfReceived as MediaDtmf
from gateway.media.events import SegmentEnded, SegmentStarted
from gateway.media.player import Player, Segment
from gateway.media.transport import MediaEngine, RtpStream
from gateway.sip.events import CallAnswered, CallEnded, CallProgressed, CallUpdated, DtmfReceived
from gateway.sip.sdp import AudioSession, make_offer
from gateway.store.base import Store

__all__ = [
    "RECORD_FIELDS",
    "CallContext",
    "CallPlan",
    "CallRecord",
    "place_call",
    "script_input",
    "start_media",
]

#: What a call record adds to its attempt (``AttemptOutcome.extra``), in export order.
RECORD_FIELDS = (
    "outcome",
    "call_id",
    "ringing_at",
    "bye_at",
    "sip_reason",
    "hangup_reason",
    "segments",
    "dtmf_events",
    "optout_latency_ms",
    "packets_sent",
    "packets_received",
    "far_fraction_lost",
    "media_warning",
)

log = logging.getLogger(__name__)

#: Seconds beyond ringing and the longest duration that the SIP timers may still need
#: (64*T1 for a CANCEL or BYE transaction, with room to spare).
SIP_MARGIN = 90.0


@dataclass(frozen=True)
class CallPlan:
    """What every call of a campaign shares, prepared once (prompts decoded and encoded)."""

    campaign: str
    advertiser: str
    trunk: str
    caller_id: str
    optout_key: str
    segments: tuple[Segment, ...]
    confirmation: Segment | None
    ring_timeout: float
    max_duration: float
    display_name: str | None = None


@dataclass
class CallContext:
    """The running parts a call uses."""

    service: CallService
    media: MediaEngine
    store: Store
    clock: Callable[[], datetime]
    media_address: str
    telephone_event_pt: int = 101


@dataclass
class CallRecord:
    """What happened, for the attempt's record and the reports (issue 5, item 6)."""

    number: str
    campaign: str
    attempt_id: int | None
    call_id: str = ""
    outcome: str = ""  # not_called | no_answer | rejected | failed | completed | opted_out | ...
    sip_cause: int | None = None
    sip_reason: str = ""
    ended_by: str = ""  # callee | gateway | timeout | error
    invite_at: datetime | None = None
    ringing_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    bye_at: datetime | None = None
    segments: list[tuple[str, str, float]] = field(default_factory=list)
    dtmf: list[tuple[str, str, float]] = field(default_factory=list)
    opposition_at: datetime | None = None
    optout_latency_ms: float | None = None
    hangup_reason: str = ""
    packets_sent: int = 0
    packets_received: int = 0
    far_fraction_lost: float | None = None

    def outcome_fields(self) -> AttemptOutcome:
        segment_start = {name: at for what, name, at in self.segments if what == "start"}
        base = self.answered_at
        extra = {
            "outcome": self.outcome,
            "call_id": self.call_id,
            "sip_reason": self.sip_reason,
            "hangup_reason": self.hangup_reason,
            "segments": json.dumps(self.segments),
            "dtmf_events": json.dumps(self.dtmf),
            "packets_sent": str(self.packets_sent),
            "packets_received": str(self.packets_received),
        }
        if self.ringing_at is not None:
            extra["ringing_at"] = self.ringing_at.isoformat()
        if self.bye_at is not None:
            extra["bye_at"] = self.bye_at.isoformat()
        if self.far_fraction_lost is not None:
            extra["far_fraction_lost"] = f"{self.far_fraction_lost:.4f}"
        if self.optout_latency_ms is not None:
            extra["optout_latency_ms"] = f"{self.optout_latency_ms:.2f}"
        if self.answered_at is not None and self.packets_received == 0:
            # The far end sent no RTP: its keys could only come by SIP INFO (RFC 4733 and
            # in-band need its audio). Said in the record rather than guessed at.
            extra["media_warning"] = "no RTP received from the far end"

        def at(name: str) -> datetime | None:
            if base is None or name not in segment_start:
                return None
            return base + timedelta(seconds=segment_start[name])

        return AttemptOutcome(
            invite_sent_at=self.invite_at,
            final_status=self.sip_cause,
            answered_at=self.answered_at,
            identity_started_at=at("identity"),
            optout_started_at=at("optout"),
            dtmf="".join(d for d, _, _ in self.dtmf),
            opposition_committed_at=self.opposition_at,
            ended_at=self.ended_at,
            ended_by=self.ended_by,
            extra=extra,
        )


async def place_call(ctx: CallContext, plan: CallPlan, decision: Decision) -> CallRecord:
    """Place one call for an allowed, reserved decision; returns its record (also stored)."""
    if not decision.allowed:
        raise ValueError("place_call needs an allow decision")  # the dialer's job, never skipped
    record = CallRecord(decision.number, plan.campaign, decision.attempt_id)
    try:
        await _call(ctx, plan, decision, record)
    except Exception as exc:
        log.exception("call to %s failed", decision.number)
        record.outcome = record.outcome or "error"
        record.ended_by = record.ended_by or "error"
        record.hangup_reason = record.hangup_reason or f"{type(exc).__name__}: {exc}"
    record.ended_at = record.ended_at or ctx.clock()
    if decision.attempt_id is not None:
        await ctx.store.record_outcome(decision.attempt_id, record.outcome_fields(), ctx.clock())
    return record


async def _call(ctx: CallContext, plan: CallPlan, decision: Decision, record: CallRecord) -> None:
    number = decision.number
    # COMPLIANCE.md 5, step 7: an opposition registered a millisecond ago still stops the call.
    if await ctx.store.is_opposed(number, plan.advertiser):
        record.outcome, record.ended_by = "not_called", "gateway"
        record.hangup_reason = "opposition registered before the INVITE"
        return
    stream = await ctx.media.open_stream(label=number)
    call = _Call(ctx, plan, decision, record)
    # A call cannot outlive ringing, its longest duration and the SIP timers: past that, the
    # SIP layer lost it, and the call is ended here rather than left open for ever.
    limit = plan.ring_timeout + plan.max_duration + SIP_MARGIN
    try:
        async with asyncio.timeout(limit):
            await call.run(stream)
    except TimeoutError:
        record.outcome, record.ended_by = "error", "error"
        record.hangup_reason = f"no end of call from the SIP layer after {limit:.0f} s"
        if call.call_id:
            ctx.service.hangup(call.call_id, 'SIP;cause=500;text="call lost"')
    finally:
        stats = stream.stats
        record.packets_sent, record.packets_received = stats.packets_sent, stats.packets_received
        record.far_fraction_lost = stats.far_fraction_lost
        await stream.close()


class _Call:
    """One call's task: reads its queue (SIP and media events) and drives the script."""

    def __init__(
        self, ctx: CallContext, plan: CallPlan, decision: Decision, record: CallRecord
    ) -> None:
        self.ctx, self.plan, self.decision, self.record = ctx, plan, decision, record
        self.segments = {s.name: s for s in (*plan.segments, plan.confirmation) if s is not None}
        self.script = sc.Script(
            tuple(s.name for s in plan.segments),
            optout_key=plan.optout_key,
            confirmation=plan.confirmation.name if plan.confirmation is not None else None,
        )
        self.player: Player | None = None
        self.call_id = ""
        self.loop = asyncio.get_running_loop()
        self.answered_mono = self.loop.time()
        self.digit_known = time.perf_counter()

    def media_time(self) -> float:
        return self.loop.time() - self.answered_mono

    async def run(self, stream: RtpStream) -> None:
        ctx, plan, record = self.ctx, self.plan, self.record
        offer = make_offer(
            address=ctx.media_address,
            port=stream.local_port,
            session_id=stream.local_port,
            version=1,
            telephone_event_pt=ctx.telephone_event_pt,
        )
        self.call_id, queue = ctx.service.invite(
            trunk=plan.trunk,
            to_user=self.decision.number,
            from_user=plan.caller_id,
            sdp=bytes(offer),
            ring_timeout=plan.ring_timeout,
            display_name=plan.display_name,
        )
        record.call_id, record.invite_at = self.call_id, ctx.clock()

        def from_media(event: object) -> None:
            if isinstance(event, MediaDtmf):
                # The opt-out latency runs from the moment the key press is known here.
                self.digit_known = time.perf_counter()
            queue.put_nowait(event)

        stream.on_event = from_media
        deadline: float | None = None
        while True:
            timeout = None if deadline is None else max(0.0, deadline - self.loop.time())
            try:
                event = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                event = None
            inputs: list[sc.Event] = []
            if event is None:
                deadline = None
                inputs.append(sc.MaxDurationReached(self.media_time()))
            elif isinstance(event, CallProgressed):
                record.ringing_at = record.ringing_at or ctx.clock()
            elif isinstance(event, CallAnswered):
                record.answered_at, self.answered_mono = ctx.clock(), self.loop.time()
                deadline = self.answered_mono + plan.max_duration
                self.player = Player(event.audio.codec)
                start_media(stream, event.audio, self.player)
                inputs.append(sc.Answered(0.0))
            elif isinstance(event, CallUpdated):
                _update_media(stream, event.audio)
            elif (heard := script_input(event, self.media_time())) is not None:
                if isinstance(event, DtmfReceived):
                    self.digit_known = time.perf_counter()
                inputs.append(heard)
            elif isinstance(event, HangupRequested):
                record.hangup_reason, record.bye_at = event.reason, ctx.clock()
                ctx.service.hangup(self.call_id, f'SIP;cause=200;text="{event.reason}"')
            elif isinstance(event, CallEnded):
                _ended(record, event, self.script, ctx)
                self.script.handle(sc.HungUp(self.media_time()))
                return
            for item in inputs:
                await self.handle(item)

    async def handle(self, event: sc.Event) -> None:
        record = self.record
        if isinstance(event, sc.Digit):
            record.dtmf.append((event.digit, event.how, event.at))
        elif isinstance(event, sc.SegmentStarted):
            record.segments.append(("start", event.name, event.at))
        elif isinstance(event, sc.SegmentFinished):
            record.segments.append(("end", event.name, event.at))
        pending = self.script.handle(event)
        while pending:
            action = pending.pop(0)
            if isinstance(action, sc.Play) and self.player is not None:
                self.player.play(*(self.segments[name] for name in action.segments))
            elif isinstance(action, sc.StopPlaying) and self.player is not None:
                self.player.stop()
            elif isinstance(action, sc.CommitOpposition):
                pending += await self.commit()
            elif isinstance(action, sc.HangUp):
                record.hangup_reason = action.reason
                record.bye_at = self.ctx.clock()
                self.ctx.service.hangup(self.call_id, f'SIP;cause=200;text="{action.reason}"')

    async def commit(self) -> list[sc.Action]:
        """Write the opposition durably (full sync) before anything else happens on the line."""
        ctx, decision, record = self.ctx, self.decision, self.record
        try:
            await ctx.store.add_opposition(
                decision.number,
                scope=self.plan.advertiser,
                source="dtmf",
                now=ctx.clock(),
                attempt_id=decision.attempt_id,
            )
        except Exception as exc:
            log.error("opposition of %s not written: %s", decision.number, exc)
            return self.script.handle(sc.OppositionFailed(str(exc), self.media_time()))
        record.opposition_at = ctx.clock()
        record.optout_latency_ms = (time.perf_counter() - self.digit_known) * 1000
        log.info("%s opted out of %s: opposition committed", decision.number, self.plan.advertiser)
        return self.script.handle(sc.OppositionCommitted(self.media_time()))


def script_input(event: object, now: float) -> sc.Event | None:
    """The script's view of a key press or a segment's start or end, from media or SIP INFO.

    ``now`` dates a SIP INFO press (media events carry their own media time).
    """
    if isinstance(event, MediaDtmf):
        return sc.Digit(event.digit, event.how, event.media_time)
    if isinstance(event, DtmfReceived):
        return sc.Digit(event.digit, "info", now)
    if isinstance(event, SegmentStarted):
        return sc.SegmentStarted(event.name, event.media_time)
    if isinstance(event, SegmentEnded):
        return sc.SegmentFinished(event.name, event.media_time)
    return None


def start_media(stream: RtpStream, audio: AudioSession, player: Player) -> None:
    """Send ``player``'s audio to the far end of ``audio`` (held if it said so)."""
    stream.start(
        remote=(audio.remote_address, audio.remote_port),
        payload_type=audio.payload_type,
        codec=audio.codec,
        telephone_event_pt=audio.telephone_event_pt,
        player=player,
    )
    if audio.on_hold:
        stream.hold()


def _update_media(stream: RtpStream, audio: AudioSession) -> None:
    stream.set_remote((audio.remote_address, audio.remote_port))
    if audio.on_hold:
        stream.hold()
    else:
        stream.resume()


def _ended(record: CallRecord, event: CallEnded, script: sc.Script, ctx: CallContext) -> None:
    record.sip_cause, record.sip_reason = event.cause, event.reason
    record.ended_at = ctx.clock()
    if not event.answered:
        record.outcome = {408: "no_answer", 487: "no_answer"}.get(event.cause, "rejected")
        if event.cause in (408, 503) and event.by == "network":
            record.outcome = "failed" if event.cause == 503 else "no_answer"
        record.ended_by = "timeout" if event.cause in (408, 487) else "callee"
        return
    record.ended_by = "gateway" if event.by == "local" else "callee"
    if script.opted_out:
        record.outcome = "opted_out"
    elif script.hangup_reason == "message_complete":
        record.outcome = "completed"
    else:
        record.outcome = "hung_up" if event.by == "remote" else script.hangup_reason or "ended"
