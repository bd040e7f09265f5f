"""Header field names and typed views (Via, NameAddr, CSeq), parsed on demand.

A message keeps its header fields as text; these views are built only when a layer asks for
them, so a message that is merely relayed or dropped never pays for them. The grammar is that
of RFC 3261 section 25, each rule quoted above the expression that implements it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gateway.sip.errors import ParseError
from gateway.sip.uri import SipURI

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" )
TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
TOKEN_RE = re.compile(TOKEN)
# quoted-string = SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
# qdtext = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII
# quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
QUOTED = r'"(?:[^"\\\r\n]|\\[^\r\n])*"'
_QUOTED_RE = re.compile(QUOTED)
_QUOTED_PAIR = re.compile(r"\\([^\r\n])")
# gen-value = token / host / quoted-string   (host adds ":" "[" "]" for IPv6 to the token set)
# generic-param = token [ EQUAL gen-value ] ; SEMI = SWS ";" SWS ; EQUAL = SWS "=" SWS
# (Whitespace is matched before each ";" only, and the repetition is possessive, so that no
# input makes the matcher backtrack over the same spaces twice.)
_PARAM_RULE = rf"[ \t]*;[ \t]*({TOKEN})(?:[ \t]*=[ \t]*([A-Za-z0-9\-.!%*_+`'~:\[\]]+|{QUOTED}))?"
_PARAM = re.compile(_PARAM_RULE)
_PARAMS = re.compile(rf"(?:{_PARAM_RULE})*+[ \t]*+")

# RFC 3261 section 7.3.3 and the extensions' registrations (IANA "Header Fields" registry).
COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

# Names whose usual spelling is not plain Title-Case by "-".
_SPECIAL_NAMES = (
    "Call-ID",
    "CSeq",
    "WWW-Authenticate",
    "MIME-Version",
    "RAck",
    "RSeq",
    "SIP-ETag",
    "SIP-If-Match",
    "Min-SE",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Remote-Party-ID",
    "History-Info",
)
_KNOWN: dict[str, str] = {name.lower(): name for name in _SPECIAL_NAMES}
_KNOWN.update(COMPACT_FORMS)
_CACHE: dict[str, str] = {}
_CACHE_MAX = 2048  # bounded: a peer must not grow it with made-up header names

# Header fields whose grammar is a comma-separated list (RFC 3261 section 7.3.1: such fields may
# be split over several lines or joined in one). Authorization and friends are NOT in it: their
# commas separate auth-params; Date has a comma of its own.
LIST_HEADERS: frozenset[str] = frozenset(
    {
        "Accept",
        "Accept-Contact",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Call-Info",
        "Contact",
        "Content-Encoding",
        "Content-Language",
        "Error-Info",
        "History-Info",
        "In-Reply-To",
        "P-Asserted-Identity",
        "P-Preferred-Identity",
        "Path",
        "Proxy-Require",
        "Reason",
        "Record-Route",
        "Reject-Contact",
        "Request-Disposition",
        "Require",
        "Route",
        "Service-Route",
        "Supported",
        "Unsupported",
        "Via",
        "Warning",
    }
)


def canonical_name(name: str) -> str:
    """The usual spelling of a header field name: compact forms expanded, case normalised.

    ``"call-id"`` and ``"i"`` give ``"Call-ID"``, ``"cseq"`` gives ``"CSeq"``; an unknown name is
    Title-Cased by ``-`` (header names are case-insensitive, RFC 3261 section 7.3.1).
    """
    cached = _CACHE.get(name)
    if cached is not None:
        return cached
    lower = name.lower()
    canonical = _KNOWN.get(lower)
    if canonical is None:
        canonical = "-".join(part[:1].upper() + part[1:] for part in lower.split("-"))
    if len(_CACHE) < _CACHE_MAX:
        _CACHE[name] = canonical
    return canonical


def split_header_list(value: str) -> list[str]:
    """Split a header value on the commas that are outside quoted strings and ``<...>``.

    Items are stripped; empty items are dropped (RFC 7230 section 7 asks list parsers to accept
    them). Raises ``ParseError`` on an unterminated quoted string or ``<``.
    """
    if "," not in value:
        stripped = value.strip(" \t")
        return [stripped] if stripped else []
    if '"' not in value and "<" not in value:
        return [item for item in (s.strip(" \t") for s in value.split(",")) if item]
    items: list[str] = []
    start = 0
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if ch == '"':
            m = _QUOTED_RE.match(value, i)
            if m is None:
                raise ParseError(f"Unterminated quoted string in {value!r}")
            i = m.end()
            continue
        if ch == "<":
            end = value.find(">", i)
            if end < 0:
                raise ParseError(f"Unterminated '<' in {value!r}")
            i = end + 1
            continue
        if ch == ",":
            items.append(value[start:i])
            start = i + 1
        i += 1
    items.append(value[start:])
    return [item for item in (s.strip(" \t") for s in items) if item]


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ``*( SEMI generic-param )``; the leading ``;`` may be omitted.

    Keys are lower-cased (parameter names are case-insensitive); values keep their case and, for
    a quoted-string, their quotes (see ``unquote``). ``None`` is a parameter without a value.
    """
    stripped = text.lstrip(" \t")
    if stripped and stripped[0] != ";":
        stripped = ";" + stripped
    return _params(stripped)


def _params(text: str) -> dict[str, str | None]:
    """``*( SEMI generic-param )`` with every ``;`` present, as after a Via or a name-addr."""
    if not text:
        return {}
    if _PARAMS.fullmatch(text) is None:
        raise ParseError(f"Malformed parameters {text!r}")
    # A value is one or more characters (a quoted one at least its quotes): "" means none.
    return {name.lower(): value or None for name, value in _PARAM.findall(text)}


def format_params(params: dict[str, str | None]) -> str:
    """``;name=value;flag`` for ``params`` (the inverse of ``parse_params``)."""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def unquote(value: str) -> str:
    """The content of a quoted-string with its quoted-pairs resolved; other text unchanged."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return _QUOTED_PAIR.sub(r"\1", value[1:-1])
    return value


def quote(text: str) -> str:
    """``text`` as a quoted-string: ``"`` and ``\\`` and control characters escaped.

    CR and LF cannot be carried even as quoted-pairs (section 25.1), so they become spaces.
    """
    out = ['"']
    for ch in text:
        if ch in "\r\n":
            out.append(" ")
        elif ch in '"\\' or (ord(ch) < 0x20 and ch != "\t") or ch == "\x7f":
            out += ["\\", ch]
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


# via-parm = sent-protocol LWS sent-by *( SEMI via-params )
# sent-protocol = protocol-name SLASH protocol-version SLASH transport
# protocol-name = "SIP" / token ; protocol-version = token ; SLASH = SWS "/" SWS
# transport = "UDP" / "TCP" / "TLS" / "SCTP" / other-transport
# sent-by = host [ COLON port ] ; COLON = SWS ":" SWS   ("_" accepted in host labels, as in uri.py)
_VIA = re.compile(
    rf"[ \t]*({TOKEN})[ \t]*/[ \t]*({TOKEN})[ \t]*/[ \t]*({TOKEN})[ \t]+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9\-_.]*[A-Za-z0-9.])?)"
    r"(?:[ \t]*:[ \t]*([0-9]{1,5}))?"
)


@dataclass
class Via:
    """One via-parm (RFC 3261 section 20.42); ``host`` keeps IPv6 brackets."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str) -> Via:
        """Parse one via-parm (not a comma-separated list: see ``parse_via_list``)."""
        m = _VIA.match(value)
        if m is None:
            raise ParseError(f"Malformed Via header {value!r}")
        if m[1].upper() != "SIP" or m[2] != "2.0":
            raise ParseError(f"Via sent-protocol is not SIP/2.0: {value!r}")
        port = None
        if m[5] is not None:
            port = int(m[5])
            if port > 65535:
                raise ParseError(f"Via port out of range: {value!r}")
        try:
            params = _params(value[m.end() :])
        except ParseError:
            raise ParseError(f"Malformed Via parameters {value!r}") from None
        return cls(m[3].upper(), m[4], port, params)

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"SIP/2.0/{self.transport} {self.host}{port}{format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        """The ``branch`` parameter (section 8.1.1.7), or ``None``."""
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        """The ``received`` parameter (section 18.2.1), or ``None``."""
        return self.params.get("received")

    @property
    def rport(self) -> int | bool | None:
        """RFC 3581: ``None`` when absent, ``True`` when present without value, else the port."""
        if "rport" not in self.params:
            return None
        value = self.params["rport"]
        if value is None:
            return True
        if not value.isdigit() or len(value) > 5:
            raise ParseError(f"Malformed rport {value!r}")
        return int(value)

    @property
    def sent_by(self) -> str:
        """``host[:port]`` as written."""
        return self.host if self.port is None else f"{self.host}:{self.port}"


def parse_via_list(value: str) -> list[Via]:
    """Every via-parm of a Via header value, top first."""
    return [Via.parse(item) for item in split_header_list(value)]


# display-name = *(token LWS)/ quoted-string
# Leniency: non-ASCII letters are accepted in an unquoted display name, as real user agents
# send them ("José <sip:...>"); commas, quotes and brackets still are not (RFC 4475 3.1.2.15).
_DISPLAY_WORD = r"[A-Za-z0-9\-.!%*_+`'~\u0080-\U0010ffff]+"
_TOKEN_DISPLAY = re.compile(rf"{_DISPLAY_WORD}(?:[ \t]+{_DISPLAY_WORD})*")
# addr-spec = SIP-URI / SIPS-URI / absoluteURI
# absoluteURI = scheme ":" ( hier-part / opaque-part )
# (no whitespace, and no "<", ">" or DQUOTE, which uric does not allow)
_ADDR_SPEC = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*:[^\s<>\"]+")


@dataclass
class NameAddr:
    """A name-addr or addr-spec with header parameters: From, To, Contact, Route, Record-Route.

    ``uri`` is the URI text as written; ``display`` the display name with quoting removed.
    """

    display: str | None
    uri: str
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str) -> NameAddr:
        """Parse ``( name-addr / addr-spec ) *( SEMI generic-param )``.

        In the addr-spec form every ``;`` parameter is a header parameter (RFC 3261 section
        20.10), and a URI with a comma, question mark or semicolon MUST be in name-addr form.
        """
        s = value.strip(" \t")
        display: str | None = None
        if s.startswith('"'):
            qm = _QUOTED_RE.match(s)
            if qm is None:
                raise ParseError(f"Unterminated quoted string in {value!r}")
            display = _QUOTED_PAIR.sub(r"\1", qm[0][1:-1])
            s = s[qm.end() :].lstrip(" \t")
            if not s.startswith("<"):
                raise ParseError(f"Expected '<' after display name in {value!r}")
        lt = s.find("<")
        if lt >= 0:
            if display is None:
                token_display = s[:lt].strip(" \t")
                if token_display:
                    if _TOKEN_DISPLAY.fullmatch(token_display) is None:
                        raise ParseError(f"Unquoted display name is not tokens: {value!r}")
                    display = " ".join(token_display.split())
            gt = s.find(">", lt)
            if gt < 0:
                raise ParseError(f"Unterminated '<' in {value!r}")
            uri = s[lt + 1 : gt]
            # name-addr = [ display-name ] LAQUOT addr-spec RAQUOT ; LAQUOT = SWS "<" :
            # no whitespace inside the brackets (RFC 4475 section 3.1.2.14).
            if _ADDR_SPEC.fullmatch(uri) is None:
                raise ParseError(f"Malformed URI in {value!r}")
            rest = s[gt + 1 :]
        else:
            uri, semi, rest = s.partition(";")
            uri = uri.rstrip(" \t")
            if _ADDR_SPEC.fullmatch(uri) is None or "," in uri or "?" in uri:
                raise ParseError(f"Malformed addr-spec {value!r}")
            rest = semi + rest
        return cls(display, uri, _params(rest))

    def __str__(self) -> str:
        display = "" if self.display is None else quote(self.display) + " "
        return f"{display}<{self.uri}>{format_params(self.params)}"

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (section 19.3), or ``None``."""
        return self.params.get("tag")

    def sip_uri(self) -> SipURI:
        """The URI parsed as SIP; raises ``UnsupportedURIScheme`` for another scheme."""
        return SipURI.parse(self.uri)


# CSeq = "CSeq" HCOLON 1*DIGIT LWS Method
_CSEQ = re.compile(rf"[ \t]*([0-9]{{1,10}})[ \t]+({TOKEN})[ \t]*")


@dataclass(frozen=True)
class CSeq:
    """The CSeq header (RFC 3261 section 20.16)."""

    seq: int
    method: str

    @classmethod
    def parse(cls, value: str) -> CSeq:
        """Parse ``1*DIGIT LWS Method``; the number must fit 32 bits unsigned (section 20.16)."""
        m = _CSEQ.fullmatch(value)
        if m is None:
            raise ParseError(f"Malformed CSeq header {value!r}")
        seq = int(m[1])
        if seq > 0xFFFFFFFF:
            raise ParseError(f"CSeq number too large: {value!r}")
        return cls(seq, m[2])

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"
