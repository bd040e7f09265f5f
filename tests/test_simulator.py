"""The callee simulator against our own endpoint and media engine as the caller, on loopback."""

from __future__ import annotations

import asyncio
import random
import socket
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pytest

from gateway.media.dtmf import detect_tones
from gateway.media.events import DtmfReceived, MediaEvent, SegmentEnded
from gateway.media.player import Player, Segment
from gateway.media.prompts import Prompt, prompt_from_text
from gateway.media.transport import MediaEngine, RtpStream
from gateway.simulator import Behaviour, CalleeSimulator, PressHow, dtmf_tone
from gateway.sip import events as sip
from gateway.sip.endpoint import Endpoint, EndpointSettings, TrunkSettings
from gateway.sip.sdp import make_offer
from gateway.sip.transaction import Timers
from gateway.sip.transport import ListenSpec, SipTransport

T = TypeVar("T")


@dataclass
class Placed:
    """One call of the caller: its media stream and what SIP and media reported."""

    call_id: str
    stream: RtpStream
    player: Player
    answered: asyncio.Future[sip.CallAnswered]
    ended: asyncio.Future[sip.CallEnded]
    info: asyncio.Future[sip.DtmfReceived]
    sip_events: list[sip.Event] = field(default_factory=list)
    media_events: list[MediaEvent] = field(default_factory=list)


class Caller:
    """Our endpoint as a UAC through a trunk to the simulator, with a real media stream."""

    def __init__(self, endpoint: Endpoint, engine: MediaEngine) -> None:
        self.endpoint = endpoint
        self.engine = engine
        self.transport = SipTransport(endpoint, self._on_event)
        self.calls: dict[str, Placed] = {}

    def _on_event(self, event: sip.Event) -> None:
        placed = self.calls.get(getattr(event, "call_id", ""))
        if placed is None:
            return
        placed.sip_events.append(event)
        if isinstance(event, sip.CallAnswered):
            audio = event.audio
            placed.stream.start(
                remote=(audio.remote_address, audio.remote_port),
                payload_type=audio.payload_type,
                codec=audio.codec,
                telephone_event_pt=audio.telephone_event_pt,
                player=placed.player,
            )
            placed.answered.set_result(event)
        elif isinstance(event, sip.CallEnded):
            placed.ended.set_result(event)
        elif isinstance(event, sip.DtmfReceived) and not placed.info.done():
            placed.info.set_result(event)

    async def call(
        self, number: str, prompt: Prompt | None = None, ring_timeout: float | None = None
    ) -> Placed:
        loop = asyncio.get_running_loop()
        stream = await self.engine.open_stream(label=number)
        offer = make_offer(address="127.0.0.1", port=stream.local_port, session_id=1, version=1)
        player = Player("PCMU", [Segment("message", prompt)] if prompt else [])
        call_id = self.endpoint.invite(
            trunk="simulator",
            to_user=number,
            from_user="+33162000001",
            sdp=bytes(offer),
            now=loop.time(),
            ring_timeout=ring_timeout,
        )
        placed = Placed(
            call_id,
            stream,
            player,
            answered=loop.create_future(),
            ended=loop.create_future(),
            info=loop.create_future(),
        )
        stream.on_event = placed.media_events.append
        self.calls[call_id] = placed
        self.transport.pump()
        return placed

    def hangup(self, placed: Placed) -> None:
        self.endpoint.hangup(placed.call_id, asyncio.get_running_loop().time())
        self.transport.pump()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Rig:
    caller: Caller
    sim: CalleeSimulator
    record_dir: Path


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    """A caller and a simulator; tests put their numbers in ``rig.sim.behaviours``."""
    # Each side names the other in its trunk, so the simulator's port is chosen first.
    sim_port = free_udp_port()
    trunk = TrunkSettings(name="simulator", uri=f"sip:127.0.0.1:{sim_port}", keepalive_interval=0)
    endpoint = Endpoint(
        EndpointSettings(timers=Timers(t1=0.5), session_expires=0),
        [trunk],
        rng=random.Random(11),
    )
    engine = MediaEngine(host="127.0.0.1", port_min=0, port_max=0, rng=random.Random(12))
    caller = Caller(endpoint, engine)
    address = await caller.transport.listen(ListenSpec("udp", "127.0.0.1", 0))
    sim = await CalleeSimulator.start(
        gateway_address=address,
        record_dir=tmp_path / "rec",
        behaviours={},
        port=sim_port,
        rtp_ports=(0, 0),
        rng=random.Random(13),
    )
    assert sim.address == ("127.0.0.1", sim_port)
    yield Rig(caller, sim, tmp_path / "rec")
    await sim.close()
    await engine.close()
    await caller.transport.close()


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> Prompt:
    work = tmp_path_factory.mktemp("tts")
    return prompt_from_text("This call is recorded. Press nine to object.", "en", work)


def read_wav(path: Path) -> npt.NDArray[np.int16]:
    with wave.open(str(path), "rb") as f:
        assert (f.getnchannels(), f.getsampwidth(), f.getframerate()) == (1, 2, 8000)
        return np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").astype(np.int16)


def best_alignment(recorded: npt.NDArray[np.int16], reference: npt.NDArray[np.int16]) -> float:
    """Normalised cross-correlation of ``reference`` with ``recorded`` at the best offset."""
    got = recorded.astype(np.float64)
    ref = reference.astype(np.float64)
    scores = np.correlate(got, ref, mode="valid")
    offset = int(np.argmax(scores))
    window = got[offset : offset + ref.size]
    return float(np.dot(window, ref) / np.sqrt(np.dot(window, window) * np.dot(ref, ref)))


def presses(placed: Placed) -> list[DtmfReceived]:
    return [e for e in placed.media_events if isinstance(e, DtmfReceived)]


async def within(future: asyncio.Future[T], seconds: float) -> T:
    async with asyncio.timeout(seconds):
        return await future


async def segment_ended(placed: Placed, seconds: float) -> SegmentEnded:
    """The caller's stream finished playing its message."""
    async with asyncio.timeout(seconds):
        while True:
            event = await placed.stream.events.get()
            if isinstance(event, SegmentEnded):
                return event


async def test_recording_decodes_back_to_what_the_caller_played(rig: Rig, spoken: Prompt) -> None:
    hangup_after = spoken.duration + 0.5
    rig.sim.behaviours["+33612000001"] = Behaviour(answer_after=0.3, hangup_after=hangup_after)
    placed = await rig.caller.call("+33612000001", spoken)
    ended = await within(placed.ended, hangup_after + 5)
    assert (ended.cause, ended.by, ended.answered) == (200, "remote", True)
    progress = [e for e in placed.sip_events if isinstance(e, sip.CallProgressed)]
    assert [p.status for p in progress] == [180]
    assert placed.answered.result().at - progress[0].at == pytest.approx(0.3, abs=0.1)
    await rig.sim.wait_calls(1, timeout=5)

    result = rig.sim.results["+33612000001"]
    assert (result.answered, result.ended_by, result.cause) == (True, "callee", 200)
    assert result.recording == rig.record_dir / "+33612000001.wav"
    audio = read_wav(result.recording)
    assert audio.size / 8000 == result.recorded_seconds
    assert result.recorded_seconds == pytest.approx(hangup_after, abs=0.1)
    assert best_alignment(audio, spoken.samples) >= 0.99
    assert abs(result.packets_received - hangup_after * 50) <= 5


async def test_caller_hang_up_ends_the_call_and_its_recording(rig: Rig, spoken: Prompt) -> None:
    placed = await rig.caller.call("200", spoken)  # no behaviour: the default answers at 0.2 s
    await within(placed.answered, 5)
    played = await segment_ended(placed, spoken.duration + 5)
    assert played.completed
    rig.caller.hangup(placed)
    ended = await within(placed.ended, 5)
    assert (ended.cause, ended.by) == (200, "local")
    await rig.sim.wait_calls(1, timeout=5)
    result = rig.sim.results["200"]
    assert (result.answered, result.ended_by, result.pressed) == (True, "caller", None)
    assert result.recording is not None
    # Nothing but the message was played: the recording lasts as long as the caller sent.
    assert read_wav(result.recording).size / 8000 == pytest.approx(played.media_time, abs=0.1)
    assert best_alignment(read_wav(result.recording), spoken.samples) >= 0.99


@pytest.mark.parametrize("how", ["rfc4733", "inband"])
async def test_callee_presses_nine(rig: Rig, how: PressHow) -> None:
    rig.sim.behaviours["300"] = Behaviour(
        press="9",
        press_at=1.0,
        press_how=how,
        hangup_after=2.0,
    )
    placed = await rig.caller.call("300")
    ended = await within(placed.ended, 10)
    assert ended.by == "remote"
    [press] = presses(placed)
    assert (press.digit, press.how) == ("9", how)
    # Media time counts from the caller's first packet, a few ms after the simulator's answer.
    assert press.media_time == pytest.approx(1.0, abs=0.15)
    await rig.sim.wait_calls(1, timeout=5)
    result = rig.sim.results["300"]
    assert (result.pressed, result.press_how) == ("9", how)
    assert result.pressed_at == pytest.approx(1.0, abs=0.05)


async def test_callee_presses_nine_by_sip_info(rig: Rig) -> None:
    rig.sim.behaviours["301"] = Behaviour(press="9", press_at=0.5, press_how="info")
    placed = await rig.caller.call("301")
    answered = await within(placed.answered, 5)
    info = await within(placed.info, 5)
    assert (info.digit, info.duration_ms) == ("9", 200)
    assert info.at - answered.at == pytest.approx(0.5, abs=0.1)
    rig.caller.hangup(placed)
    await rig.sim.wait_calls(1, timeout=5)
    assert rig.sim.results["301"].press_how == "info"


async def test_callee_rejects_with_486(rig: Rig) -> None:
    rig.sim.behaviours["400"] = Behaviour(reject=486)
    placed = await rig.caller.call("400")
    ended = await within(placed.ended, 5)
    assert (ended.cause, ended.by, ended.answered) == (486, "remote", False)
    await rig.sim.wait_calls(1, timeout=5)
    result = rig.sim.results["400"]
    assert (result.answered, result.ended_by, result.cause) == (False, "callee", 486)
    assert result.recording is None
    assert list(rig.record_dir.glob("*.wav")) == []


async def test_an_invite_without_an_offer_gets_488(rig: Rig) -> None:
    loop = asyncio.get_running_loop()
    call_id = rig.caller.endpoint.invite(
        trunk="simulator", to_user="450", from_user="+33162000001", sdp=b"", now=loop.time()
    )
    ended: asyncio.Future[sip.CallEnded] = loop.create_future()
    rig.caller.calls[call_id] = Placed(
        call_id,
        await rig.caller.engine.open_stream(),
        Player("PCMU"),
        answered=loop.create_future(),
        ended=ended,
        info=loop.create_future(),
    )
    rig.caller.transport.pump()
    assert (await within(ended, 5)).cause == 488
    await rig.sim.wait_calls(1, timeout=5)
    assert (rig.sim.results["450"].answered, rig.sim.results["450"].cause) == (False, 488)


async def test_callee_that_never_answers_meets_the_ring_timeout(rig: Rig) -> None:
    rig.sim.behaviours["500"] = Behaviour(answer_after=None)
    placed = await rig.caller.call("500", ring_timeout=1.0)
    ended = await within(placed.ended, 10)
    assert (ended.cause, ended.by, ended.answered) == (487, "local", False)
    assert [e.status for e in placed.sip_events if isinstance(e, sip.CallProgressed)] == [180]
    await rig.sim.wait_calls(1, timeout=5)
    result = rig.sim.results["500"]
    assert (result.answered, result.ended_by, result.cause) == (False, "caller", 487)
    assert result.recording is None


async def test_many_calls_at_once_each_get_their_behaviour(rig: Rig) -> None:
    numbers = [f"+3361200{i:04d}" for i in range(8)]
    for number in numbers[:4]:
        rig.sim.behaviours[number] = Behaviour(hangup_after=1.0)
    rig.sim.default = Behaviour(reject=603)
    placed = [await rig.caller.call(n) for n in numbers]
    causes = [(await within(p.ended, 10)).cause for p in placed]
    assert causes == [200] * 4 + [603] * 4
    await rig.sim.wait_calls(8, timeout=5)
    assert sorted(rig.sim.results) == numbers
    assert sorted(p.name for p in rig.record_dir.iterdir()) == [f"{n}.wav" for n in numbers[:4]]


async def test_a_number_called_twice_keeps_both_recordings(rig: Rig) -> None:
    rig.sim.behaviours["600"] = Behaviour(hangup_after=0.5)
    for _ in range(2):
        await within((await rig.caller.call("600")).ended, 5)
    await rig.sim.wait_calls(2, timeout=5)
    assert [r.recording for r in rig.sim.calls] == [
        rig.record_dir / "600.wav",
        rig.record_dir / "600-2.wav",
    ]


async def test_close_ends_the_calls_still_up(rig: Rig) -> None:
    rig.sim.behaviours["700"] = Behaviour(answer_after=None)
    talking, ringing = await rig.caller.call("701"), await rig.caller.call("700")
    await within(talking.answered, 5)
    await rig.sim.close()
    assert (talking.ended.result().cause, talking.ended.result().by) == (200, "remote")
    # The 480 is on its way when close() returns (the BYE had to be answered first).
    refused = await within(ringing.ended, 5)
    assert (refused.cause, refused.by) == (480, "remote")
    assert {n: r.ended_by for n, r in rig.sim.results.items()} == {"700": "callee", "701": "callee"}
    assert rig.sim.results["701"].recording == rig.record_dir / "701.wav"


async def test_wait_calls_times_out_when_too_few_calls_end(rig: Rig) -> None:
    with pytest.raises(TimeoutError):
        await rig.sim.wait_calls(1, timeout=0.1)


def test_dtmf_tone_is_heard_as_its_key() -> None:
    for key in "159*0#D":
        [press] = detect_tones(dtmf_tone(key).samples)
        assert press.digit == key


@pytest.mark.parametrize(
    "kwargs",
    [{"press": "99"}, {"press": "x"}, {"reject": 200}, {"press_how": "sms"}, {"answer_after": -1}],
)
def test_behaviour_refuses_what_a_callee_cannot_do(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Behaviour(**kwargs)  # type: ignore[arg-type]
