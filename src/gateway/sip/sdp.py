"""SDP (RFC 8866, formerly RFC 4566) and the audio offer/answer model (RFC 3264).

SDP carries codec names and payload type numbers as plain data: ``sip`` and ``media`` never
import each other, and ``calls`` joins an :class:`AudioSession` to a media stream.

Parsing is lenient where the peer's intent stays clear (unknown lines and attributes are kept,
LF-only line ends are accepted, RFC 8866 section 5 line order is not enforced) and strict where
a call could not work (a malformed ``v=``, ``o=``, ``c=``, ``t=`` or ``m=`` line).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.sip.errors import ParseError, SipError

__all__ = [
    "DIRECTIONS",
    "STATIC_PAYLOAD_TYPES",
    "AudioSession",
    "MediaDescription",
    "NoCommonCodec",
    "Origin",
    "SessionDescription",
    "make_answer",
    "make_offer",
    "negotiate",
]

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
"""RFC 8866 section 6.7 direction attributes; "sendrecv" is the default (RFC 3264 5.1)."""

STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int]] = {0: ("PCMU", 8000), 8: ("PCMA", 8000)}
"""The static audio payload types we speak (RFC 3551 section 6, table 4); no rtpmap needed."""

# A peer that does not read the RFC still writes ASCII digits; int() alone would also accept
# other Unicode digits and signs, so numbers are matched first.
_NUMBER = re.compile(r"[0-9]{1,20}", re.ASCII)
_PORT = re.compile(r"([0-9]{1,5})(?:/([0-9]{1,5}))?", re.ASCII)
_AUDIO_PROTOS = ("RTP/AVP", "RTP/AVPF")

# RFC 8866 section 5: where each optional line type goes, session level then media level.
_SESSION_BEFORE_C = "iuep"
_SESSION_AFTER_T = "rz"
_MEDIA_BEFORE_C = "i"


def _number(value: str, what: str) -> int:
    if not _NUMBER.fullmatch(value):
        raise ParseError(f"SDP {what}: {value!r} is not a number")
    return int(value)


class NoCommonCodec(SipError):
    """No usable audio stream in an offer or answer: 488 Not Acceptable Here (RFC 3264 6).

    ``reason_header`` is a Reason header value (RFC 3326) for the BYE or CANCEL that ends a
    call whose answer we cannot use; ``headers`` carries the Warning that RFC 3261 section
    21.4.26 asks a 488 to include.
    """

    default_status = 488

    def __init__(self, message: str) -> None:
        super().__init__(message, headers=[("Warning", '305 gateway "Incompatible media format"')])
        self.reason_header = 'SIP;cause=488;text="Not Acceptable Here"'


@dataclass
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>``.

    RFC 8866 section 5.2; RFC 3264 section 8 increments ``sess_version`` with each new offer.
    """

    username: str
    sess_id: int
    sess_version: int
    nettype: str
    addrtype: str
    address: str

    @property
    def session_id(self) -> int:
        """``sess_id`` under the name :func:`make_offer` and :func:`make_answer` take."""
        return self.sess_id

    @property
    def version(self) -> int:
        """``sess_version`` under the name :func:`make_offer` and :func:`make_answer` take."""
        return self.sess_version

    def __str__(self) -> str:
        return (
            f"{self.username} {self.sess_id} {self.sess_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


def _addrtype(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def _parse_connection(value: str) -> str:
    """``c=<nettype> <addrtype> <connection-address>`` (RFC 8866 section 5.7): the address."""
    parts = value.split()
    if len(parts) != 3:
        raise ParseError(f"SDP c= line {value!r} needs three fields")
    nettype, addrtype, address = parts
    if nettype != "IN" or addrtype not in ("IP4", "IP6"):
        raise ParseError(f"SDP c= line {value!r}: not an IN IP4/IP6 address", 488)
    return address


def _parse_attribute(value: str) -> tuple[str, str | None]:
    """``a=<attribute>:<value>`` or the property form ``a=<attribute>`` (RFC 8866 5.13)."""
    name, sep, rest = value.partition(":")
    return name, (rest if sep else None)


def _parse_bandwidth(value: str) -> tuple[str, int] | None:
    bwtype, _, amount = value.partition(":")
    if not bwtype or not _NUMBER.fullmatch(amount):
        return None
    return bwtype, int(amount)


def _find_attribute(attributes: Sequence[tuple[str, str | None]], name: str) -> str | None:
    # Attribute names are case-sensitive in RFC 8866 6, but peers vary in case; ours are unique.
    for n, v in attributes:
        if n.lower() == name.lower():
            return "" if v is None else v
    return None


def _find_direction(attributes: Sequence[tuple[str, str | None]], default: str) -> str:
    for n, v in attributes:
        if v is None and n.lower() in DIRECTIONS:
            return n.lower()
    return default


def _attribute_lines(attributes: Sequence[tuple[str, str | None]]) -> list[str]:
    return [f"a={n}" if v is None else f"a={n}:{v}" for n, v in attributes]


@dataclass
class MediaDescription:
    """One ``m=`` section (RFC 8866 section 5.14) with its media-level lines.

    ``formats`` are the ``<fmt>`` strings (payload type numbers for RTP); ``connection`` is the
    ``c=`` address, None to inherit the session's; ``other`` keeps lines we do not interpret
    (``i=``, ``k=``, unknown types) as (type, value) so that they survive a round trip.
    """

    media: str
    port: int
    proto: str
    formats: list[str]
    connection: str | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    bandwidth: list[tuple[str, int]] = field(default_factory=list)
    port_count: int | None = None
    other: list[tuple[str, str]] = field(default_factory=list)

    def attribute(self, name: str) -> str | None:
        """The value of the first ``a=name:value``; "" for a property attribute; else None."""
        return _find_attribute(self.attributes, name)

    def rtpmap(self) -> dict[str, tuple[str, int]]:
        """Payload type -> (encoding name, clock rate), from ``a=rtpmap`` (RFC 8866 6.6).

        Static payload types without an rtpmap line come from :data:`STATIC_PAYLOAD_TYPES`.
        Malformed rtpmap lines are skipped: the format then stays unknown to us.
        """
        result = {str(pt): codec for pt, codec in STATIC_PAYLOAD_TYPES.items()}
        for n, v in self.attributes:
            if n.lower() != "rtpmap" or v is None:
                continue
            # a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding parameters>]
            pt, _, encoding = v.strip().replace("\t", " ").partition(" ")
            name, _, rest = encoding.strip().partition("/")
            rate = rest.partition("/")[0]
            if name and _NUMBER.fullmatch(rate):
                result[pt] = (name, int(rate))
        return result

    def direction(self, default: str = "sendrecv") -> str:
        """The media direction attribute, else ``default`` (the session's, RFC 8866 6.7)."""
        return _find_direction(self.attributes, default)

    def lines(self) -> list[str]:
        """The media section's lines in RFC 8866 section 5 order, without line ends."""
        port = self.port if self.port_count is None else f"{self.port}/{self.port_count}"
        out = [f"m={' '.join([self.media, str(port), self.proto, *self.formats])}"]
        out += [f"{t}={v}" for t, v in self.other if t in _MEDIA_BEFORE_C]
        if self.connection is not None:
            out.append(f"c=IN {_addrtype(self.connection)} {self.connection}")
        out += [f"b={t}:{n}" for t, n in self.bandwidth]
        out += [f"{t}={v}" for t, v in self.other if t not in _MEDIA_BEFORE_C]
        return out + _attribute_lines(self.attributes)


def _parse_media(value: str) -> MediaDescription:
    """``m=<media> <port>[/<number of ports>] <proto> <fmt> ...`` (RFC 8866 section 5.14)."""
    parts = value.split()
    if len(parts) < 3:
        raise ParseError(f"SDP m= line {value!r} needs media, port and proto")
    match = _PORT.fullmatch(parts[1])
    if match is None or int(match[1]) > 65535:
        raise ParseError(f"SDP m= line {value!r}: bad port")
    count = int(match[2]) if match[2] is not None else None
    return MediaDescription(parts[0], int(match[1]), parts[2], parts[3:], port_count=count)


@dataclass
class SessionDescription:
    """A whole SDP body: session-level lines, then the media descriptions in order.

    ``timing`` holds each ``t=<start> <stop>`` (RFC 8866 section 5.9); ``other`` keeps the
    session-level lines we do not interpret (``i=``, ``u=``, ``e=``, ``p=``, ``r=``, ``z=``,
    ``k=``, unknown types). Serialises with CRLF line ends (RFC 8866 section 5).
    """

    origin: Origin
    name: str = "-"
    connection: str | None = None
    timing: list[tuple[int, int]] = field(default_factory=lambda: [(0, 0)])
    bandwidth: list[tuple[str, int]] = field(default_factory=list)
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)
    other: list[tuple[str, str]] = field(default_factory=list)
    version: int = 0

    @classmethod
    def parse(cls, text: str | bytes) -> SessionDescription:
        """Parse an SDP body; raise :class:`ParseError` (status 400 or 488) if unusable."""
        if isinstance(text, bytes):
            # RFC 8866 section 5: UTF-8 by default; a stray byte must not cost the call.
            text = text.decode("utf-8", errors="replace")
        lines = [line.rstrip("\r") for line in text.split("\n")]
        lines = [line for line in lines if line.strip()]
        if not lines or lines[0].strip() != "v=0":
            raise ParseError("SDP must start with v=0 (RFC 8866 section 5.1)")
        origin: Origin | None = None
        sdp = cls(origin=Origin("-", 0, 0, "IN", "IP4", "0.0.0.0"), timing=[])
        current: MediaDescription | None = None
        for line in lines[1:]:
            kind, sep, value = line.partition("=")
            if not sep or len(kind) != 1:
                continue  # not a <type>=<value> line: ignored as RFC 8866 section 5 allows
            if kind == "m":
                current = _parse_media(value)
                sdp.media.append(current)
            elif kind == "a":
                target = sdp.attributes if current is None else current.attributes
                target.append(_parse_attribute(value))
            elif kind == "c":
                if current is None:
                    sdp.connection = _parse_connection(value)
                else:
                    current.connection = _parse_connection(value)
            elif kind == "b" and (bandwidth := _parse_bandwidth(value)) is not None:
                (sdp.bandwidth if current is None else current.bandwidth).append(bandwidth)
            elif current is not None:
                current.other.append((kind, value))
            elif kind == "o":
                origin = _parse_origin(value)
            elif kind == "s":
                sdp.name = value
            elif kind == "t":
                sdp.timing.append(_parse_timing(value))
            elif kind != "v":
                sdp.other.append((kind, value))
        if origin is None:
            raise ParseError("SDP without o= line (RFC 8866 section 5.2)")
        sdp.origin = origin
        if not sdp.timing:
            sdp.timing.append((0, 0))  # some old gear omits t=; "0 0" is what it means
        return sdp

    def lines(self) -> list[str]:
        """The body's lines in RFC 8866 section 5 order, without line ends."""
        out = [f"v={self.version}", f"o={self.origin}", f"s={self.name}"]
        out += [f"{t}={v}" for t, v in self.other if t in _SESSION_BEFORE_C]
        if self.connection is not None:
            out.append(f"c=IN {_addrtype(self.connection)} {self.connection}")
        out += [f"b={t}:{n}" for t, n in self.bandwidth]
        out += [f"t={start} {stop}" for start, stop in self.timing]
        out += [f"{t}={v}" for t, v in self.other if t in _SESSION_AFTER_T]
        out += [
            f"{t}={v}"
            for t, v in self.other
            if t not in _SESSION_BEFORE_C and t not in _SESSION_AFTER_T
        ]
        out += _attribute_lines(self.attributes)
        for media in self.media:
            out += media.lines()
        return out

    def to_text(self) -> str:
        """The body as text, every line ended by CRLF (RFC 8866 section 5)."""
        return "".join(line + "\r\n" for line in self.lines())

    def to_bytes(self) -> bytes:
        return self.to_text().encode("utf-8")

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    def attribute(self, name: str) -> str | None:
        """The value of the first session-level ``a=name[:value]`` ("" for a property)."""
        return _find_attribute(self.attributes, name)

    def direction(self) -> str:
        """The session-level direction attribute, "sendrecv" when absent (RFC 3264 5.1)."""
        return _find_direction(self.attributes, "sendrecv")


def _parse_origin(value: str) -> Origin:
    parts = value.split()
    if len(parts) != 6:
        raise ParseError(f"SDP o= line {value!r} needs six fields")
    username, sess_id, sess_version, nettype, addrtype, address = parts
    return Origin(
        username,
        _number(sess_id, "o= sess-id"),
        _number(sess_version, "o= sess-version"),
        nettype,
        addrtype,
        address,
    )


def _parse_timing(value: str) -> tuple[int, int]:
    parts = value.split()
    if len(parts) != 2:
        raise ParseError(f"SDP t= line {value!r} needs start and stop times")
    return _number(parts[0], "t= start"), _number(parts[1], "t= stop")


# --- offer / answer (RFC 3264) ----------------------------------------------------------------

_SUPPORTED_CODECS = {name: pt for pt, (name, _rate) in STATIC_PAYLOAD_TYPES.items()}
_TELEPHONE_EVENT = "telephone-event"
_HOLD_ADDRESS = "0.0.0.0"  # RFC 2543 hold, still sent by old gear (RFC 3264 section 8.4)

# What each side may do: direction -> (sends, receives), from the point of view of its writer.
_CAN: dict[str, tuple[bool, bool]] = {
    "sendrecv": (True, True),
    "sendonly": (True, False),
    "recvonly": (False, True),
    "inactive": (False, False),
}


def _direction_of(sends: bool, receives: bool) -> str:
    return next(d for d, can in _CAN.items() if can == (sends, receives))


@dataclass(frozen=True)
class AudioSession:
    """The audio stream agreed by an offer/answer exchange, as plain data for ``calls``.

    ``remote_address`` / ``remote_port`` are where to send RTP; ``direction`` is the remote
    side's own attribute (its "sendonly" means it will not listen); ``on_hold`` is True when the
    remote said sendonly or inactive, or gave the RFC 2543 hold address 0.0.0.0.
    """

    remote_address: str
    remote_port: int
    codec: str
    payload_type: int
    clock_rate: int
    telephone_event_pt: int | None
    direction: str
    on_hold: bool
    ptime: int = 20


def _check_codecs(codecs: Sequence[str]) -> list[str]:
    names = [c.upper() for c in codecs]
    unknown = [c for c in names if c not in _SUPPORTED_CODECS]
    if unknown or not names:
        raise ValueError(f"codecs must be among {sorted(_SUPPORTED_CODECS)}, got {codecs!r}")
    return names


def _ptime(media: MediaDescription, sdp: SessionDescription) -> int:
    value = media.attribute("ptime") or sdp.attribute("ptime") or ""
    try:
        ptime = round(float(value))  # RFC 8866 6.4 allows a decimal number of milliseconds
    except (ValueError, OverflowError):
        return 20
    return ptime if 10 <= ptime <= 200 else 20


def _audio_session(
    media: MediaDescription, sdp: SessionDescription, codecs: Sequence[str]
) -> AudioSession:
    """Read the remote side's audio m-line: address, first supported codec, telephone-event."""
    if media.port == 0:
        raise NoCommonCodec("the audio stream is rejected (port 0, RFC 3264 section 6)")
    if media.proto.upper() not in _AUDIO_PROTOS:
        raise NoCommonCodec(f"audio over {media.proto!r}: only RTP/AVP is spoken here")
    address = media.connection or sdp.connection
    if address is None:
        raise ParseError("SDP audio stream without c= line (RFC 8866 section 5.7)")
    rtpmap = media.rtpmap()
    chosen: tuple[str, int] | None = None
    event_pt: int | None = None
    for fmt in media.formats:
        name, rate = rtpmap.get(fmt, ("", 0))
        if not _NUMBER.fullmatch(fmt) or int(fmt) > 127:
            continue
        if name.lower() == _TELEPHONE_EVENT and rate == 8000:
            event_pt = int(fmt) if event_pt is None else event_pt
        elif chosen is None and name.upper() in codecs and rate == 8000:
            chosen = (name.upper(), int(fmt))
    if chosen is None:
        raise NoCommonCodec(f"no codec among {list(codecs)} in {media.formats}")
    direction = media.direction(sdp.direction())
    return AudioSession(
        remote_address=address,
        remote_port=media.port,
        codec=chosen[0],
        payload_type=chosen[1],
        clock_rate=8000,
        telephone_event_pt=event_pt,
        direction=direction,
        on_hold=direction in ("sendonly", "inactive") or address == _HOLD_ADDRESS,
        ptime=_ptime(media, sdp),
    )


def _first_audio(sdp: SessionDescription) -> MediaDescription:
    for media in sdp.media:
        if media.media.lower() == "audio":
            return media
    raise NoCommonCodec("no audio m-line in the session description")


def make_offer(
    *,
    address: str,
    port: int,
    session_id: int,
    version: int,
    codecs: Sequence[str] = ("PCMU", "PCMA"),
    telephone_event_pt: int | None = 101,
    ptime: int = 20,
    direction: str = "sendrecv",
    username: str = "gateway",
) -> SessionDescription:
    """An audio offer (RFC 3264 section 5): G.711 and RFC 4733 telephone-event.

    PCMU and PCMA use their static payload types 0 and 8 (still with rtpmap, RFC 8866 6.6);
    ``telephone_event_pt`` (None for no DTMF events) is offered as ``telephone-event/8000``
    with ``a=fmtp:<pt> 0-16`` (RFC 4733 section 2.4.1, DTMF digits and flash).
    ``address`` may be IPv4 or IPv6; ``version`` must grow with each new offer of a session.
    """
    names = _check_codecs(codecs)
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if telephone_event_pt is not None and not 96 <= telephone_event_pt <= 127:
        raise ValueError("telephone_event_pt must be a dynamic payload type (96-127)")
    formats = [str(_SUPPORTED_CODECS[n]) for n in names]
    attributes: list[tuple[str, str | None]] = [
        ("rtpmap", f"{_SUPPORTED_CODECS[n]} {n}/8000") for n in names
    ]
    if telephone_event_pt is not None:
        formats.append(str(telephone_event_pt))
        attributes.append(("rtpmap", f"{telephone_event_pt} {_TELEPHONE_EVENT}/8000"))
        attributes.append(("fmtp", f"{telephone_event_pt} 0-16"))
    attributes += [("ptime", str(ptime)), (direction, None)]
    return SessionDescription(
        origin=Origin(username, session_id, version, "IN", _addrtype(address), address),
        connection=address,
        media=[MediaDescription("audio", port, "RTP/AVP", formats, attributes=attributes)],
    )


def negotiate(
    answer: SessionDescription, *, codecs: Sequence[str] = ("PCMU", "PCMA")
) -> AudioSession:
    """Read the answer to our offer: the audio stream to send, in the answer's terms.

    Payload types are read from the answer whatever their numbers (dynamic ones through
    ``a=rtpmap``, static 0 and 8 without it); the first codec of the answer that we support
    wins (RFC 3264 section 7: the answerer lists its preference). Raises
    :class:`NoCommonCodec` (488) when the audio stream is rejected, missing or unusable.
    """
    return _audio_session(_first_audio(answer), answer, _check_codecs(codecs))


def make_answer(
    offer: SessionDescription,
    *,
    address: str,
    port: int,
    session_id: int,
    version: int,
    codecs: Sequence[str] = ("PCMU", "PCMA"),
    telephone_event_pt_default: int = 101,
    direction: str | None = None,
    ptime: int = 20,
    username: str = "gateway",
) -> tuple[SessionDescription, AudioSession]:
    """Answer a remote offer (inbound call, re-INVITE such as hold): RFC 3264 section 6.

    The answer has one m-line per offered m-line, in the same order; the first usable audio
    stream is accepted with the first offered codec we support, under the offer's payload type
    number, plus telephone-event at the offer's payload type if offered. Every other stream is
    rejected with port 0 (section 6: its formats are kept). The direction mirrors the offer's
    (sendonly -> recvonly, inactive -> inactive), further restricted by ``direction`` when we
    want less (our own hold). ``ptime`` is the packet time we want to receive (RFC 8866
    section 6.4); the offer's is in the returned session. ``telephone_event_pt_default`` is
    accepted for symmetry with :func:`make_offer` only: section 6.1 forbids an answer to add
    a format the offer lacks.
    Raises :class:`NoCommonCodec` (488) when no audio stream can be accepted.
    """
    del telephone_event_pt_default  # see the docstring: an answer cannot introduce it
    names = _check_codecs(codecs)
    if direction is not None and direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    session: AudioSession | None = None
    answer_media: list[MediaDescription] = []
    for offered in offer.media:
        accepted: MediaDescription | None = None
        if session is None and offered.media.lower() == "audio":
            try:
                session = _audio_session(offered, offer, names)
            except NoCommonCodec:
                session = None
            else:
                accepted = _answer_audio(offered, session, port, direction, ptime)
        if accepted is None:
            accepted = MediaDescription(
                offered.media, 0, offered.proto, offered.formats[:1] or ["0"]
            )
        answer_media.append(accepted)
    if session is None:
        raise NoCommonCodec("no acceptable audio stream in the offer")
    answer = SessionDescription(
        origin=Origin(username, session_id, version, "IN", _addrtype(address), address),
        connection=address,
        media=answer_media,
    )
    return answer, session


def _answer_audio(
    offered: MediaDescription, session: AudioSession, port: int, direction: str | None, ptime: int
) -> MediaDescription:
    pt = session.payload_type
    formats = [str(pt)]
    attributes: list[tuple[str, str | None]] = [("rtpmap", f"{pt} {session.codec}/8000")]
    event = session.telephone_event_pt
    if event is not None:
        formats.append(str(event))
        attributes.append(("rtpmap", f"{event} {_TELEPHONE_EVENT}/8000"))
        fmtp = _fmtp(offered, event)
        attributes.append(("fmtp", f"{event} {fmtp or '0-16'}"))
    # RFC 3264 section 6.1: what the offerer sends we receive, and the other way round.
    their_sends, their_receives = _CAN[session.direction]
    our_sends, our_receives = _CAN[direction or "sendrecv"]
    mirrored = _direction_of(their_receives and our_sends, their_sends and our_receives)
    attributes += [("ptime", str(ptime)), (mirrored, None)]
    return MediaDescription("audio", port, offered.proto, formats, attributes=attributes)


def _fmtp(media: MediaDescription, pt: int) -> str | None:
    for n, v in media.attributes:
        if n.lower() == "fmtp" and v is not None:
            fmt, _, params = v.strip().replace("\t", " ").partition(" ")
            if fmt == str(pt) and params.strip():
                return params.strip()
    return None
