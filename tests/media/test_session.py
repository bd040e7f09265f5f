"""Two media sessions wired back to back in memory, on a clock the test advances."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import pytest

from gateway.media import g711
from gateway.media.events import DtmfReceived, SegmentEnded, SegmentStarted
from gateway.media.inband import DIGITS, HIGH_GROUP, LOW_GROUP
from gateway.media.player import Player, Segment
from gateway.media.prompts import Prompt
from gateway.media.rtcp import (
    Goodbye,
    ReceiverReport,
    SenderReport,
    SourceDescription,
    parse_compound,
)
from gateway.media.rtp import RtpPacket
from gateway.media.session import MediaSession
from gateway.media.tonebank import ToneBank

A = ("10.0.0.1", 20000)
B = ("10.0.0.2", 30000)


def dtmf_prompt(digit: str, ms: int = 80, lead_ms: int = 100) -> Prompt:
    row = next(i for i, keys in enumerate(DIGITS) if digit in keys)
    col = DIGITS[row].index(digit)
    t = np.arange(8 * ms) / 8000
    x = 7000 * (np.sin(2 * np.pi * LOW_GROUP[row] * t) + np.sin(2 * np.pi * HIGH_GROUP[col] * t))
    samples = np.concatenate([np.zeros(8 * lead_ms), x, np.zeros(8 * lead_ms)]).astype(np.int16)
    return Prompt(f"dtmf{digit}", samples, digest=digit)


def speech_like_prompt(seconds: float = 1.0) -> Prompt:
    rng = np.random.default_rng(5)
    t = np.arange(int(8000 * seconds)) / 8000
    x = 6000 * np.sin(2 * np.pi * (300 + 200 * np.sin(2 * np.pi * 3 * t)) * t) + rng.normal(
        0, 500, t.size
    )
    return Prompt("speech", x.astype(np.int16), digest="speech")


@dataclass
class Pair:
    a: MediaSession
    b: MediaSession
    bank: ToneBank
    now: float = 100.0
    drop: set[int] = field(default_factory=set)  # frame numbers of a whose packets are lost
    received_by_b: list[bytes] = field(default_factory=list)

    def run(self, frames: int) -> None:
        """Advance the shared clock frame by frame; both send, both receive, RTCP included."""
        for _ in range(frames):
            n = round((self.now - self.a.origin) / 0.02)
            for sender, receiver, frame in ((self.a, self.b, n), (self.b, self.a, n)):
                data = sender.frame(frame)
                if data is None or (sender is self.a and frame in self.drop):
                    continue
                if receiver is self.b:
                    self.received_by_b.append(data)
                receiver.receive_rtp(data, A if sender is self.a else B, self.now + 0.001)
            for sender, receiver, addr in ((self.a, self.b, A), (self.b, self.a, B)):
                report = sender.rtcp_due(self.now, wallclock=1.7e9 + self.now)
                if report is not None:
                    receiver.receive_rtcp(report, (addr[0], addr[1] + 1), self.now + 0.002)
            if n % 5 == 0:
                for slot, event in self.bank.run():
                    for s in (self.a, self.b):
                        if s.slot == slot:
                            s.inband_detected(event)
            self.now += 0.02


def make_pair(a_segments: list[Segment], codec: str = "PCMU", te: int | None = 101) -> Pair:
    bank = ToneBank()
    a = MediaSession(rng=random.Random(1), cname="a@test", bank=bank)
    b = MediaSession(rng=random.Random(2), cname="b@test", bank=bank)
    pt = 0 if codec == "PCMU" else 8
    a.start(
        remote=B,
        payload_type=pt,
        codec=codec,
        telephone_event_pt=te,
        player=Player(codec, a_segments),
        origin=100.0,
    )
    b.start(
        remote=A,
        payload_type=pt,
        codec=codec,
        telephone_event_pt=te,
        player=Player(codec),
        origin=100.0,
    )
    return Pair(a, b, bank)


def audio_of(datagrams: list[bytes], codec: str = "PCMU") -> np.ndarray:
    packets = [RtpPacket.parse(d) for d in datagrams]
    return np.concatenate(
        [g711.decode(codec, p.payload) for p in packets if p.payload_type in (0, 8)]
    )


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_b_receives_a_prompt_that_decodes_back_to_it(codec: str) -> None:
    prompt = speech_like_prompt()
    pair = make_pair([Segment("message", prompt)], codec)
    pair.run(60)
    audio = audio_of(pair.received_by_b, codec)[: prompt.samples.size].astype(np.float64)
    ref = prompt.samples.astype(np.float64)
    ncc = float(np.dot(audio, ref) / np.sqrt(np.dot(audio, audio) * np.dot(ref, ref)))
    assert ncc >= 0.99
    events = [e for e in pair.a.events if isinstance(e, SegmentStarted | SegmentEnded)]
    assert events == [SegmentStarted("message", 0.0), SegmentEnded("message", 1.0)]


def test_rtp_headers_marker_ssrc_and_timestamps() -> None:
    pair = make_pair([Segment("m", speech_like_prompt(0.2))])
    pair.run(5)
    packets = [RtpPacket.parse(d) for d in pair.received_by_b]
    assert [p.marker for p in packets] == [True, False, False, False, False]
    assert {p.ssrc for p in packets} == {pair.a.sender.ssrc}
    assert [p.timestamp - packets[0].timestamp for p in packets] == [0, 160, 320, 480, 640]
    assert [p.payload_type for p in packets] == [0] * 5


def test_a_skipped_frame_advances_the_timestamp_not_the_sequence_number() -> None:
    pair = make_pair([Segment("m", speech_like_prompt(0.2))])
    first = RtpPacket.parse(pair.a.frame(0) or b"")
    late = RtpPacket.parse(pair.a.frame(3) or b"")  # frames 1 and 2 skipped by a late wake-up
    assert late.sequence_number == (first.sequence_number + 1) & 0xFFFF
    assert (late.timestamp - first.timestamp) & 0xFFFFFFFF == 480
    assert pair.a.stats.frames_skipped == 2


def test_rfc4733_press_sent_by_a_is_one_event_at_b() -> None:
    pair = make_pair([])
    pair.run(10)
    pair.a.send_dtmf("7", duration=0.12)
    pair.run(20)
    presses = [e for e in pair.b.events if isinstance(e, DtmfReceived)]
    assert presses == [DtmfReceived("7", "rfc4733", pytest.approx(0.2, abs=0.002))]


def test_rfc4733_with_the_start_and_some_packets_lost() -> None:
    pair = make_pair([])
    pair.run(10)
    pair.a.send_dtmf("#", duration=0.1)
    pair.drop = {10, 11, 12}
    pair.run(20)
    presses = [e for e in pair.b.events if isinstance(e, DtmfReceived)]
    assert [(e.digit, e.how) for e in presses] == [("#", "rfc4733")]
    assert presses[0].media_time == pytest.approx(0.2, abs=0.03)


def test_inband_tone_in_a_prompt_is_detected_at_b() -> None:
    pair = make_pair([Segment("tone", dtmf_prompt("9"))], te=None)
    pair.run(40)
    presses = [e for e in pair.b.events if isinstance(e, DtmfReceived)]
    assert [(e.digit, e.how) for e in presses] == [("9", "inband")]
    # The tone starts 100 ms into the prompt; the packet arrived 1 ms after it left.
    assert presses[0].media_time == pytest.approx(0.1, abs=0.015)


def test_a_press_sent_both_ways_is_reported_once() -> None:
    pair = make_pair([Segment("tone", dtmf_prompt("4", ms=100, lead_ms=200))])
    pair.run(10)
    pair.a.send_dtmf("4", duration=0.1)  # RFC 4733 at 0.2 s while the tone plays in the audio
    pair.run(40)
    presses = [e for e in pair.b.events if isinstance(e, DtmfReceived)]
    assert [e.digit for e in presses] == ["4"]


def test_info_body_is_reported_like_the_others() -> None:
    pair = make_pair([])
    pair.b.info_received("application/dtmf-relay", "Signal=9\r\nDuration=160\r\n", now=101.5)
    assert list(pair.b.events) == [DtmfReceived("9", "info", 1.5)]


def test_rtcp_reports_give_far_end_loss_jitter_and_rtt() -> None:
    pair = make_pair([Segment("m", speech_like_prompt(30.0))])
    pair.drop = set(range(100, 110))  # ten of a's packets lost on the way to b
    pair.run(800)  # 16 s: two or more reports each way
    a_stats = pair.a.refresh_stats()
    b_stats = pair.b.refresh_stats()
    assert b_stats.packets_lost == 10
    assert a_stats.far_packets_lost == 10
    assert a_stats.far_jitter_ms is not None and a_stats.far_jitter_ms < 1.0
    assert a_stats.rtt_ms == pytest.approx(4.0, abs=0.1)  # RTCP takes 2 ms each way here
    assert a_stats.rtcp_sent >= 2 and b_stats.rtcp_received >= 2
    assert a_stats.packets_sent == 800
    assert b_stats.packets_received == 790
    assert b_stats.last_received == pytest.approx(pair.now - 0.02 + 0.001)


def test_reports_are_about_5_seconds_apart_and_randomised() -> None:
    pair = make_pair([])
    times = []
    now = 100.0
    while now < 160.0:
        if pair.a.rtcp_due(now, wallclock=now) is not None:
            times.append(now)
        now += 0.5
    gaps = np.diff(times)
    assert min(gaps) >= 2.5 and max(gaps) <= 7.5
    assert 4.0 <= float(np.mean(gaps)) <= 6.0
    assert len(set(np.round(gaps, 1))) > 1


def test_goodbye_is_a_report_sdes_and_bye() -> None:
    pair = make_pair([])
    pair.run(3)
    packets = parse_compound(pair.a.goodbye(200.0, wallclock=1.7e9, reason=b"call ended"))
    assert isinstance(packets[0], SenderReport)
    assert isinstance(packets[1], SourceDescription)
    assert packets[1].cname(pair.a.sender.ssrc) == b"a@test"
    assert packets[2] == Goodbye((pair.a.sender.ssrc,), b"call ended")
    quiet = MediaSession(rng=random.Random(3), cname="q")
    quiet.start(
        remote=B,
        payload_type=0,
        codec="PCMU",
        telephone_event_pt=None,
        player=Player("PCMU"),
        origin=0.0,
    )
    assert isinstance(parse_compound(quiet.goodbye(1.0, 1.0))[0], ReceiverReport)


def test_latching_answers_where_packets_come_from() -> None:
    pair = make_pair([])
    nat = ("203.0.113.9", 41000)
    data = pair.a.frame(0)
    assert data is not None
    pair.b.receive_rtp(data, nat, 100.01)
    assert pair.b.remote == nat
    pair.b.receive_rtp(data, ("203.0.113.10", 1), 100.02)
    assert pair.b.remote == nat  # latched once, not moved by every stray packet
    pair.b.set_remote(("198.51.100.1", 5000))  # re-INVITE: latch again from there
    assert pair.b.rtcp_remote == ("198.51.100.1", 5001)
    pair.b.receive_rtp(data, nat, 100.03)
    assert pair.b.remote == nat
    fixed = MediaSession(rng=random.Random(4), cname="f", latch=False)
    fixed.start(
        remote=A,
        payload_type=0,
        codec="PCMU",
        telephone_event_pt=None,
        player=Player("PCMU"),
        origin=0.0,
    )
    fixed.receive_rtp(data, nat, 1.0)
    assert fixed.remote == A


def test_hold_stops_sending_and_the_player_waits() -> None:
    prompt = speech_like_prompt(0.2)  # 10 frames
    pair = make_pair([Segment("m", prompt)])
    pair.run(4)
    pair.a.hold()
    pair.run(5)
    assert len(pair.received_by_b) == 4
    pair.a.resume()
    pair.run(10)
    packets = [RtpPacket.parse(d) for d in pair.received_by_b]
    assert packets[4].marker  # a new talkspurt after the hold
    audio = audio_of(pair.received_by_b)[: prompt.samples.size]
    np.testing.assert_array_equal(audio, g711.ulaw_decode(prompt.encoded("PCMU")))
    ended = [e for e in pair.a.events if isinstance(e, SegmentEnded)]
    assert ended == [SegmentEnded("m", pytest.approx(0.3))]  # 10 frames + 5 on hold


def test_malformed_datagrams_are_counted_and_ignored() -> None:
    pair = make_pair([])
    pair.b.receive_rtp(b"\x00\x01", A, 100.0)
    pair.b.receive_rtcp(b"\x81\xc9\x00\x09", A, 100.0)
    assert pair.b.stats.malformed == 2
    assert not pair.b.events


def test_start_checks_codec_and_dtmf_needs_a_payload_type() -> None:
    s = MediaSession(rng=random.Random(1), cname="x")
    with pytest.raises(ValueError, match="G729"):
        s.start(
            remote=A,
            payload_type=18,
            codec="G729",
            telephone_event_pt=None,
            player=Player("PCMU"),
            origin=0.0,
        )
    with pytest.raises(ValueError, match="player encodes PCMU"):
        s.start(
            remote=A,
            payload_type=8,
            codec="PCMA",
            telephone_event_pt=None,
            player=Player("PCMU"),
            origin=0.0,
        )
    s.start(
        remote=A,
        payload_type=0,
        codec="PCMU",
        telephone_event_pt=None,
        player=Player("PCMU"),
        origin=0.0,
    )
    with pytest.raises(ValueError, match="telephone-event"):
        s.send_dtmf("1")


def test_packets_before_start_are_ignored() -> None:
    early = MediaSession(rng=random.Random(9), cname="e", bank=ToneBank())
    pair = make_pair([])
    data = pair.a.frame(0)
    assert data is not None
    early.receive_rtp(data, A, 5.0)
    assert early.remote is None
    assert early.stats.packets_received == 0


def test_frames_skipped_while_on_hold_do_not_skip_audio() -> None:
    prompt = speech_like_prompt(0.2)  # 10 frames
    pair = make_pair([Segment("m", prompt)])
    sent = [pair.a.frame(n) for n in range(3)]
    pair.a.hold()
    assert pair.a.frame(4) is None  # frame 3 skipped by a late wake-up, then on hold
    pair.a.resume()
    sent += [pair.a.frame(n) for n in range(5, 12)]
    payloads = [RtpPacket.parse(d).payload for d in sent if d is not None]
    assert b"".join(payloads) == prompt.encoded("PCMU")
    assert pair.a.stats.frames_skipped == 1
