"""RTP packets (RFC 3550 section 5) and the arithmetic of their 16-bit and 32-bit counters.

:class:`RtpPacket` parses and serialises the fixed header with CSRCs, a header extension
(section 5.3.1) and padding (section 5.1). Sequence numbers and timestamps wrap around; every
comparison between them goes through :func:`seq_diff` and :func:`ts_diff`, which read the shorter
way round the circle. :class:`RtpSender` numbers the packets of one stream from random starting
points drawn from the injected ``rng`` (section 5.1: "the initial value of the sequence number
SHOULD be random", likewise the timestamp and the SSRC, section 8).
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

__all__ = [
    "RTP_HEADER_SIZE",
    "RtpPacket",
    "RtpSender",
    "is_rtcp",
    "seq_add",
    "seq_diff",
    "ts_add",
    "ts_diff",
]

RTP_VERSION = 2
RTP_HEADER_SIZE = 12
_HEADER = struct.Struct("!BBHII")
_EXTENSION = struct.Struct("!HH")


def seq_add(seq: int, n: int) -> int:
    """``seq + n`` modulo 2**16."""
    return (seq + n) & 0xFFFF


def seq_diff(a: int, b: int) -> int:
    """Signed distance from ``b`` to ``a`` across the 16-bit wrap, in [-32768, 32767].

    Positive when ``a`` is newer than ``b`` (RFC 3550 appendix A.1 treats a jump of less than
    half the sequence space as in order).
    """
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


def ts_add(ts: int, n: int) -> int:
    """``ts + n`` modulo 2**32."""
    return (ts + n) & 0xFFFFFFFF


def ts_diff(a: int, b: int) -> int:
    """Signed distance from ``b`` to ``a`` across the 32-bit wrap of RTP timestamps."""
    return ((a - b + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def is_rtcp(data: bytes) -> bool:
    """True if a datagram is RTCP rather than RTP (RFC 5761 section 4: types 192 to 223)."""
    return len(data) >= 2 and 192 <= data[1] <= 223


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet (RFC 3550 section 5.1).

    ``extension_profile`` is None when the X bit is clear; ``extension`` holds the extension's
    words without its 4-octet header. ``padding_size`` counts the padding octets, the last one
    included (0 = no P bit).
    """

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension_profile: int | None = None
    extension: bytes = b""
    padding_size: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= 127:
            raise ValueError(f"RTP payload type {self.payload_type} out of range 0..127")
        if not 0 <= self.sequence_number <= 0xFFFF:
            raise ValueError(f"RTP sequence number {self.sequence_number} out of range")
        if not 0 <= self.timestamp <= 0xFFFFFFFF or not 0 <= self.ssrc <= 0xFFFFFFFF:
            raise ValueError("RTP timestamp and SSRC are 32-bit unsigned")
        if len(self.csrc) > 15:
            raise ValueError("RTP carries at most 15 CSRCs (the CC field has 4 bits)")
        if len(self.extension) % 4:
            raise ValueError("an RTP header extension is a whole number of 32-bit words")
        if not 0 <= self.padding_size <= 255:
            raise ValueError("RTP padding is 0 to 255 octets")

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one datagram; raise ValueError naming what is wrong."""
        if len(data) < RTP_HEADER_SIZE:
            raise ValueError(f"RTP packet too short: {len(data)} bytes, header needs 12")
        first, second, seq, timestamp, ssrc = _HEADER.unpack_from(data)
        version = first >> 6
        if version != RTP_VERSION:
            raise ValueError(f"RTP version {version}, expected 2")
        pos = RTP_HEADER_SIZE
        cc = first & 0x0F
        end = len(data)
        csrc: tuple[int, ...] = ()
        if cc:
            if pos + 4 * cc > end:
                raise ValueError(f"RTP packet truncated in its {cc} CSRCs")
            csrc = struct.unpack_from(f"!{cc}I", data, pos)
            pos += 4 * cc
        extension_profile = None
        extension = b""
        if first & 0x10:
            if pos + 4 > end:
                raise ValueError("RTP packet truncated in its extension header")
            extension_profile, words = _EXTENSION.unpack_from(data, pos)
            pos += 4
            if pos + 4 * words > end:
                raise ValueError(f"RTP extension of {words} words overruns the packet")
            extension = bytes(data[pos : pos + 4 * words])
            pos += 4 * words
        padding_size = 0
        if first & 0x20:
            # Section 5.1: "The last octet of the padding contains a count of how many padding
            # octets should be ignored, including itself."
            padding_size = data[-1]
            if padding_size == 0 or pos + padding_size > end:
                raise ValueError(f"RTP padding count {padding_size} is invalid")
            end -= padding_size
        return cls(
            payload_type=second & 0x7F,
            sequence_number=seq,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=bytes(data[pos:end]),
            marker=bool(second & 0x80),
            csrc=tuple(csrc),
            extension_profile=extension_profile,
            extension=extension,
            padding_size=padding_size,
        )

    def __bytes__(self) -> bytes:
        first = (RTP_VERSION << 6) | len(self.csrc)
        if self.padding_size:
            first |= 0x20
        if self.extension_profile is not None:
            first |= 0x10
        second = self.payload_type | (0x80 if self.marker else 0)
        parts = [_HEADER.pack(first, second, self.sequence_number, self.timestamp, self.ssrc)]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension_profile is not None:
            parts.append(_EXTENSION.pack(self.extension_profile, len(self.extension) // 4))
            parts.append(self.extension)
        parts.append(self.payload)
        if self.padding_size:
            parts.append(bytes(self.padding_size - 1) + bytes([self.padding_size]))
        return b"".join(parts)


class RtpSender:
    """Numbers the packets of one outgoing stream (RFC 3550 sections 5.1 and 8).

    The SSRC, the first sequence number and the first timestamp come from ``rng``, so a test with
    ``random.Random(seed)`` sends the same bytes every time. The timestamp of frame ``n`` is
    ``first timestamp + n * samples_per_frame`` so that media time follows the send clock even
    when a frame is skipped; the sequence number counts the packets actually sent.
    """

    __slots__ = ("octet_count", "packet_count", "sequence_number", "ssrc", "timestamp0")

    def __init__(self, rng: random.Random) -> None:
        self.ssrc = rng.getrandbits(32)
        self.sequence_number = rng.getrandbits(16)
        self.timestamp0 = rng.getrandbits(32)
        self.packet_count = 0
        self.octet_count = 0

    def timestamp_at(self, samples: int) -> int:
        """The RTP timestamp ``samples`` sampling periods after the first one."""
        return (self.timestamp0 + samples) & 0xFFFFFFFF

    def next_packet(
        self, payload_type: int, payload: bytes, samples: int, *, marker: bool = False
    ) -> bytes:
        """Serialise the next packet, stamped ``samples`` periods after the first timestamp."""
        seq = self.sequence_number
        self.sequence_number = (seq + 1) & 0xFFFF
        self.packet_count += 1
        self.octet_count += len(payload)
        header = _HEADER.pack(
            0x80,
            payload_type | (0x80 if marker else 0),
            seq,
            (self.timestamp0 + samples) & 0xFFFFFFFF,
            self.ssrc,
        )
        return header + payload
