"""The opt-out line: calls back to an advertiser's caller ID reach a voice that names the
advertiser and records the caller's opposition on one key (COMPLIANCE.md section 6).

"The caller ID is callable back": L221-17 of the Code de la consommation. An INVITE from a trunk
to one of the caller IDs is answered with "you were called by ADVERTISER; to stop these calls
press KEY"; the key records an opposition for the calling number (P-Asserted-Identity, else
From) for that advertiser, durably, then a confirmation plays and the line is dropped. A called
number that is no advertiser's caller ID gets 404.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import phonenumbers

from gateway.calls import script as sc
from gateway.calls.outbound import script_input, start_media
from gateway.calls.service import CallService, HangupRequested
from gateway.media.player import Player, Segment
from gateway.media.transport import MediaEngine
from gateway.sip.errors import SipError
from gateway.sip.events import CallEnded, IncomingCall
from gateway.sip.sdp import SessionDescription, make_answer
from gateway.sip.uri import SipURI
from gateway.store.base import Store

__all__ = ["Line", "OptoutLine", "normalize_number"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Line:
    """One caller ID's line: whose it is, the key, what it says."""

    advertiser: str
    key: str
    greeting: Segment
    confirmation: Segment
    #: Longest a call to the line may last, seconds.
    max_duration: float = 60.0


@dataclass
class LineCall:
    """What happened on one call to the line (for logs and tests)."""

    caller: str
    called: str
    advertiser: str
    answered: bool = False
    opted_out: bool = False
    opposition_at: datetime | None = None
    ended_by: str = ""


def normalize_number(text: str, region: str = "FR") -> str | None:
    """An E.164 number from what a trunk puts in a URI: ``+33...``, ``33...``, ``01...``."""
    digits = "".join(c for c in text if c.isdigit() or c == "+")
    candidates = [digits] if digits.startswith("+") else [f"+{digits}", digits]
    for candidate in candidates:
        try:
            parsed = phonenumbers.parse(candidate, None if candidate.startswith("+") else region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
    return None


class OptoutLine:
    """Answers inbound calls for the caller IDs in ``lines`` (E.164 -> :class:`Line`)."""

    def __init__(
        self,
        service: CallService,
        media: MediaEngine,
        store: Store,
        lines: Mapping[str, Line],
        *,
        clock: Callable[[], datetime],
        media_address: str,
        region: str = "FR",
    ) -> None:
        self.service, self.media, self.store = service, media, store
        self.lines = dict(lines)
        self.clock = clock
        self.media_address = media_address
        self.region = region
        self.calls: list[LineCall] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self) -> None:
        """Take the inbound calls of the service."""
        self.service.on_incoming = self.on_incoming

    def on_incoming(self, event: IncomingCall) -> None:
        called = normalize_number(event.called, self.region)
        line = self.lines.get(called or "")
        if line is None:
            log.info("inbound call to %s: not a caller ID of ours (404)", event.called)
            self.service.reject(event.call_id, 404)
            return
        task = asyncio.get_running_loop().create_task(self._answer(event, line, called or ""))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _answer(self, event: IncomingCall, line: Line, called: str) -> None:
        caller = _user_of(event.caller)
        record = LineCall(caller, called, line.advertiser)
        self.calls.append(record)
        number = normalize_number(caller, self.region)
        queue = self.service.subscribe(event.call_id)
        try:
            offer = SessionDescription.parse(event.offer)
        except SipError:
            self.service.reject(event.call_id, 488)
            return
        stream = await self.media.open_stream(label=f"line:{caller}")
        try:
            try:
                answer, audio = make_answer(
                    offer,
                    address=self.media_address,
                    port=stream.local_port,
                    session_id=stream.local_port,
                    version=1,
                )
            except SipError as exc:
                self.service.reject(event.call_id, exc.status)
                return
            player = Player(audio.codec)
            stream.on_event = queue.put_nowait
            self.service.accept(event.call_id, bytes(answer))
            record.answered = True
            start_media(stream, audio, player)
            await self._converse(
                event.call_id, line=line, number=number, player=player, queue=queue, record=record
            )
        finally:
            await stream.close()

    async def _converse(
        self,
        call_id: str,
        *,
        line: Line,
        number: str | None,
        player: Player,
        queue: asyncio.Queue[object],
        record: LineCall,
    ) -> None:
        script = sc.Script(("greeting",), optout_key=line.key, confirmation="confirmation")
        segments = {"greeting": line.greeting, "confirmation": line.confirmation}
        loop = asyncio.get_running_loop()
        started = loop.time()
        pending = script.handle(sc.Answered(0.0))
        while True:
            while pending:
                action = pending.pop(0)
                if isinstance(action, sc.Play):
                    player.play(*(segments[name] for name in action.segments))
                elif isinstance(action, sc.StopPlaying):
                    player.stop()
                elif isinstance(action, sc.CommitOpposition):
                    pending += await self._commit(script, line, number, record)
                elif isinstance(action, sc.HangUp):
                    self.service.hangup(call_id)
            remaining = started + line.max_duration - loop.time()
            try:
                event = await asyncio.wait_for(queue.get(), max(0.0, remaining))
            except TimeoutError:
                pending = script.handle(sc.MaxDurationReached(loop.time() - started))
                continue
            at = loop.time() - started
            if isinstance(event, CallEnded):
                record.ended_by = "gateway" if event.by == "local" else "caller"
                script.handle(sc.HungUp(at))
                return
            if isinstance(event, HangupRequested):
                self.service.hangup(call_id)
                continue
            heard = script_input(event, at)
            if heard is not None:
                pending = script.handle(heard)

    async def _commit(
        self, script: sc.Script, line: Line, number: str | None, record: LineCall
    ) -> list[sc.Action]:
        if number is None:
            # No number to oppose: never confirm what was not recorded.
            log.warning("opt-out line: the caller's number %r is not valid", record.caller)
            return script.handle(sc.OppositionFailed("caller number not valid", 0.0))
        try:
            await self.store.add_opposition(
                number, scope=line.advertiser, source="callback_line", now=self.clock()
            )
        except Exception as exc:
            log.error("opt-out line: opposition of %s not written: %s", number, exc)
            return script.handle(sc.OppositionFailed(str(exc), 0.0))
        record.opted_out, record.opposition_at = True, self.clock()
        log.info("opt-out line: %s opposed %s", number, line.advertiser)
        return script.handle(sc.OppositionCommitted(0.0))


def _user_of(uri: str) -> str:
    """The user part of a SIP URI (the number), or a ``tel:`` URI's number."""
    if uri.lower().startswith("tel:"):
        return uri[4:].split(";", 1)[0]
    try:
        return SipURI.parse(uri).user or ""
    except SipError:
        return ""
