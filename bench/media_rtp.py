"""Benchmark of the media layer: RTP packets, the shared send clock, DTMF detection, prompts.

- ``rtp_parse_per_s``, ``rtp_serialise_per_s``, ``rtp_sender_per_s``: packets per second on one
  core (:class:`RtpPacket` parse and ``bytes``; :meth:`RtpSender.next_packet`, the hot path).
- ``pace_<N>_*``: N streams paced by one :class:`MediaEngine` on uvloop (20 phases a period),
  sending PCMU to a loopback sink for a few seconds: wake-up lateness p99 (uvloop's timers
  have a 1 ms grain), duration of a wake-up p99, and the lateness of the last packet of a
  wake-up p99 (wake-up lateness + its duration), CPU share.
  ``pace_max_streams_p99_under_2ms`` is the largest N tried whose last-packet p99 < 2 ms.
- ``twoway_1000_cpu_share``: 500 pairs of streams (1,000 streams, each sending and receiving),
  with RFC 4733 and in-band detection running: process CPU time over wall time.
- ``inband_rtf_one_stream`` (audio seconds per CPU second, one stream at a time) and
  ``inband_us_per_stream_second_batched`` (1,000 streams in one batch).
- ``prompt_conversion_x_realtime``: a 60 s 44.1 kHz stereo WAV to 8 kHz frames.

Run: ``python -m bench.media_rtp`` (prints JSON).
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import uvloop

from gateway.media.inband import ToneDetector
from gateway.media.player import Player
from gateway.media.prompts import load_prompt
from gateway.media.rtp import RtpPacket, RtpSender
from gateway.media.transport import MediaEngine


def _rate(fn: object, seconds: float) -> float:
    call = fn  # a zero-argument callable
    assert callable(call)
    count = 0
    start = time.perf_counter()
    end = start + seconds
    while True:
        for _ in range(1000):
            call()
        count += 1000
        now = time.perf_counter()
        if now >= end:
            return count / (now - start)


def _rtp(seconds: float) -> dict[str, float]:
    packet = RtpPacket(0, 1234, 567890, 0x12345678, b"\xff" * 160, marker=True)
    data = bytes(packet)
    sender = RtpSender(random.Random(1))
    payload = b"\xff" * 160
    return {
        "rtp_parse_per_s": _rate(lambda: RtpPacket.parse(data), seconds),
        "rtp_serialise_per_s": _rate(lambda: bytes(packet), seconds),
        "rtp_sender_per_s": _rate(lambda: sender.next_packet(0, payload, 160), seconds),
    }


def _p99(values: list[float]) -> float:
    return float(np.percentile(values, 99)) * 1000 if values else float("nan")


async def _pace(streams: int, seconds: float) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))  # never read: the kernel drops what overflows
    target = sink.getsockname()
    engine = MediaEngine(
        host="127.0.0.1", port_min=0, port_max=0, rng=random.Random(1), loop=loop, inband=False
    )
    opened = [await engine.open_stream() for _ in range(streams)]
    durations: list[float] = []
    tick = engine._tick

    def timed_tick() -> None:
        t0 = time.perf_counter()
        tick()
        durations.append(time.perf_counter() - t0)

    engine._tick = timed_tick  # type: ignore[method-assign]
    for s in opened:
        s.start(
            remote=target,
            payload_type=0,
            codec="PCMU",
            telephone_event_pt=None,
            player=Player("PCMU"),
        )
    await asyncio.sleep(0.5)  # warm-up
    engine.lateness.clear()
    durations.clear()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    lateness = list(engine.lateness)
    last = [a + b for a, b in zip(lateness, durations, strict=False)]
    await engine.close()
    sink.close()
    return {
        f"pace_{streams}_wake_lateness_p99_ms": _p99(lateness),
        f"pace_{streams}_tick_duration_p99_ms": _p99(durations),
        f"pace_{streams}_last_packet_lateness_p99_ms": _p99(last),
        f"pace_{streams}_cpu_share": cpu,
    }


async def _twoway(pairs: int, seconds: float) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    engine = MediaEngine(host="127.0.0.1", port_min=0, port_max=0, rng=random.Random(2), loop=loop)
    streams = [await engine.open_stream() for _ in range(2 * pairs)]
    for a, b in zip(streams[::2], streams[1::2], strict=True):
        for s, other in ((a, b), (b, a)):
            s.start(
                remote=("127.0.0.1", other.local_port),
                payload_type=0,
                codec="PCMU",
                telephone_event_pt=101,
                player=Player("PCMU"),
            )
    await asyncio.sleep(0.5)
    received0 = sum(s.session.stats.packets_received for s in streams)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i, s in enumerate(streams):
        if i % 10 == 0:
            s.send_dtmf("9")
    await asyncio.sleep(seconds)
    wall = time.perf_counter() - wall0
    cpu = (time.process_time() - cpu0) / wall
    received = sum(s.session.stats.packets_received for s in streams) - received0
    presses = sum(s.events.qsize() for s in streams)
    await engine.close()
    return {
        "twoway_1000_cpu_share": cpu,
        "twoway_1000_packets_received_per_s": received / wall,
        "twoway_1000_presses_detected": float(presses),
    }


def _inband(seconds: float) -> dict[str, float]:
    rng = np.random.default_rng(1)
    audio = rng.normal(0, 3000, 8000 * 20)
    detector = ToneDetector()
    t0 = time.process_time()
    for i in range(0, audio.size, 800):  # 100 ms blocks, as the engine feeds them
        detector.feed(audio[i : i + 800])
    one = audio.size / 8000 / (time.process_time() - t0)
    streams = 1000
    bank = ToneDetector(streams)
    block = rng.normal(0, 3000, (streams, 800))
    rows = np.arange(streams)
    blocks = 0
    t0 = time.process_time()
    while time.process_time() - t0 < seconds:
        bank.feed_rows(rows, block)
        blocks += 1
    spent = time.process_time() - t0
    return {
        "inband_rtf_one_stream": one,
        "inband_us_per_stream_second_batched": spent / (blocks * streams * 0.1) * 1e6,
    }


def _prompt() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.wav"
        t = np.arange(44100 * 60) / 44100
        x = 0.3 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 0.5 * t)) / 2
        soundfile.write(path, np.stack([x, x], axis=1), 44100, subtype="PCM_16")
        t0 = time.perf_counter()
        prompt = load_prompt(path)
        prompt.encoded("PCMU")
        prompt.encoded("PCMA")
        return {"prompt_conversion_x_realtime": 60.0 / (time.perf_counter() - t0)}


def run(seconds: float = 2.0) -> dict[str, float]:
    """All media figures; about 30 s."""
    results = _rtp(seconds / 4)
    best = 0
    for streams in (1000, 2000, 3000, 4000):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            figures = runner.run(_pace(streams, seconds))
        results.update(figures)
        if figures[f"pace_{streams}_last_packet_lateness_p99_ms"] < 2.0:
            best = streams
    results["pace_max_streams_p99_under_2ms"] = float(best)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        results.update(runner.run(_twoway(500, seconds * 2)))
    results.update(_inband(seconds))
    results.update(_prompt())
    return results


if __name__ == "__main__":
    print(json.dumps(run()))
