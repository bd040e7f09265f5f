"""RTP packets and counter arithmetic (RFC 3550 section 5), on real captures and made-up edges."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.media.rtp import RtpPacket, RtpSender, is_rtcp, seq_add, seq_diff, ts_add, ts_diff

from .pcaps import SIPP_PCAPS, udp_payloads


def test_parses_and_reserialises_every_packet_of_a_g711_capture_byte_for_byte() -> None:
    datagrams = [p for _, _, p in udp_payloads(SIPP_PCAPS / "g711a.pcap")]
    assert len(datagrams) > 200
    packets = [RtpPacket.parse(d) for d in datagrams]
    assert [bytes(p) for p in packets] == datagrams
    first = packets[0]
    assert (first.payload_type, first.sequence_number, first.timestamp, first.ssrc) == (
        8,
        59133,
        240,
        0xDEE0EE8F,
    )
    assert first.marker and not packets[1].marker
    assert len(first.payload) == 240
    assert all(
        seq_diff(b.sequence_number, a.sequence_number) == 1 for a, b in itertools.pairwise(packets)
    )


def test_parses_a_telephone_event_capture() -> None:
    datagrams = [p for _, _, p in udp_payloads(SIPP_PCAPS / "dtmf_2833_1.pcap")]
    packets = [RtpPacket.parse(d) for d in datagrams]
    assert [bytes(p) for p in packets] == datagrams
    assert {p.payload_type for p in packets} == {101}
    assert {p.timestamp for p in packets} == {13280}
    assert [p.marker for p in packets[:2]] == [True, False]
    assert packets[0].payload[0] == 1  # event 1 (RFC 4733 section 3.2)


def test_round_trips_csrc_extension_and_padding() -> None:
    packet = RtpPacket(
        payload_type=0,
        sequence_number=65535,
        timestamp=0xFFFFFFFF,
        ssrc=0x12345678,
        payload=b"\xff" * 160,
        marker=True,
        csrc=(1, 2, 0xFFFFFFFF),
        extension_profile=0xBEDE,
        extension=b"\x10\xaa\x00\x00",
        padding_size=4,
    )
    data = bytes(packet)
    assert len(data) == 12 + 12 + 4 + 4 + 160 + 4
    assert data[0] == 0x80 | 0x20 | 0x10 | 3
    assert data[-1] == 4
    assert RtpPacket.parse(data) == packet


@given(
    pt=st.integers(0, 127),
    seq=st.integers(0, 0xFFFF),
    ts=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=300),
    marker=st.booleans(),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15),
    ext=st.one_of(st.none(), st.tuples(st.integers(0, 0xFFFF), st.integers(0, 4))),
    padding=st.integers(0, 255),
)
def test_any_packet_round_trips(  # noqa: PLR0917 (one argument per drawn field)
    pt: int,
    seq: int,
    ts: int,
    ssrc: int,
    payload: bytes,
    marker: bool,
    csrc: list[int],
    ext: tuple[int, int] | None,
    padding: int,
) -> None:
    packet = RtpPacket(
        pt,
        seq,
        ts,
        ssrc,
        payload,
        marker,
        tuple(csrc),
        None if ext is None else ext[0],
        b"" if ext is None else bytes(range(4 * ext[1])),
        padding,
    )
    assert RtpPacket.parse(bytes(packet)) == packet


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\x00\x00", "too short"),
        (b"\x40" + bytes(11), "version 1"),
        (b"\x82" + bytes(11) + bytes(4), "CSRC"),
        (b"\x90" + bytes(11) + b"\xbe", "extension header"),
        (b"\x90" + bytes(11) + b"\xbe\xde\x00\x02" + bytes(4), "overruns"),
        (b"\xa0" + bytes(11) + b"\x00", "padding count 0"),
        (b"\xa0" + bytes(11) + b"\x01\x02\x09", "padding count 9"),
    ],
)
def test_malformed_packets_raise_a_precise_value_error(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RtpPacket.parse(data)


def test_parse_then_bytes_with_trailing_data_keeps_it_as_payload() -> None:
    packet = RtpPacket(0, 1, 2, 3, b"abc")
    assert RtpPacket.parse(bytes(packet) + b"xyz").payload == b"abcxyz"


def test_invalid_fields_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="payload type"):
        RtpPacket(128, 0, 0, 0)
    with pytest.raises(ValueError, match="15 CSRCs"):
        RtpPacket(0, 0, 0, 0, csrc=tuple(range(16)))
    with pytest.raises(ValueError, match="32-bit words"):
        RtpPacket(0, 0, 0, 0, extension_profile=1, extension=b"abc")


def test_sequence_arithmetic_wraps_around() -> None:
    assert seq_add(65535, 1) == 0
    assert seq_add(65530, 10) == 4
    assert seq_diff(0, 65535) == 1
    assert seq_diff(65535, 0) == -1
    assert seq_diff(4, 65530) == 10
    assert seq_diff(100, 100) == 0
    assert seq_diff(32767, 0) == 32767
    assert seq_diff(32768, 0) == -32768


def test_timestamp_arithmetic_wraps_around() -> None:
    assert ts_add(0xFFFFFFFF, 160) == 159
    assert ts_diff(159, 0xFFFFFFFF) == 160
    assert ts_diff(0xFFFFFFFF, 159) == -160


@given(st.integers(0, 0xFFFF), st.integers(-32768, 32767))
def test_seq_diff_inverts_seq_add(seq: int, n: int) -> None:
    assert seq_diff(seq_add(seq, n), seq) == n


def test_sender_draws_identifiers_from_the_rng_and_numbers_across_the_wrap() -> None:
    rng = random.Random(7)
    expected = random.Random(7)
    sender = RtpSender(rng)
    assert sender.ssrc == expected.getrandbits(32)
    assert sender.sequence_number == expected.getrandbits(16)
    assert sender.timestamp0 == expected.getrandbits(32)
    sender.sequence_number = 65535
    first = RtpPacket.parse(sender.next_packet(0, b"\xff" * 160, 0, marker=True))
    second = RtpPacket.parse(sender.next_packet(0, b"\xff" * 160, 160))
    assert (first.sequence_number, second.sequence_number) == (65535, 0)
    assert first.marker and not second.marker
    assert ts_diff(second.timestamp, first.timestamp) == 160
    assert (sender.packet_count, sender.octet_count) == (2, 320)
    assert RtpSender(random.Random(7)).ssrc == sender.ssrc  # reproducible


def test_rtcp_is_told_from_rtp_by_the_packet_type_octet() -> None:
    assert is_rtcp(b"\x81\xc8\x00\x06")  # SR
    assert is_rtcp(b"\x81\xcb\x00\x01")  # BYE
    assert not is_rtcp(bytes(RtpPacket(0, 0, 0, 0)))
    assert not is_rtcp(bytes(RtpPacket(101, 0, 0, 0, marker=True)))
