"""Typed views of the header fields every layer reads: Via, From, To, Call-ID, CSeq ...

``Message`` inherits them. Each is parsed from the header text on each access, so it follows
any change to ``headers``, and raises ``ParseError`` (400) naming the header when that header
is missing or malformed.
"""

from __future__ import annotations

import re

from gateway.sip.errors import ParseError
from gateway.sip.fields import Headers
from gateway.sip.headers import TOKEN, CSeq, NameAddr, Via, split_header_list

# callid = word [ "@" word ] ; word = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" /
# "`" / "'" / "~" / "(" / ")" / "<" / ">" / ":" / "\" / DQUOTE / "/" / "[" / "]" / "?" / "{" / "}")
# Leniency: any visible ASCII, since some stacks put base64 ("=") or ";" in their Call-IDs; what
# matters is that it holds no whitespace and compares byte for byte.
_CALL_ID = re.compile(r"[!-~]+")
# media-type = m-type SLASH m-subtype *(SEMI m-parameter) ; SLASH = SWS "/" SWS
_MEDIA_TYPE = re.compile(rf"({TOKEN})[ \t]*/[ \t]*({TOKEN})[ \t]*(?:;|$)")


class HeaderViews:
    """The typed header views of a message (a mixin: the class provides ``headers``)."""

    __slots__ = ()

    headers: Headers

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise ParseError(f"Missing {name} header")
        return value

    @property
    def via(self) -> list[Via]:
        """Every Via value, top first (section 20.42)."""
        values = self.headers.get_all("Via")
        if not values:
            raise ParseError("Missing Via header")
        return [Via.parse(value) for value in values]

    @property
    def top_via(self) -> Via:
        """The topmost Via value (the one this element put, or the one to answer to)."""
        first = self._required("Via")
        if "," in first:
            values = split_header_list(first)
            first = values[0] if values else first
        return Via.parse(first)

    @property
    def call_id(self) -> str:
        """The Call-ID (section 20.8): ``word [ "@" word ]``."""
        value = self._required("Call-ID")
        if _CALL_ID.fullmatch(value) is None:
            raise ParseError(f"Malformed Call-ID header {value!r}")
        return value

    @property
    def cseq(self) -> CSeq:
        """The CSeq (section 20.16)."""
        return CSeq.parse(self._required("CSeq"))

    @property
    def from_(self) -> NameAddr:
        """The From header (section 20.20)."""
        return NameAddr.parse(self._required("From"))

    @property
    def to(self) -> NameAddr:
        """The To header (section 20.39)."""
        return NameAddr.parse(self._required("To"))

    @property
    def content_type(self) -> str | None:
        """The media type of Content-Type, lower-cased and without parameters, or ``None``."""
        value = self.headers.get("Content-Type")
        if value is None:
            return None
        m = _MEDIA_TYPE.match(value)
        if m is None:
            raise ParseError(f"Malformed Content-Type header {value!r}")
        return f"{m[1]}/{m[2]}".lower()

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards (section 20.22, 0 to 255), or ``None`` when absent."""
        value = self.headers.get("Max-Forwards")
        if value is None:
            return None
        # 1*DIGIT: leading zeros are allowed (RFC 4475 section 3.1.1.1 sends "0068").
        if not (value.isascii() and value.isdigit()) or len(value) > 10 or int(value) > 255:
            raise ParseError(f"Malformed Max-Forwards header {value!r}")
        return int(value)

    @property
    def contact(self) -> list[NameAddr]:
        """Every Contact value; empty when absent or ``*`` (a REGISTER that removes all)."""
        return [NameAddr.parse(v) for v in self.headers.get_all("Contact") if v != "*"]

    @property
    def record_route(self) -> list[NameAddr]:
        """Every Record-Route value, top first (section 20.30)."""
        return [NameAddr.parse(v) for v in self.headers.get_all("Record-Route")]

    @property
    def route(self) -> list[NameAddr]:
        """Every Route value, top first (section 20.34)."""
        return [NameAddr.parse(v) for v in self.headers.get_all("Route")]
