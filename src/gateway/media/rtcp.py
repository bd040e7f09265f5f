"""RTCP (RFC 3550 section 6): SR, RR, SDES, BYE, and the reception statistics behind them.

Every packet type is a frozen dataclass with ``__bytes__``; :func:`parse_compound` splits a
compound datagram (section 6.1) into them and raises ValueError on anything malformed. Types it
does not know (APP, feedback) are skipped, as section 6.1 allows.

:class:`ReceptionStats` keeps, for one source we receive, what a report block needs: the
extended highest sequence number (appendix A.1), expected and lost counts with the fraction
lost since the last report (A.3), and the interarrival jitter (A.8). The probation of A.1 is left
out: a stream is only opened towards the address of an SDP answer.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .rtp import seq_diff

__all__ = [
    "NTP_EPOCH_OFFSET",
    "Goodbye",
    "ReceiverReport",
    "ReceptionStats",
    "ReportBlock",
    "RtcpPacket",
    "SenderReport",
    "SourceDescription",
    "ntp_timestamp",
    "parse_compound",
]

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
SDES_CNAME = 1

#: Seconds from the NTP epoch (1900) to the Unix epoch (1970), RFC 3550 section 4.
NTP_EPOCH_OFFSET = 2208988800

_HEADER = struct.Struct("!BBH")
_BLOCK = struct.Struct("!IBBHIIII")  # SSRC, fraction, cumulative lost (24 bits as 8 + 16), ...
_SR_INFO = struct.Struct("!IIIIII")  # SSRC, NTP msw, NTP lsw, RTP timestamp, packets, octets


def ntp_timestamp(unix_time: float) -> int:
    """64-bit NTP timestamp (RFC 3550 section 4) of a Unix time given by the caller."""
    return int((unix_time + NTP_EPOCH_OFFSET) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


def _header(padding: bool, count: int, packet_type: int, body_len: int) -> bytes:
    # Section 6.4.1: length is "in 32-bit words minus one, including the header".
    return _HEADER.pack(0x80 | (0x20 if padding else 0) | count, packet_type, body_len // 4)


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """A reception report block (RFC 3550 section 6.4.1).

    ``jitter`` is in timestamp units; ``lsr`` and ``dlsr`` are the middle 32 bits of the last SR's
    NTP timestamp and the delay since, in 1/65536 s.
    """

    ssrc: int
    fraction_lost: int
    packets_lost: int
    highest_sequence: int
    jitter: int
    lsr: int = 0
    dlsr: int = 0

    @classmethod
    def parse(cls, data: bytes, pos: int) -> ReportBlock:
        ssrc, fraction, lost_hi, lost_lo, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, pos)
        lost = (lost_hi << 16) | lost_lo
        if lost & 0x800000:  # "cumulative number of packets lost" is a signed 24-bit integer
            lost -= 1 << 24
        return cls(ssrc, fraction, lost, highest, jitter, lsr, dlsr)

    def __bytes__(self) -> bytes:
        # Clamp rather than wrap: section 6.4.1 saturates at the 24-bit limits.
        lost = max(-(1 << 23), min(self.packets_lost, (1 << 23) - 1)) & 0xFFFFFF
        return _BLOCK.pack(
            self.ssrc,
            self.fraction_lost,
            lost >> 16,
            lost & 0xFFFF,
            self.highest_sequence,
            self.jitter,
            self.lsr,
            self.dlsr,
        )


def _parse_blocks(data: bytes, pos: int, count: int, end: int) -> tuple[ReportBlock, ...]:
    if pos + 24 * count > end:
        raise ValueError(f"RTCP report with {count} blocks is truncated")
    return tuple(ReportBlock.parse(data, pos + 24 * i) for i in range(count))


@dataclass(frozen=True, slots=True)
class SenderReport:
    """SR (RFC 3550 section 6.4.1): what we sent, and reports on what we received."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()

    def __bytes__(self) -> bytes:
        body = _SR_INFO.pack(
            self.ssrc,
            self.ntp_timestamp >> 32,
            self.ntp_timestamp & 0xFFFFFFFF,
            self.rtp_timestamp,
            self.packet_count & 0xFFFFFFFF,
            self.octet_count & 0xFFFFFFFF,
        ) + b"".join(bytes(r) for r in self.reports)
        return _header(False, len(self.reports), RTCP_SR, len(body)) + body


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RR (RFC 3550 section 6.4.2): reports from a participant that does not send."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()

    def __bytes__(self) -> bytes:
        body = struct.pack("!I", self.ssrc) + b"".join(bytes(r) for r in self.reports)
        return _header(False, len(self.reports), RTCP_RR, len(body)) + body


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """SDES (RFC 3550 section 6.5): chunks of (SSRC, ((item type, value), ...))."""

    chunks: tuple[tuple[int, tuple[tuple[int, bytes], ...]], ...]

    def __bytes__(self) -> bytes:
        body = bytearray()
        for ssrc, items in self.chunks:
            body += struct.pack("!I", ssrc)
            for kind, value in items:
                if len(value) > 255:
                    raise ValueError("an SDES item holds at most 255 octets")
                body += bytes([kind, len(value)]) + value
            # Section 6.5: the list ends with a null octet, then pads to a 32-bit boundary.
            body += bytes(4 - len(body) % 4)
        return _header(False, len(self.chunks), RTCP_SDES, len(body)) + bytes(body)

    def cname(self, ssrc: int) -> bytes | None:
        """The CNAME of ``ssrc``, if this packet carries one."""
        for chunk_ssrc, items in self.chunks:
            if chunk_ssrc == ssrc:
                for kind, value in items:
                    if kind == SDES_CNAME:
                        return value
        return None


@dataclass(frozen=True, slots=True)
class Goodbye:
    """BYE (RFC 3550 section 6.6): these sources leave, with an optional reason."""

    ssrcs: tuple[int, ...]
    reason: bytes = b""

    def __bytes__(self) -> bytes:
        body = b"".join(struct.pack("!I", s) for s in self.ssrcs)
        if self.reason:
            reason = bytes([len(self.reason)]) + self.reason
            body += reason + bytes(-len(reason) % 4)
        return _header(False, len(self.ssrcs), RTCP_BYE, len(body)) + body


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Goodbye


def _parse_sdes(data: bytes, pos: int, count: int, end: int) -> SourceDescription:
    chunks = []
    for _ in range(count):
        if pos + 4 > end:
            raise ValueError("RTCP SDES chunk truncated")
        (ssrc,) = struct.unpack_from("!I", data, pos)
        pos += 4
        items = []
        while True:
            if pos >= end:
                raise ValueError("RTCP SDES item list not terminated")
            kind = data[pos]
            if kind == 0:
                pos = (pos + 4) & ~3  # skip the null octet and the padding to the next word
                break
            if pos + 2 > end or pos + 2 + data[pos + 1] > end:
                raise ValueError("RTCP SDES item overruns the packet")
            length = data[pos + 1]
            items.append((kind, bytes(data[pos + 2 : pos + 2 + length])))
            pos += 2 + length
        chunks.append((ssrc, tuple(items)))
    return SourceDescription(tuple(chunks))


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """Split a compound RTCP datagram into its packets (RFC 3550 section 6.1)."""
    packets: list[RtcpPacket] = []
    pos = 0
    if len(data) < 4:
        raise ValueError(f"RTCP datagram too short: {len(data)} bytes")
    while pos < len(data):
        if pos + 4 > len(data):
            raise ValueError("RTCP datagram ends inside a header")
        first, packet_type, length = _HEADER.unpack_from(data, pos)
        if first >> 6 != 2:
            raise ValueError(f"RTCP version {first >> 6}, expected 2")
        end = pos + 4 * (length + 1)
        if end > len(data):
            raise ValueError(f"RTCP packet of {4 * (length + 1)} bytes overruns the datagram")
        count = first & 0x1F
        if first & 0x20:
            padding = data[end - 1]
            if padding == 0 or padding > end - pos - 4:
                raise ValueError(f"RTCP padding count {padding} is invalid")
            body_end = end - padding
        else:
            body_end = end
        body = pos + 4
        if packet_type == RTCP_SR:
            if body + 24 > body_end:
                raise ValueError("RTCP SR truncated")
            ssrc, msw, lsw, rtp_ts, packets_sent, octets = _SR_INFO.unpack_from(data, body)
            blocks = _parse_blocks(data, body + 24, count, body_end)
            packets.append(
                SenderReport(ssrc, (msw << 32) | lsw, rtp_ts, packets_sent, octets, blocks)
            )
        elif packet_type == RTCP_RR:
            if body + 4 > body_end:
                raise ValueError("RTCP RR truncated")
            (ssrc,) = struct.unpack_from("!I", data, body)
            packets.append(ReceiverReport(ssrc, _parse_blocks(data, body + 4, count, body_end)))
        elif packet_type == RTCP_SDES:
            packets.append(_parse_sdes(data, body, count, body_end))
        elif packet_type == RTCP_BYE:
            if body + 4 * count > body_end:
                raise ValueError("RTCP BYE truncated")
            ssrcs = struct.unpack_from(f"!{count}I", data, body)
            reason = b""
            at = body + 4 * count
            if at < body_end:
                n = data[at]
                if at + 1 + n > body_end:
                    raise ValueError("RTCP BYE reason overruns the packet")
                reason = bytes(data[at + 1 : at + 1 + n])
            packets.append(Goodbye(tuple(ssrcs), reason))
        pos = end
    return packets


@dataclass(slots=True)
class ReceptionStats:
    """What we know of one source we receive (RFC 3550 appendices A.1, A.3 and A.8).

    ``clock_rate`` is the RTP clock of the payload (8000 for G.711).
    """

    ssrc: int
    clock_rate: int = 8000
    base_seq: int = -1
    max_seq: int = 0
    cycles: int = 0
    received: int = 0
    expected_prior: int = 0
    received_prior: int = 0
    jitter: float = 0.0
    _transit: int | None = None
    #: Middle 32 bits of the NTP timestamp of the last SR from this source, and when it came.
    last_sr: int = 0
    last_sr_time: float | None = None

    def receive(self, seq: int, timestamp: int, arrival: float) -> None:
        """Account for one RTP packet that arrived at ``arrival`` (seconds, monotonic)."""
        if self.base_seq < 0:
            self.base_seq = self.max_seq = seq
        else:
            delta = seq_diff(seq, self.max_seq)
            if delta > 0:
                if seq < self.max_seq:  # wrapped: A.1 counts another cycle of 2**16
                    self.cycles += 1 << 16
                self.max_seq = seq
            elif delta < -3000:
                # A.1: a big jump backwards is a restarted sender; count from here.
                self.base_seq = self.max_seq = seq
                self.cycles = 0
                self.received = self.expected_prior = self.received_prior = 0
        self.received += 1
        # A.8: transit time in timestamp units; jitter += (|D| - jitter) / 16.
        transit = int(arrival * self.clock_rate) - timestamp
        if self._transit is not None:
            d = abs(((transit - self._transit + 0x80000000) & 0xFFFFFFFF) - 0x80000000)
            self.jitter += (d - self.jitter) / 16.0
        self._transit = transit

    @property
    def extended_max(self) -> int:
        """Extended highest sequence number received (A.1)."""
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        """Packets expected since the first one (A.3)."""
        return 0 if self.base_seq < 0 else self.extended_max - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost (A.3); negative when duplicates arrived."""
        return self.expected - self.received

    def sender_report_received(self, ntp: int, now: float) -> None:
        """Remember an SR from this source, for LSR and DLSR (section 6.4.1)."""
        self.last_sr = (ntp >> 16) & 0xFFFFFFFF
        self.last_sr_time = now

    def report_block(self, now: float) -> ReportBlock:
        """A report block for this source, and the start of the next reporting interval."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        received_interval = self.received - self.received_prior
        self.expected_prior = expected
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = (lost_interval << 8) // expected_interval
        dlsr = 0
        if self.last_sr_time is not None:
            dlsr = int((now - self.last_sr_time) * 65536) & 0xFFFFFFFF
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=min(fraction, 255),
            packets_lost=self.lost,
            highest_sequence=self.extended_max & 0xFFFFFFFF,
            jitter=int(self.jitter),
            lsr=self.last_sr,
            dlsr=dlsr,
        )
