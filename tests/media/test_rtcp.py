"""RTCP packets (RFC 3550 section 6) and reception statistics (appendices A.1, A.3, A.8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.media.rtcp import (
    Goodbye,
    ReceiverReport,
    ReceptionStats,
    ReportBlock,
    SenderReport,
    SourceDescription,
    ntp_timestamp,
    parse_compound,
)

# A compound SR + SDES(CNAME) + BYE, written octet by octet from the layouts of section 6.
SR_SDES_BYE = bytes.fromhex(
    # SR: V=2 RC=1 PT=200 length=12 words
    "81c8000c"
    "11223344"  # sender SSRC
    "e8d4a510"
    "80000000"  # NTP timestamp: msw, lsw (0.5 s)
    "0000a000"  # RTP timestamp 40960
    "000000fa"  # packet count 250
    "00009c40"  # octet count 40000
    # report block
    "55667788"  # source SSRC
    "40"  # fraction lost 64/256
    "fffffe"  # cumulative lost -2 (24-bit signed)
    "00010005"  # extended highest sequence: 1 cycle, seq 5
    "00000020"  # jitter 32
    "a5108000"  # LSR
    "00018000"  # DLSR 1.5 s
    # SDES: V=2 SC=1 PT=202 length=5 words
    "81ca0005"
    "11223344"
    "010b" + b"gw@10.0.0.1".hex() + "00"  # CNAME item, end of list
    "0000"  # padding to the 32-bit boundary
    # BYE: V=2 SC=1 PT=203, with reason "bye"
    "81cb0002"
    "11223344"
    "03" + b"bye".hex()
)


def test_parses_a_compound_sender_report_sdes_and_bye() -> None:
    sr, sdes, bye = parse_compound(SR_SDES_BYE)
    assert sr == SenderReport(
        ssrc=0x11223344,
        ntp_timestamp=(0xE8D4A510 << 32) | 0x80000000,
        rtp_timestamp=40960,
        packet_count=250,
        octet_count=40000,
        reports=(
            ReportBlock(
                ssrc=0x55667788,
                fraction_lost=64,
                packets_lost=-2,
                highest_sequence=0x10005,
                jitter=32,
                lsr=0xA5108000,
                dlsr=0x18000,
            ),
        ),
    )
    assert isinstance(sdes, SourceDescription)
    assert sdes.cname(0x11223344) == b"gw@10.0.0.1"
    assert sdes.cname(1) is None
    assert bye == Goodbye((0x11223344,), b"bye")


def test_compound_round_trips_byte_for_byte() -> None:
    packets = parse_compound(SR_SDES_BYE)
    assert b"".join(bytes(p) for p in packets) == SR_SDES_BYE


@pytest.mark.parametrize(
    "packet",
    [
        ReceiverReport(1, ()),
        ReceiverReport(2, (ReportBlock(3, 0, 8388607, 0xFFFFFFFF, 7, 1, 2),)),
        SourceDescription(((5, ((1, b"a"), (2, b"name"))), (6, ((1, b"abcd"),)))),
        Goodbye((1, 2, 3)),
        Goodbye((), b"x" * 10),
        SenderReport(9, ntp_timestamp(1.7e9), 123, 4, 5, ()),
    ],
)
def test_each_packet_type_round_trips(packet: object) -> None:
    data = bytes(packet)  # type: ignore[call-overload]
    assert len(data) % 4 == 0
    assert parse_compound(data) == [packet]


def test_cumulative_loss_saturates_at_24_bits() -> None:
    block = ReportBlock(1, 0, 1 << 30, 0, 0)
    assert ReportBlock.parse(bytes(block), 0).packets_lost == (1 << 23) - 1
    assert ReportBlock.parse(bytes(ReportBlock(1, 0, -(1 << 30), 0, 0)), 0).packets_lost == -(
        1 << 23
    )


def test_unknown_packet_types_are_skipped() -> None:
    app = bytes.fromhex("80cc0002") + b"name" + bytes(4)  # APP, section 6.7
    assert parse_compound(app + bytes(Goodbye((7,)))) == [Goodbye((7,))]


def test_padding_is_honoured() -> None:
    bye = bytearray(bytes(Goodbye((7,))) + bytes([0, 0, 0, 4]))
    bye[0] |= 0x20
    bye[3] += 1
    assert parse_compound(bytes(bye)) == [Goodbye((7,))]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x81\xc8", "too short"),
        (b"\x41\xc8\x00\x00", "version 1"),
        (b"\x80\xc9\x00\x05" + bytes(4), "overruns"),
        (b"\x81\xc9\x00\x01" + bytes(4), "truncated"),
        (b"\x80\xc8\x00\x01" + bytes(4), "SR truncated"),
        (b"\x81\xca\x00\x02" + bytes(4) + b"\x01\x09ab", "overruns"),
        (b"\x81\xca\x00\x01" + bytes(4), "not terminated"),
        (b"\x81\xcb\x00\x01" + bytes(4) + b"\x81\xcb\x00\x00", "truncated"),
        (b"\xa0\xcb\x00\x01" + bytes([0, 0, 0, 9]), "padding count 9"),
    ],
)
def test_malformed_rtcp_raises_a_precise_value_error(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_compound(data)


def test_ntp_timestamp_of_the_unix_epoch() -> None:
    assert ntp_timestamp(0.0) == 2208988800 << 32
    assert ntp_timestamp(0.5) & 0xFFFFFFFF == 0x80000000


def test_reception_stats_count_loss_across_the_sequence_wrap() -> None:
    stats = ReceptionStats(ssrc=42)
    seqs = [65533, 65534, 65535, 1, 2, 4]  # 0 and 3 lost
    for i, seq in enumerate(seqs):
        stats.receive(seq, 160 * i, arrival=0.02 * i)
    assert stats.extended_max == (1 << 16) + 4
    assert stats.expected == 8
    assert stats.lost == 2
    block = stats.report_block(now=1.0)
    assert block.fraction_lost == (2 << 8) // 8
    assert block.packets_lost == 2
    assert block.highest_sequence == 0x10004
    # The next interval starts afresh: no new loss, fraction 0, cumulative still 2.
    stats.receive(5, 160 * 7, arrival=0.14)
    block = stats.report_block(now=2.0)
    assert (block.fraction_lost, block.packets_lost) == (0, 2)


def test_duplicates_make_cumulative_loss_negative() -> None:
    stats = ReceptionStats(ssrc=1)
    for seq in (10, 11, 11, 12):
        stats.receive(seq, seq * 160, arrival=seq * 0.02)
    assert stats.lost == -1
    assert stats.report_block(now=0.0).fraction_lost == 0


def test_jitter_is_zero_for_a_steady_stream_and_tracks_a_jittery_one() -> None:
    steady = ReceptionStats(ssrc=1)
    for i in range(100):
        steady.receive(i, 1000 + 160 * i, arrival=5.0 + 0.02 * i)
    assert steady.jitter < 1.0
    jittery = ReceptionStats(ssrc=1)
    for i in range(2000):
        # every other packet 5 ms late: |D| = 40 timestamp units at each packet
        jittery.receive(i, 160 * i, arrival=0.02 * i + (0.005 if i % 2 else 0.0))
    assert jittery.jitter == pytest.approx(40, abs=1)


def test_lsr_and_dlsr_come_from_the_last_sender_report() -> None:
    stats = ReceptionStats(ssrc=1)
    stats.receive(1, 0, 0.0)
    stats.sender_report_received((0x0001_2345_6789_0000), now=10.0)
    block = stats.report_block(now=11.5)
    assert block.lsr == 0x2345_6789
    assert block.dlsr == int(1.5 * 65536)


DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize("name", ["rtcp_baresip_sr_sdes.bin", "rtcp_baresip_bye_sdes.bin"])
def test_baresip_compound_packets_round_trip_byte_for_byte(name: str) -> None:
    # Captured on loopback from baresip 1.0.0 (Debian 12) in a call with a SIPp caller.
    data = (DATA / name).read_bytes()
    packets = parse_compound(data)
    assert b"".join(bytes(p) for p in packets) == data
    sdes = packets[1]
    assert isinstance(sdes, SourceDescription)
    assert sdes.cname(0xAA5CE5CC) == b"sip:callee@127.0.0.1:15972"


def test_baresip_sender_report_and_bye_fields() -> None:
    sr = parse_compound((DATA / "rtcp_baresip_sr_sdes.bin").read_bytes())[0]
    assert sr == SenderReport(0xAA5CE5CC, 0xEEB64D94DB505D0F, 45923, 250, 40000, ())
    bye = parse_compound((DATA / "rtcp_baresip_bye_sdes.bin").read_bytes())[0]
    assert bye == Goodbye((0xAA5CE5CC,), b"Adjo")


def test_baresip_app_ping_is_skipped() -> None:
    assert parse_compound((DATA / "rtcp_baresip_app.bin").read_bytes()) == []
