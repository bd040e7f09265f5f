"""A callee simulator on loopback: the "trunk" of ``make demo`` and of end-to-end tests.

It is a SIP user agent server built on the gateway's own stack (``sip.endpoint`` behind
``sip.transport``, media through ``media.transport``). Every INVITE from the gateway is a call
to a number; what the callee does is that number's :class:`Behaviour`: ring then answer, reject,
never answer, press a key (RFC 4733, an in-band tone, or SIP INFO), hang up after a while. It
records what it hears to ``<record_dir>/<number>.wav`` (8 kHz mono 16-bit) and keeps a
:class:`CalleeResult` per call.

Usage::

    sim = await CalleeSimulator.start(
        gateway_address=("127.0.0.1", 5070),
        record_dir=Path("recordings"),
        behaviours={"+33612000009": Behaviour(press="9", press_at=2.0)},
    )
    # the gateway's trunk points at sip:127.0.0.1:<sim.address[1]>
    await sim.wait_calls(30, timeout=120)
    await sim.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gateway.media.player import Player, Segment
from gateway.media.prompts import SAMPLE_RATE
from gateway.media.transport import MediaEngine, RtpStream
from gateway.simulator_media import (
    PRESS_SECONDS,
    Behaviour,
    CalleeResult,
    PressHow,
    Recorder,
    dtmf_tone,
)
from gateway.sip.endpoint import Endpoint, EndpointSettings, TrunkSettings
from gateway.sip.errors import SipError
from gateway.sip.events import CallEnded, CallUpdated, Event, IncomingCall
from gateway.sip.sdp import SessionDescription, make_answer
from gateway.sip.transport import ListenSpec, SipTransport

__all__ = ["Behaviour", "CalleeResult", "CalleeSimulator", "PressHow", "dtmf_tone"]

log = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"[^0-9A-Za-z+*#._-]")


@dataclass
class _Call:
    event: IncomingCall
    behaviour: Behaviour
    result: CalleeResult
    ended: asyncio.Future[CallEnded]
    stream: RtpStream | None = None
    recorder: Recorder | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class CalleeSimulator:
    """Callees behind one SIP address: each number called behaves as its :class:`Behaviour`.

    Build it with :meth:`start`; point the gateway's trunk at :attr:`address`. ``results``
    holds the last call to each number, ``calls`` every call in the order they ended.
    """

    def __init__(
        self,
        *,
        endpoint: Endpoint,
        engine: MediaEngine,
        record_dir: Path,
        behaviours: dict[str, Behaviour],
        default: Behaviour,
        rng: random.Random,
    ) -> None:
        self.endpoint = endpoint
        self.engine = engine
        self.record_dir = record_dir
        self.behaviours = behaviours
        self.default = default
        self.rng = rng
        self.address: tuple[str, int] = ("", 0)
        self.results: dict[str, CalleeResult] = {}
        self.calls: list[CalleeResult] = []
        self.transport: SipTransport | None = None
        self._live: dict[str, _Call] = {}
        self._done = asyncio.Condition()
        self._files: set[Path] = set()
        self._closed = False

    @classmethod
    async def start(
        cls,
        *,
        gateway_address: tuple[str, int],
        record_dir: Path,
        behaviours: dict[str, Behaviour],
        default: Behaviour | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        rtp_ports: tuple[int, int] = (31000, 31999),
        rng: random.Random | None = None,
    ) -> CalleeSimulator:
        """Listen for SIP over UDP on ``host``:``port`` (0: any free port) and wait for calls.

        Requests are accepted from ``gateway_address``'s host only (others get 403).
        ``rtp_ports`` bounds the media ports; ``(0, 0)`` lets the system choose.
        """
        rng = rng or random.Random()
        gw_host, gw_port = gateway_address
        trunk = TrunkSettings(
            name="gateway", uri=f"sip:{gw_host}:{gw_port}", keepalive_interval=0, sources=(gw_host,)
        )
        endpoint = Endpoint(
            EndpointSettings(user_agent="gateway-simulator"),
            [trunk],
            rng=random.Random(rng.getrandbits(64)),
        )
        # The callees only listen: no in-band detector, which costs CPU for every stream.
        engine = MediaEngine(
            host=host,
            port_min=rtp_ports[0],
            port_max=rtp_ports[1],
            rng=random.Random(rng.getrandbits(64)),
            inband=False,
            cname=f"simulator@{host}",
        )
        sim = cls(
            endpoint=endpoint,
            engine=engine,
            record_dir=record_dir,
            behaviours=behaviours,
            default=default or Behaviour(),
            rng=rng,
        )
        sim.transport = SipTransport(endpoint, sim._on_event)
        sim.address = await sim.transport.listen(ListenSpec("udp", host, port))
        log.info("callee simulator on sip:%s:%d", *sim.address)
        return sim

    async def wait_calls(self, n: int, timeout: float) -> None:  # noqa: ASYNC109
        """Return once ``n`` calls have ended and been recorded; TimeoutError after ``timeout``.

        ``calls`` then holds at least ``n`` results, each with its recording written.
        """
        async with asyncio.timeout(timeout), self._done:
            await self._done.wait_for(lambda: len(self.calls) >= n)

    async def close(self, grace: float = 2.0) -> None:
        """End the calls still up, stop listening and release every port.

        Ringing calls get 480, answered ones BYE; calls whose BYE is not answered within
        ``grace`` seconds are recorded as ended by ``closed``.
        """
        if self._closed:
            return
        self._closed = True
        now = self._now()
        for call_id in list(self._live):
            self.endpoint.reject(call_id, 480, now)  # a no-op once answered
            self.endpoint.hangup(call_id, now)  # a no-op until answered
        self._pump()
        tasks = [c.task for c in self._live.values() if c.task is not None]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self.engine.close()
        if self.transport is not None:
            await self.transport.close()

    # -- SIP events ----------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if isinstance(event, IncomingCall):
            self._incoming(event)
        elif isinstance(event, CallEnded):
            call = self._live.get(event.call_id)
            if call is not None and not call.ended.done():
                call.ended.set_result(event)
        elif isinstance(event, CallUpdated):
            call = self._live.get(event.call_id)
            if call is not None and call.stream is not None and not event.audio.on_hold:
                call.stream.set_remote((event.audio.remote_address, event.audio.remote_port))

    def _incoming(self, event: IncomingCall) -> None:
        if self._closed:
            self.endpoint.reject(event.call_id, 503, event.at)
            return
        number = event.called or "unknown"
        behaviour = self.behaviours.get(number, self.default)
        result = CalleeResult(number, event.call_id, event.caller, event.at)
        loop = asyncio.get_running_loop()
        call = _Call(event, behaviour, result, loop.create_future())
        self._live[event.call_id] = call
        log.info("%s: call to %s from %s", event.call_id, number, event.caller)
        if behaviour.reject is not None:
            self.endpoint.reject(event.call_id, behaviour.reject, event.at)
            # The CallEnded of the rejection comes out of this same pump: wait for it there.
        call.task = loop.create_task(self._run(call), name=f"callee {number}")

    # -- one call ------------------------------------------------------------------------

    async def _run(self, call: _Call) -> None:
        ended: CallEnded | None = None
        try:
            if call.behaviour.reject is None:
                try:
                    await self._answer_and_act(call)
                except Exception:
                    # A callee that fails (no free RTP port ...) must still end its call, or
                    # the caller rings on and wait_calls() never counts it.
                    log.exception("%s: the callee failed", call.event.call_id)
                    self.endpoint.reject(call.event.call_id, 500, self._now())
                    self.endpoint.hangup(call.event.call_id, self._now())
                    self._pump()
            ended = await call.ended
        except asyncio.CancelledError:
            pass  # close() gave up on this call: it is recorded as ended by "closed"
        finally:
            await self._finish(call)
        self._settle(call, ended)
        async with self._done:
            self._done.notify_all()

    async def _answer_and_act(self, call: _Call) -> None:
        event, behaviour = call.event, call.behaviour
        call_id = event.call_id
        stream = call.stream = await self.engine.open_stream(label=call_id)
        call.recorder = Recorder(stream.session)
        try:
            answer, audio = make_answer(
                SessionDescription.parse(event.offer),
                address=self.engine.host,
                port=stream.local_port,
                session_id=self.rng.getrandbits(32),
                version=1,
                username="simulator",
            )
        except SipError as exc:
            # No offer, or no codec in common: RFC 3264 says 488.
            log.warning("%s: cannot answer the offer: %s", call_id, exc)
            self.endpoint.reject(call_id, 488, self._now())
            self._pump()
            return
        self._ring(call_id)
        if behaviour.answer_after is None or await self._ended_within(call, behaviour.answer_after):
            return  # the caller gave up (CANCEL) while it rang
        self.endpoint.accept(call_id, bytes(answer), self._now())
        self._pump()
        call.result.answered = True
        answered_at = call.result.answered_at = self._now()
        stream.start(
            remote=(audio.remote_address, audio.remote_port),
            payload_type=audio.payload_type,
            codec=audio.codec,
            telephone_event_pt=audio.telephone_event_pt,
            player=Player(audio.codec),
        )
        plan: list[tuple[float, str]] = []
        if behaviour.press is not None:
            plan.append((behaviour.press_at, "press"))
        if behaviour.hangup_after is not None:
            plan.append((behaviour.hangup_after, "hangup"))
        for after, action in sorted(plan):
            if await self._ended_within(call, answered_at + after - self._now()):
                return
            if action == "press":
                self._press(call)
            else:
                self._hangup(call)

    def _ring(self, call_id: str) -> None:
        """Send 180 Ringing (with the To tag the 200 will carry)."""
        self.endpoint.ring(call_id, self._now())
        self._pump()

    def _press(self, call: _Call) -> None:
        behaviour, stream = call.behaviour, call.stream
        assert behaviour.press is not None and stream is not None
        how = behaviour.press_how
        if how == "rfc4733":
            if stream.session.telephone_event_pt is None:
                log.warning("%s: no telephone-event agreed, key sent in-band", call.event.call_id)
                how = "inband"
            else:
                stream.send_dtmf(behaviour.press, PRESS_SECONDS)
        if how == "inband":
            stream.player.play(Segment(f"dtmf-{behaviour.press}", dtmf_tone(behaviour.press)))
        elif how == "info":
            self._send_info(call.event.call_id, behaviour.press)
        result = call.result
        result.pressed, result.press_how = behaviour.press, how
        result.pressed_at = self._now() - (result.answered_at or 0.0)
        log.info("%s: pressed %s (%s)", call.event.call_id, behaviour.press, how)

    def _send_info(self, call_id: str, key: str) -> None:
        """SIP INFO ``application/dtmf-relay`` in the dialog.

        The core has no request for this (only its own session refresh and BYE), so it is
        built from the call's dialog and sent through a client transaction of the endpoint.
        """
        inbound = self.endpoint.calls.get(call_id)
        if inbound is None or inbound.dialog is None:
            return
        duration = round(PRESS_SECONDS * 1000)
        info = inbound.dialog.create_request(
            "INFO",
            via=self.endpoint.via(inbound.transport),
            headers=[("Content-Type", "application/dtmf-relay")],
            body=f"Signal={key}\r\nDuration={duration}\r\n".encode(),
        )
        dest = self.endpoint.destination(str(inbound.dialog.next_hop()), inbound.transport)
        self.endpoint.send_request(info, dest, self._now(), None)
        self._pump()

    def _hangup(self, call: _Call) -> None:
        if call.recorder is not None:
            # What the callee hears ends with its BYE, not with the far end's last packets.
            call.recorder.recording = False
        self.endpoint.hangup(call.event.call_id, self._now())
        self._pump()

    async def _ended_within(self, call: _Call, seconds: float) -> bool:
        """Wait up to ``seconds`` for the call's end; True if it ended."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(call.ended), seconds)
        return call.ended.done()

    async def _finish(self, call: _Call) -> None:
        """Stop the media, write the recording; runs however the call ended."""
        self._live.pop(call.event.call_id, None)
        result, stream = call.result, call.stream
        if stream is None:
            return
        if call.recorder is not None:
            call.recorder.recording = False
        result.packets_received = stream.stats.packets_received
        await stream.close()
        if result.answered and call.recorder is not None:
            samples = call.recorder.samples()
            result.recording = self._write(result.number, samples)
            result.recorded_seconds = samples.size / SAMPLE_RATE

    def _settle(self, call: _Call, ended: CallEnded | None) -> None:
        result = call.result
        if ended is None:
            result.ended_by, result.ended_at = "closed", self._now()
        else:
            result.cause, result.ended_at = ended.cause, ended.at
            result.ended_by = {"local": "callee", "remote": "caller"}.get(ended.by, ended.by)
        self.results[result.number] = result
        self.calls.append(result)
        log.info(
            "%s: %s ended by %s (%d), %d packets received",
            call.event.call_id,
            result.number,
            result.ended_by,
            result.cause,
            result.packets_received,
        )

    def _write(self, number: str, samples: npt.NDArray[np.int16]) -> Path:
        """``<record_dir>/<number>.wav``; a number called again gets ``<number>-2.wav`` ..."""
        stem = _FILE_NAME.sub("_", number)
        path = self.record_dir / f"{stem}.wav"
        again = 2
        while path in self._files:
            path = self.record_dir / f"{stem}-{again}.wav"
            again += 1
        self._files.add(path)
        self.record_dir.mkdir(parents=True, exist_ok=True)
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(SAMPLE_RATE)
            out.writeframes(samples.astype("<i2").tobytes())
        return path

    # -- plumbing ------------------------------------------------------------------------

    def _now(self) -> float:
        return self.engine.loop.time()

    def _pump(self) -> None:
        if self.transport is not None:
            self.transport.pump()
