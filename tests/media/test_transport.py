"""The asyncio media layer: two streams on loopback, on uvloop and on the default loop; and the
engine's send clock on a fake loop for an hour of simulated time."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest
import uvloop

from gateway.media import g711
from gateway.media.events import DtmfReceived, SegmentEnded
from gateway.media.player import Player, Segment
from gateway.media.prompts import Prompt, prompt_from_text
from gateway.media.rtcp import Goodbye, parse_compound
from gateway.media.rtp import RtpPacket
from gateway.media.transport import MediaEngine, RtpStream

from .test_session import dtmf_prompt

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "uvloop": uvloop.new_event_loop,
    "asyncio": asyncio.new_event_loop,
}


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Callable[[Callable[[], Awaitable[None]]], None]:
    def runner(main: Callable[[], Awaitable[None]]) -> None:
        with asyncio.Runner(loop_factory=LOOPS[request.param]) as r:
            r.run(asyncio.wait_for(main(), timeout=30))

    return runner


async def next_event(stream: RtpStream, kind: type[Any], within: float = 5.0) -> Any:
    """The next event of ``kind`` (others are dropped), within ``within`` seconds."""
    async with asyncio.timeout(within):
        while True:
            event = await stream.events.get()
            if isinstance(event, kind):
                return event


def record(stream: RtpStream) -> list[bytes]:
    """Keep a copy of every RTP datagram the stream receives."""
    recorded: list[bytes] = []
    receive = stream.session.receive_rtp

    def tap(data: bytes, addr: tuple[str, int], now: float) -> None:
        recorded.append(data)
        receive(data, addr, now)

    stream.session.receive_rtp = tap  # type: ignore[method-assign]
    return recorded


async def pair(
    engine: MediaEngine, a_player: Player, te: int | None = 101
) -> tuple[RtpStream, RtpStream]:
    a = await engine.open_stream("call-a")
    b = await engine.open_stream("call-b")
    a.start(
        remote=("127.0.0.1", b.local_port),
        payload_type=0,
        codec="PCMU",
        telephone_event_pt=te,
        player=a_player,
    )
    b.start(
        remote=("127.0.0.1", a.local_port),
        payload_type=0,
        codec="PCMU",
        telephone_event_pt=te,
        player=Player("PCMU"),
    )
    return a, b


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> Prompt:
    work = tmp_path_factory.mktemp("tts")
    return prompt_from_text("This call is recorded. Press nine to object.", "en", work)


def test_recording_of_a_stream_decodes_back_to_the_prompt(
    run: Callable[[Callable[[], Awaitable[None]]], None], spoken: Prompt
) -> None:
    async def main() -> None:
        engine = MediaEngine(host="127.0.0.1", port_min=0, port_max=0, rng=random.Random(1))
        a, b = await pair(engine, Player("PCMU", [Segment("message", spoken)]))
        recorded = record(b)
        ended = await next_event(a, SegmentEnded, within=spoken.duration + 5)
        assert ended.name == "message" and ended.completed
        assert ended.media_time == pytest.approx(spoken.frame_count * 0.02)
        bye = goodbye_of(b)
        await a.close()
        async with asyncio.timeout(5):
            await bye
        packets = [RtpPacket.parse(d) for d in recorded]
        first = min(
            packets, key=lambda p: (p.sequence_number - packets[0].sequence_number) & 0xFFFF
        )
        assert first.marker
        # Each payload goes where its timestamp says: a frame skipped by a late wake-up of a
        # loaded machine stays a gap instead of shifting what follows.
        audio = np.zeros(spoken.frame_count * 160 + 1600, dtype=np.int16)
        for p in packets:
            at = (p.timestamp - first.timestamp) & 0xFFFFFFFF
            if at + len(p.payload) <= audio.size:
                audio[at : at + len(p.payload)] = g711.ulaw_decode(p.payload)
        got = audio[: spoken.samples.size].astype(np.float64)
        ref = spoken.samples.astype(np.float64)
        ncc = float(np.dot(got, ref) / np.sqrt(np.dot(got, got) * np.dot(ref, ref)))
        assert ncc >= 0.99
        assert b.stats.packets_received == a.stats.packets_sent
        await engine.close()

    run(main)


def goodbye_of(stream: RtpStream) -> asyncio.Future[None]:
    """Resolves when ``stream`` receives the far end's RTCP BYE."""
    done = asyncio.get_running_loop().create_future()
    receive = stream.session.receive_rtcp

    def tap(data: bytes, addr: tuple[str, int], now: float) -> None:
        receive(data, addr, now)
        if any(isinstance(p, Goodbye) for p in parse_compound(data)) and not done.done():
            done.set_result(None)

    stream.session.receive_rtcp = tap  # type: ignore[method-assign]
    return done


def test_rfc4733_and_inband_presses_are_detected_end_to_end(
    run: Callable[[Callable[[], Awaitable[None]]], None],
) -> None:
    async def main() -> None:
        engine = MediaEngine(host="127.0.0.1", port_min=0, port_max=0, rng=random.Random(2))
        a, b = await pair(engine, Player("PCMU", [Segment("tone", dtmf_prompt("9"))]))
        inband = await next_event(b, DtmfReceived)
        assert (inband.digit, inband.how) == ("9", "inband")
        assert inband.media_time == pytest.approx(0.1, abs=0.03)
        a.send_dtmf("5", duration=0.1)
        event = await next_event(b, DtmfReceived)
        assert (event.digit, event.how) == ("5", "rfc4733")
        b.send_dtmf("#")  # the other way too
        event = await next_event(a, DtmfReceived)
        assert (event.digit, event.how) == ("#", "rfc4733")
        b.info_received("application/dtmf-relay", "Signal=1\r\nDuration=100\r\n")
        event = await next_event(b, DtmfReceived)
        assert (event.digit, event.how) == ("1", "info")
        await engine.close()

    run(main)


def _free_even_range(size: int) -> int:
    """A base port whose next ``size`` ports are free now."""
    rng = random.Random()
    for _ in range(100):
        base = 2 * rng.randrange(20000, 30000)
        socks = []
        try:
            for port in range(base, base + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


def test_ports_come_in_even_odd_pairs_from_the_range_and_are_given_back(
    run: Callable[[Callable[[], Awaitable[None]]], None],
) -> None:
    async def main() -> None:
        base = _free_even_range(8)
        blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        blocker.bind(("127.0.0.1", base + 3))  # the RTCP port of the second pair is taken
        try:
            engine = MediaEngine(
                host="127.0.0.1", port_min=base, port_max=base + 6, rng=random.Random(3)
            )
            streams = [await engine.open_stream() for _ in range(3)]
            ports = sorted(s.local_port for s in streams)
            assert ports == [base, base + 4, base + 6]
            with pytest.raises(OSError, match="no free RTP port pair"):
                await engine.open_stream()
            await streams[1].close()
            again = await engine.open_stream()
            assert again.local_port == streams[1].local_port
            # The RTCP socket is really bound on the port above.
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with pytest.raises(OSError):
                probe.bind(("127.0.0.1", again.local_port + 1))
            probe.close()
            await engine.close()
            assert engine.streams == 0
        finally:
            blocker.close()

    run(main)


def test_latching_sends_to_where_the_packets_come_from(
    run: Callable[[Callable[[], Awaitable[None]]], None],
) -> None:
    async def main() -> None:
        engine = MediaEngine(host="127.0.0.1", port_min=0, port_max=0, rng=random.Random(4))
        a = await engine.open_stream()
        b = await engine.open_stream()
        a.start(
            remote=("127.0.0.1", b.local_port),
            payload_type=0,
            codec="PCMU",
            telephone_event_pt=101,
            player=Player("PCMU"),
        )
        # b was told a wrong address (what a NAT'd far end's SDP often says).
        b.start(
            remote=("127.0.0.1", 9),
            payload_type=0,
            codec="PCMU",
            telephone_event_pt=101,
            player=Player("PCMU"),
        )
        b.send_dtmf("3")
        event = await next_event(a, DtmfReceived)
        assert event.digit == "3"
        assert b.session.remote == ("127.0.0.1", a.local_port)
        await engine.close()

    run(main)


def test_hold_and_resume(run: Callable[[Callable[[], Awaitable[None]]], None]) -> None:
    async def main() -> None:
        engine = MediaEngine(host="127.0.0.1", port_min=0, port_max=0, rng=random.Random(5))
        a, b = await pair(engine, Player("PCMU"))
        recorded = record(b)
        a.hold()
        held_at = a.stats.packets_sent
        b.send_dtmf("1", duration=0.1)  # observe time passing through b's own events
        await next_event(a, DtmfReceived)
        assert a.stats.packets_sent == held_at
        a.resume()
        a.send_dtmf("2", duration=0.05)
        await next_event(b, DtmfReceived)
        assert any(RtpPacket.parse(d).marker for d in recorded)
        await engine.close()

    run(main)


# --- the engine's clock on a fake loop ------------------------------------------------------


class FakeTransport:
    def __init__(self, port: int, sent: list[tuple[float, bytes]], loop: FakeLoop) -> None:
        self.port, self.sent, self.loop = port, sent, loop

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", self.port) if name == "sockname" else None

    def sendto(self, data: bytes, addr: Any) -> None:
        self.sent.append((self.loop.now, data))

    def close(self) -> None:
        pass

    def get_protocol(self) -> None:
        return None


class FakeLoop:
    """time(), call_at() and create_datagram_endpoint(): all the engine asks of a loop."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self.sent: dict[int, list[tuple[float, bytes]]] = {}
        self._ports = iter(range(40000, 50000, 1))
        self._seq = 0

    def time(self) -> float:
        return self.now

    def create_future(self) -> asyncio.Future[None]:
        return asyncio.get_running_loop().create_future()

    def call_at(self, when: float, callback: Callable[[], None]) -> Any:
        self._seq += 1
        entry = (when, self._seq, callback)
        heapq.heappush(self.timers, entry)
        loop = self

        class Handle:
            def cancel(self) -> None:
                loop.timers.remove(entry)
                heapq.heapify(loop.timers)

        return Handle()

    async def create_datagram_endpoint(self, factory: Any, local_addr: Any) -> Any:
        port = local_addr[1] or next(self._ports)
        self.sent[port] = []
        return FakeTransport(port, self.sent[port], self), factory()


@pytest.mark.parametrize(
    ("phases", "seconds", "catch_up"), [(1, 3600.0, 5), (10, 120.0, 5), (1, 600.0, 1)]
)
def test_engine_clock_on_a_fake_loop_no_drift_and_no_bursts(
    phases: int, seconds: float, catch_up: int
) -> None:
    """An hour of simulated time with one slot per period; two minutes with ten; ten minutes
    with every late frame skipped (``catch_up=1``)."""
    loop = FakeLoop(now=5000.0)
    rng = random.Random(6)

    async def open_two() -> tuple[RtpStream, RtpStream]:
        engine = MediaEngine(
            host="127.0.0.1",
            port_min=0,
            port_max=0,
            rng=rng,
            loop=loop,  # type: ignore[arg-type]
            inband=False,
            phases=phases,
            catch_up=catch_up,
        )
        a = await engine.open_stream()
        b = await engine.open_stream()
        for s, other in ((a, b), (b, a)):
            s.start(
                remote=("127.0.0.1", other.local_port),
                payload_type=0,
                codec="PCMU",
                telephone_event_pt=None,
                player=Player("PCMU"),
            )
        return a, b

    a, b = asyncio.run(open_two())
    end = a.session.origin + seconds
    if phases == 1:
        assert b.session.origin == a.session.origin  # both on the same grid
    else:
        assert b.session.origin - a.session.origin == pytest.approx(0.02 / phases)
    stalls = 0
    wakes = 0
    after_stall: dict[int, set[int]] = {port: set() for port in loop.sent}
    while loop.timers and loop.timers[0][0] < end:
        when, _, callback = heapq.heappop(loop.timers)
        wakes += 1
        lateness = rng.uniform(0.0, 0.012 / phases)
        stall = wakes % 5000 == 0  # now and then the process stalls for 70 ms
        if stall:
            lateness = 0.07
            stalls += 1
        loop.now = when + lateness
        before = {port: len(sent) for port, sent in loop.sent.items()}
        callback()
        for port, sent in loop.sent.items():
            # One frame per stream per wake-up on time; after a stall, the missed frames at
            # once, never more than catch_up.
            assert len(sent) - before[port] <= (catch_up if stall else 1)
            if stall:
                after_stall[port].update(range(before[port], len(sent)))
    assert stalls > 0
    for stream in (a, b):
        sent = loop.sent[stream.local_port]
        packets = [RtpPacket.parse(d) for _, d in sent]
        sender = stream.session.sender
        origin = stream.session.origin
        frames = []
        on_time = 0.0121 if phases == 1 else 0.0201
        for i, ((at, _), packet) in enumerate(zip(sent, packets, strict=True)):
            # The timestamp is the frame's place on the stream's absolute 20 ms grid: each
            # packet leaves within a wake-up's lateness of that place, after an hour as after a
            # second (no drift); after a stall, the frames missed leave at the stall's end.
            frame = round(((packet.timestamp - sender.timestamp0) & 0xFFFFFFFF) / 160)
            frames.append(frame)
            late = 0.07 + 0.02 * catch_up if i in after_stall[stream.local_port] else on_time
            assert -1e-9 <= at - (origin + frame * 0.02) <= late
        seqs = [p.sequence_number for p in packets]
        assert all((y - x) & 0xFFFF == 1 for x, y in itertools.pairwise(seqs))
        # Every frame of the period was sent or counted as skipped, none twice.
        assert frames == sorted(set(frames))
        assert len(packets) + stream.stats.frames_skipped == frames[-1] + 1
        if catch_up == 1 and phases == 1:  # 70 ms late: 3 frames skipped, one sent
            assert len(packets) == 30_000 - 3 * stalls
            assert stream.stats.frames_skipped == 3 * stalls
        elif catch_up == 5:  # the 3 frames missed go with the one due: the audio is whole
            assert frames == list(range(len(frames)))
            assert stream.stats.frames_skipped == 0
    assert loop.timers[0][0] == pytest.approx(end, abs=0.02)


def test_a_failing_stream_does_not_stop_the_clock_of_the_others(
    run: Callable[[Callable[[], Awaitable[None]]], None], caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        engine = MediaEngine(host="127.0.0.1", port_min=0, port_max=0, rng=random.Random(7))
        a, b = await pair(engine, Player("PCMU"))
        broken = await engine.open_stream("broken-call")
        broken.start(
            remote=("127.0.0.1", 9),
            payload_type=0,
            codec="PCMU",
            telephone_event_pt=None,
            player=Player("PCMU"),
        )

        def fail(n: int) -> bytes | None:
            raise RuntimeError("bug")

        broken.session.frame = fail  # type: ignore[method-assign]
        # a keeps playing to its end, b keeps hearing it, while broken fails at every frame
        a.player.enqueue(Segment("tone", dtmf_prompt("6")))
        event = await next_event(b, DtmfReceived)
        assert (event.digit, event.how) == ("6", "inband")
        await next_event(a, SegmentEnded)
        await engine.close()

    run(main)
    assert caplog.text.count("broken-call: frame") > 5
