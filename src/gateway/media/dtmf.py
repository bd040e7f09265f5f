"""DTMF, however it comes: RFC 4733 telephone-events, SIP INFO bodies, and in-band tones.

All three end as one :class:`~gateway.media.events.DtmfReceived` per key press, with the
digit, how it came and its media time, so the call script does not care which the far end
chose. The in-band detector lives in :mod:`gateway.media.inband` and is re-exported here.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from .events import DtmfReceived
from .inband import ToneDetector, detect_tones
from .rtp import RtpPacket, ts_diff

__all__ = [
    "EVENT_CODES",
    "TelephoneEvent",
    "TelephoneEventReceiver",
    "ToneDetector",
    "detect_tones",
    "dtmf_from_info",
    "telephone_event_payloads",
]

#: RFC 4733 section 3.2, table 1: events 0 to 15 are the DTMF keys in this order.
EVENT_CODES = "0123456789*#ABCD"
_EVENT = struct.Struct("!BBH")
_CLOCK_RATE = 8000
#: A segment this long was cut at the 0xFFFF limit (a few packet times of slack).
_LONGEST_SEGMENT = 0xFFFF - 3 * 160


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """The payload of a telephone-event packet (RFC 4733 section 2.3).

    ``duration`` is in timestamp units since the event's timestamp; ``volume`` is the power
    level in -dBm0 (0 to 63).
    """

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        """Parse the first (or only) event of a payload; raise ValueError if it is short."""
        if len(payload) < 4:
            raise ValueError(f"telephone-event payload of {len(payload)} bytes, needs 4")
        event, flags, duration = _EVENT.unpack_from(payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def __bytes__(self) -> bytes:
        return _EVENT.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)

    @property
    def digit(self) -> str | None:
        """The key of a DTMF event, None for the other events of the registry."""
        return EVENT_CODES[self.event] if self.event < 16 else None


@dataclass(slots=True)
class _Current:
    event: int
    timestamp: int
    duration: int
    ended: bool


class TelephoneEventReceiver:
    """Turns RFC 4733 packets into one report per key press (section 2.5.2).

    An event is identified by its SSRC and RTP timestamp (section 2.5.1.2: "the RTP timestamp
    ... identifies the beginning of the event"), so the start, its continuations and the three
    end packets of one press are one report, whichever of them is lost or repeated, and a new
    SSRC in mid-call starts afresh. A long event cut into segments (section 2.5.1.3: the next
    segment's timestamp is the previous one plus its duration) stays one press.
    """

    def __init__(self, remembered: int = 32) -> None:
        self._seen: dict[int, deque[int]] = {}
        self._current: dict[int, _Current] = {}
        self._remembered = remembered

    def receive(self, packet: RtpPacket, media_time: float) -> DtmfReceived | None:
        """Account for one telephone-event packet that arrived at ``media_time``.

        Returns the press when this packet is the first seen of it. The press is dated back
        by the packet's duration, so a lost start packet does not make it look late.
        """
        try:
            event = TelephoneEvent.parse(packet.payload)
        except ValueError:
            return None
        digit = event.digit
        seen = self._seen.setdefault(packet.ssrc, deque(maxlen=self._remembered))
        if packet.timestamp in seen:
            current = self._current.get(packet.ssrc)
            if current is not None and current.timestamp == packet.timestamp:
                current.duration = max(current.duration, event.duration)
                current.ended = current.ended or event.end
            return None
        seen.append(packet.timestamp)
        current = self._current.get(packet.ssrc)
        # Only a segment that ran to the 16-bit limit of the duration field is continued.
        segment = (
            current is not None
            and not current.ended
            and current.event == event.event
            and current.duration >= _LONGEST_SEGMENT
            and 0 <= ts_diff(packet.timestamp, current.timestamp) - current.duration <= 160
        )
        self._current[packet.ssrc] = _Current(
            event.event, packet.timestamp, event.duration, event.end
        )
        if segment or digit is None:
            return None
        return DtmfReceived(digit, "rfc4733", max(media_time - event.duration / _CLOCK_RATE, 0.0))


def telephone_event_payloads(
    digit: str, duration: float = 0.1, *, volume: int = 10, ptime: float = 0.02
) -> list[tuple[bytes, bool]]:
    """The payloads (and marker bits) of one key press, one per packet time (section 2.5.1).

    All carry the timestamp of the press's first packet; the first has the marker bit
    (section 2.5.1.1), the last is sent three times with the E bit (section 2.5.1.4).
    """
    code = EVENT_CODES.index(digit.upper())
    step = round(ptime * _CLOCK_RATE)
    total = max(round(duration * _CLOCK_RATE), step)
    out: list[tuple[bytes, bool]] = []
    # Each packet says how long the event has lasted when it leaves: 0 for the first one, so
    # the receiver can date the press back from any packet that reaches it.
    for elapsed in range(0, total, step):
        out.append((bytes(TelephoneEvent(code, False, volume, elapsed)), not out))
    final = bytes(TelephoneEvent(code, True, volume, total))
    first_is_end = not out
    out.append((final, first_is_end))
    out.extend([(final, False), (final, False)])
    return out


def dtmf_from_info(content_type: str, body: str | bytes, media_time: float) -> DtmfReceived | None:
    """The key of a SIP INFO body, or None if the body carries none.

    ``application/dtmf-relay`` bodies are ``Signal=5`` and ``Duration=160`` lines (the de facto
    format of Cisco and most trunks); ``application/dtmf`` bodies hold the key alone. Both are
    accepted in either shape, and ``10`` and ``11`` as ``*`` and ``#`` (RFC 4733 codes).
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in ("application/dtmf-relay", "application/dtmf"):
        return None
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    value = text.strip()
    for line in text.splitlines():
        name, sep, rest = line.partition("=")
        if sep and name.strip().lower() == "signal":
            value = rest.strip()
            break
    if value in ("10", "11"):
        value = EVENT_CODES[int(value)]
    value = value.upper()
    if len(value) != 1 or value not in EVENT_CODES:
        return None
    return DtmfReceived(value, "info", media_time)
