"""RFC 4733 telephone-events and SIP INFO bodies, each to one report per key press."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.media.dtmf import (
    TelephoneEvent,
    TelephoneEventReceiver,
    dtmf_from_info,
    telephone_event_payloads,
)
from gateway.media.events import DtmfReceived
from gateway.media.rtp import RtpPacket

from .pcaps import PEER_PCAPS, SIPP_PCAPS, udp_payloads


def _packets(
    digit: str, ssrc: int, timestamp: int, seq: int, duration: float = 0.1
) -> list[RtpPacket]:
    return [
        RtpPacket(101, (seq + i) & 0xFFFF, timestamp, ssrc, payload, marker)
        for i, (payload, marker) in enumerate(telephone_event_payloads(digit, duration))
    ]


def _digits(receiver: TelephoneEventReceiver, packets: list[RtpPacket]) -> list[str]:
    out = []
    for i, packet in enumerate(packets):
        event = receiver.receive(packet, media_time=0.02 * i)
        if event is not None:
            assert event.how == "rfc4733"
            out.append(event.digit)
    return out


def test_telephone_event_round_trips() -> None:
    event = TelephoneEvent(11, end=True, volume=7, duration=1280)
    assert bytes(event) == b"\x0b\x87\x05\x00"
    assert TelephoneEvent.parse(bytes(event)) == event
    assert event.digit == "#"
    assert TelephoneEvent(16).digit is None  # flash: not a key
    with pytest.raises(ValueError, match="3 bytes"):
        TelephoneEvent.parse(b"\x01\x02\x03")


def test_payloads_of_one_press_follow_section_2_5_1() -> None:
    payloads = telephone_event_payloads("5", duration=0.1)
    events = [TelephoneEvent.parse(p) for p, _ in payloads]
    assert [m for _, m in payloads] == [True] + [False] * (len(payloads) - 1)
    assert [e.duration for e in events] == [0, 160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events] == [False] * 5 + [True] * 3
    assert {e.event for e in events} == {5}


@pytest.mark.parametrize("name", [f"dtmf_2833_{d}.pcap" for d in "0123456789"])
def test_each_debian_capture_is_one_press_of_its_digit(name: str) -> None:
    packets = [RtpPacket.parse(p) for _, _, p in udp_payloads(SIPP_PCAPS / name)]
    assert _digits(TelephoneEventReceiver(), packets) == [name[-6]]


def test_star_and_pound_captures() -> None:
    for name, digit in (("dtmf_2833_star.pcap", "*"), ("dtmf_2833_pound.pcap", "#")):
        packets = [RtpPacket.parse(p) for _, _, p in udp_payloads(SIPP_PCAPS / name)]
        assert _digits(TelephoneEventReceiver(), packets) == [digit]


def test_peer_captures_with_several_digits_and_a_new_ssrc() -> None:
    receiver = TelephoneEventReceiver()
    first = [RtpPacket.parse(p) for _, _, p in udp_payloads(PEER_PCAPS / "dtmf_123_pt101.pcap")]
    second = [RtpPacket.parse(p) for _, _, p in udp_payloads(PEER_PCAPS / "dtmf_9_pt101.pcap")]
    assert first[0].ssrc != second[0].ssrc
    assert _digits(receiver, first + second) == ["1", "2", "3", "9"]


def test_lost_start_and_lost_end_packets_still_give_one_report() -> None:
    receiver = TelephoneEventReceiver()
    a = _packets("1", ssrc=9, timestamp=1000, seq=1)
    b = _packets("2", ssrc=9, timestamp=3000, seq=20)
    c = _packets("3", ssrc=9, timestamp=5000, seq=40)
    # a: start lost; b: all but the end packets lost; c: all end packets lost
    assert _digits(receiver, a[1:] + b[-3:] + c[:-3]) == ["1", "2", "3"]


def test_duplicates_and_reordering_give_one_report_per_press() -> None:
    receiver = TelephoneEventReceiver()
    a = _packets("7", ssrc=9, timestamp=1000, seq=1)
    b = _packets("7", ssrc=9, timestamp=2600, seq=10)  # same key pressed again: new timestamp
    stream = a + a[:3] + [b[2], b[0], b[1]] + b[3:] + b + a[-1:]
    assert _digits(receiver, stream) == ["7", "7"]


def test_same_timestamp_from_a_new_ssrc_is_a_new_press() -> None:
    receiver = TelephoneEventReceiver()
    a = _packets("4", ssrc=1, timestamp=500, seq=1)
    b = _packets("4", ssrc=2, timestamp=500, seq=1)
    assert _digits(receiver, a + b) == ["4", "4"]


def test_a_long_event_cut_into_segments_is_one_press() -> None:
    # RFC 4733 section 2.5.1.3: after 0xFFFF units the sender starts a new segment whose
    # timestamp is the old one plus the old duration.
    receiver = TelephoneEventReceiver()
    seg1 = RtpPacket(101, 1, 1000, 5, bytes(TelephoneEvent(0, False, 10, 0xFFFF)))
    seg2 = RtpPacket(101, 2, 1000 + 0xFFFF, 5, bytes(TelephoneEvent(0, False, 10, 160)))
    end = RtpPacket(101, 3, 1000 + 0xFFFF, 5, bytes(TelephoneEvent(0, True, 10, 800)))
    assert _digits(receiver, [seg1, seg2, end]) == ["0"]


def test_the_press_is_dated_back_by_its_duration() -> None:
    receiver = TelephoneEventReceiver()
    late = RtpPacket(101, 1, 1000, 5, bytes(TelephoneEvent(9, False, 10, 800)))  # start lost
    assert receiver.receive(late, media_time=3.0) == DtmfReceived("9", "rfc4733", 2.9)


def test_non_key_events_and_short_payloads_are_ignored() -> None:
    receiver = TelephoneEventReceiver()
    flash = RtpPacket(101, 1, 1000, 5, bytes(TelephoneEvent(16, False, 10, 160)))
    assert receiver.receive(flash, 0.0) is None
    assert receiver.receive(RtpPacket(101, 2, 2000, 5, b"\x01"), 0.0) is None


@pytest.mark.parametrize(
    ("content_type", "body", "digit"),
    [
        ("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", "5"),
        ("Application/DTMF-Relay; charset=utf-8", b"Signal= *\nDuration= 250", "*"),
        ("application/dtmf-relay", "Signal=11\r\nDuration=100", "#"),
        ("application/dtmf", "9", "9"),
        ("application/dtmf", " d\r\n", "D"),
        ("application/dtmf", "Signal=0", "0"),
    ],
)
def test_info_bodies_give_the_key(content_type: str, body: str | bytes, digit: str) -> None:
    assert dtmf_from_info(content_type, body, 4.5) == DtmfReceived(digit, "info", 4.5)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/sdp", "v=0"),
        ("application/dtmf-relay", "Duration=160"),
        ("application/dtmf-relay", "Signal=12"),
        ("application/dtmf", "99"),
        ("application/dtmf", ""),
    ],
)
def test_info_bodies_without_a_key_give_none(content_type: str, body: str) -> None:
    assert dtmf_from_info(content_type, body, 0.0) is None


@given(
    presses=st.lists(
        st.tuples(st.sampled_from("0123456789*#ABCD"), st.integers(0, 2), st.integers(2, 12)),
        min_size=1,
        max_size=8,
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_sequence_with_loss_duplicates_and_reordering_gives_each_press_once(
    presses: list[tuple[str, int, int]], seed: int
) -> None:
    """Presses (key, SSRC, length in packet times), each keeping at least one packet, with
    random losses, duplicates and swaps of neighbours: one report per press, in order."""
    rng = random.Random(seed)
    stream: list[RtpPacket] = []
    timestamp, seq = rng.getrandbits(32), rng.getrandbits(16)
    for digit, ssrc, length in presses:
        packets = _packets(digit, ssrc, timestamp, seq, duration=0.02 * length)
        kept = [p for p in packets if rng.random() > 0.4] or [rng.choice(packets)]
        kept += [rng.choice(kept) for _ in range(rng.randrange(3))]  # duplicates, late
        for i in range(len(kept) - 1):
            if rng.random() < 0.2:
                kept[i], kept[i + 1] = kept[i + 1], kept[i]
        stream += kept
        timestamp = (timestamp + 160 * (length + 3)) & 0xFFFFFFFF  # the next press, later
        seq = (seq + len(packets)) & 0xFFFF
    assert _digits(TelephoneEventReceiver(), stream) == [d for d, _, _ in presses]
