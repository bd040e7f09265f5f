"""SIP messages (RFC 3261 section 7): ``Request``, ``Response``, their header multidict, and
``parse`` / ``bytes()``.

``parse`` reads the start line and splits the header section into (name, value) pairs at once;
everything else (Via, From, CSeq ...) is parsed on demand by the typed properties, which keeps the
hot path short. Text is decoded as UTF-8 with ``surrogateescape``, so any octets a peer sends come
back unchanged from ``bytes()``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from gateway.sip.checks import check_request, check_response
from gateway.sip.errors import ParseError, SipError, VersionNotSupported, reason_phrase
from gateway.sip.fields import Headers
from gateway.sip.headers import (
    TOKEN,
    TOKEN_RE,
    NameAddr,
    canonical_name,
)
from gateway.sip.views import HeaderViews

__all__ = [
    "Headers",
    "Message",
    "Request",
    "Response",
    "check_request",
    "check_response",
    "parse",
    "response_for",
]

# SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT      (ABNF strings are case-insensitive)
_VERSION = r"[Ss][Ii][Pp]/[0-9]+\.[0-9]+"
# Request-Line = Method SP Request-URI SP SIP-Version CRLF
# Method = INVITEm / ACKm / OPTIONSm / BYEm / CANCELm / REGISTERm / extension-method (token)
# Request-URI = SIP-URI / SIPS-URI / absoluteURI: uric characters, "%" escapes and the IPv6
# brackets; never LWS, "<" or ">" (RFC 4475 sections 3.1.2.7 and 3.1.2.8).
_REQUEST_LINE = re.compile(rf"({TOKEN}) ([A-Za-z0-9\-_.!~*'();/?:@&=+$,%\[\]]+) ({_VERSION})")
# What a broken Request-Line still tells: enough to answer it with 400 or 505.
_LOOSE_REQUEST_LINE = re.compile(rf"({TOKEN})[ \t]+(\S(?:.*\S)?)[ \t]+([Ss][Ii][Pp]/\S*)[ \t]*")
# Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF
# Status-Code = 3DIGIT (100 to 699, section 21)
# Reason-Phrase = *(reserved / unreserved / escaped / UTF8-NONASCII / UTF8-CONT / SP / HTAB)
# (a missing SP before an empty Reason-Phrase is tolerated)
_STATUS_LINE = re.compile(rf"({_VERSION}) ([1-6][0-9][0-9])(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?")


_NAMES: dict[str, str] = {}  # header name as written -> canonical name, for valid names only
_NAMES_MAX = 2048


class Message(HeaderViews):
    """What requests and responses share: header fields, body, and the typed header views of
    ``HeaderViews`` (parsed on each access, so they follow any change to ``headers``; each
    raises ``ParseError`` (400) naming the header when it is missing or malformed).
    """

    __slots__ = ("body", "headers", "version")

    body: bytes
    version: str

    def _start_line(self) -> str:
        raise NotImplementedError

    def __bytes__(self) -> bytes:
        """The message on the wire; Content-Length recomputed from the body, exactly once.

        RFC 3261 section 18.3: over streams Content-Length MUST be present, so it always is.
        """
        lines = [self._start_line()]
        length_written = False
        for name, value in self.headers:
            if name == "Content-Length":
                if not length_written:
                    lines.append(f"Content-Length: {len(self.body)}")
                    length_written = True
                continue
            lines.append(f"{name}: {value}")
        if not length_written:
            lines.append(f"Content-Length: {len(self.body)}")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self.body

    def _same(self, other: Message) -> bool:
        # Content-Length is derived from the body and rewritten by bytes(): not compared.
        mine = [item for item in self.headers if item[0] != "Content-Length"]
        theirs = [item for item in other.headers if item[0] != "Content-Length"]
        return self.version == other.version and self.body == other.body and mine == theirs


def _headers_of(headers: Headers | Iterable[tuple[str, str]]) -> Headers:
    return headers if isinstance(headers, Headers) else Headers(headers)


class Request(Message):
    """A SIP request (section 7.1)."""

    __slots__ = ("method", "uri")

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Headers | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        version: str = "SIP/2.0",
    ) -> None:
        if TOKEN_RE.fullmatch(method) is None:
            raise ValueError(f"Method is not a token: {method!r}")
        if not uri or any(ch in uri for ch in " \t\r\n<>"):
            raise ValueError(f"Request-URI must not be empty or hold LWS or <>: {uri!r}")
        self.method = method
        self.uri = uri
        self.headers = _headers_of(headers)
        self.body = body
        self.version = version

    def _start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return self.method == other.method and self.uri == other.uri and self._same(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(Message):
    """A SIP response (section 7.2); ``reason`` defaults to the usual phrase of ``status``."""

    __slots__ = ("reason", "status")

    def __init__(
        self,
        status: int,
        reason: str = "",
        headers: Headers | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        version: str = "SIP/2.0",
    ) -> None:
        if not 100 <= status <= 699:
            raise ValueError(f"Status code out of range 100-699: {status}")
        if "\r" in reason or "\n" in reason:
            raise ValueError(f"Reason-Phrase contains CR or LF: {reason!r}")
        self.status = status
        self.reason = reason or reason_phrase(status)
        self.headers = _headers_of(headers)
        self.body = body
        self.version = version

    def _start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Response):
            return NotImplemented
        return self.status == other.status and self.reason == other.reason and self._same(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


def _unfold(lines: list[str]) -> list[str]:
    """Join continuation lines to the line they continue, each fold becoming one SP.

    LWS = [*WSP CRLF] 1*WSP (RFC 3261 section 7.3.1): a line that starts with whitespace
    continues the previous one. Done line by line, in linear time whatever the input.
    """
    out: list[str] = []
    parts: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t") and out:
            if not parts:
                parts.append(out[-1].rstrip(" \t"))
            stripped = line.strip(" \t")
            if stripped:
                parts.append(stripped)
            continue
        if parts:
            out[-1] = " ".join(parts)
            parts = []
        out.append(line)
    if parts:
        out[-1] = " ".join(parts)
    return out


def _header_name(name: str) -> str:
    """The canonical name of a header line's name as written; ``ParseError`` if not a token."""
    canonical = _NAMES.get(name)
    if canonical is not None:
        return canonical
    # HCOLON = *( SP / HTAB ) ":" SWS: whitespace may precede the colon.
    stripped = name.rstrip(" \t")
    if TOKEN_RE.fullmatch(stripped) is None:
        raise ParseError(f"Malformed header name {name!r}")
    canonical = canonical_name(stripped)
    if len(_NAMES) < _NAMES_MAX:
        _NAMES[name] = canonical
    return canonical


def parse(data: bytes) -> Request | Response:
    """Parse one whole message: a datagram, or a frame from ``StreamFramer``.

    Header folding is undone, values are stripped, compact names expanded. The body is
    Content-Length octets; octets after it are ignored (RFC 4475 section 3.1.1.8); without
    Content-Length the body is the rest of the data (RFC 3261 section 18.3, datagrams). When
    several Content-Length values disagree, the body is the rest of the data and
    ``check_request`` rejects the request (RFC 4475 section 3.3.9).

    Raises ``ParseError`` (400), ``VersionNotSupported`` (505). When a request is readable
    beyond its fault, the error's ``request`` holds it so that the fault can be answered.
    """
    if data[:1] in (b"\r", b"\n"):
        # RFC 3261 section 7.5: CRLFs before the start-line are ignored.
        data = data.lstrip(b"\r\n")
    head_end = data.find(b"\r\n\r\n")
    if head_end >= 0:
        body_start = head_end + 4
    else:
        head_end = data.find(b"\n\n")
        body_start = head_end + 2
        if head_end < 0:
            head_end = body_start = len(data)
    text = data[:head_end].decode("utf-8", "surrogateescape").replace("\r\n", "\n")
    if "\r" in text:
        raise ParseError("Bare CR in the header section")
    lines = text.split("\n")
    if "\n " in text or "\n\t" in text:
        lines = _unfold(lines)
    if len(lines) > 1 and not lines[-1]:
        lines.pop()  # a datagram that ends after its last header line, without the empty line
    start = lines[0]
    error: SipError | None = None

    items: list[tuple[str, str]] = []
    lengths: list[str] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            # An empty line here would end the header section for another parser: refuse.
            error = error or ParseError(f"Header line without a colon: {line[:40]!r}")
            continue
        try:
            canonical = _NAMES.get(name) or _header_name(name)
        except ParseError as exc:
            error = error or exc
            continue
        value = value.strip(" \t")
        if canonical == "Content-Length":
            lengths.append(value)
        items.append((canonical, value))

    rest = data[body_start:]
    body = rest
    if lengths:
        first = lengths[0]
        if not (first.isascii() and first.isdigit()) or len(first) > 10:
            error = error or ParseError(f"Malformed Content-Length {first!r}")
        elif all(length == first for length in lengths):
            size = int(first)
            if size > len(rest):
                error = error or ParseError(
                    f"Content-Length {size} larger than the {len(rest)} octets received"
                )
            else:
                body = rest[:size]

    message: Request | Response
    if start[:4].upper() == "SIP/":
        sm = _STATUS_LINE.fullmatch(start)
        if sm is None:
            raise ParseError(f"Malformed Status-Line {start[:80]!r}")
        if sm[1].upper() != "SIP/2.0":
            raise VersionNotSupported(f"Unsupported SIP version {sm[1]!r}")
        if error is not None:
            raise error
        message = Response.__new__(Response)
        message.status = int(sm[2])
        message.reason = sm[3] or ""
    else:
        rm = _REQUEST_LINE.fullmatch(start)
        if rm is None:
            rm = _LOOSE_REQUEST_LINE.fullmatch(start)
            if rm is None:
                raise ParseError(f"Malformed Request-Line {start[:80]!r}")
            # Method SP Request-URI SP SIP-Version: single spaces, no LWS or <> in the URI
            # (RFC 4475 sections 3.1.2.7 to 3.1.2.10).
            error = ParseError(f"Malformed Request-Line {start[:80]!r}")
        if rm[3].upper() != "SIP/2.0":
            # RFC 3261 section 8.2.1 ... 21.5.6: 505 for a version we do not speak.
            error = VersionNotSupported(f"Unsupported SIP version {rm[3]!r}")
        message = Request.__new__(Request)
        message.method = rm[1]
        message.uri = rm[2]
    message.version = "SIP/2.0"
    message.headers = Headers._trusted(items)
    message.body = body
    if error is not None:
        if isinstance(message, Request):
            error.request = message
        raise error
    return message


def _untagged(to: str) -> bool:
    try:
        return NameAddr.parse(to).tag is None
    except ParseError:
        return False


def response_for(
    request: Request,
    status: int,
    reason: str = "",
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
) -> Response:
    """A response to ``request`` built as RFC 3261 section 8.2.6.2 says.

    Via (every value, in order), From, Call-ID and CSeq are copied; To too, with ``to_tag``
    added when given and the To has no tag yet, never on a 100 (a 100 Trying carries no tag).
    A 100 also copies Timestamp (section 8.2.6.1). ``headers`` are appended.
    It never raises on a malformed request, since it answers those too: a To that cannot be
    parsed is copied as it is, without a tag.

    Record-Route, which a dialog-creating 2xx or 101-199 copies (section 12.1.1), is left to
    the dialog layer. An ACK is never answered (section 17.2.3): do not call this for one.
    """
    items: list[tuple[str, str]] = []
    for name, value in request.headers:
        if name in ("Via", "From", "Call-ID", "CSeq"):
            items.append((name, value))
        elif name == "To":
            if to_tag is not None and status != 100 and _untagged(value):
                items.append((name, f"{value};tag={to_tag}"))
            else:
                items.append((name, value))
        elif name == "Timestamp" and status == 100:
            items.append((name, value))
    response = Response(status, reason, Headers._trusted(items))
    for name, value in headers:
        response.headers.add(name, value)
    return response
