"""SIP and SIPS URIs (RFC 3261 section 19.1): parse and format.

Escapes are kept as they were written (``%40`` stays ``%40``) so that a URI formats back to the
same text: comparison rules (section 19.1.4) are for the layers that compare.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from gateway.sip.errors import ParseError, UnsupportedURIScheme

# scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )          (RFC 3986 section 3.1)
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+\-.]*):")

# escaped = "%" HEXDIG HEXDIG
# unreserved = alphanum / mark ; mark = "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")"
# user = 1*( unreserved / escaped / user-unreserved )
# user-unreserved = "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"
_USER = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+")
# password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
_PASSWORD = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{2})*")
# host = hostname / IPv4address / IPv6reference
# hostname = *( domainlabel "." ) toplabel [ "." ] ; IPv6reference = "[" IPv6address "]"
# port = 1*DIGIT
# Leniency: "_" is accepted inside host labels, as container and cloud host names carry it.
_HOSTPORT = re.compile(
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9\-_.]*[A-Za-z0-9.])?)(?::([0-9]{1,5}))?"
)
# uri-parameter = transport-param / user-param / method-param / ttl-param / maddr-param
#                 / lr-param / other-param
# other-param = pname [ "=" pvalue ] ; pname = 1*paramchar ; pvalue = 1*paramchar
# paramchar = param-unreserved / unreserved / escaped
# param-unreserved = "[" / "]" / "/" / ":" / "&" / "+" / "$"
_PARAM = re.compile(
    r";((?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]|%[0-9A-Fa-f]{2})+)"
    r"(?:=((?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]|%[0-9A-Fa-f]{2})+))?"
)
# headers = "?" header *( "&" header ) ; header = hname "=" hvalue
# hname = 1*( hnv-unreserved / unreserved / escaped ) ; hvalue = *( hnv-unreserved / ... )
# hnv-unreserved = "[" / "]" / "/" / "?" / ":" / "+" / "$"
_HEADER = re.compile(
    r"((?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|%[0-9A-Fa-f]{2})+)"
    r"=((?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|%[0-9A-Fa-f]{2})*)"
)

_DEFAULT_PORTS = {"sip": 5060, "sips": 5061}

# escaped = "%" HEXDIG HEXDIG
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
# unreserved = alphanum / mark: the characters whose escaped form is equivalent (19.1.4)
_UNRESERVED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()")
# 19.1.4: these parameters, when in one URI only, make the URIs differ (transport too, by the
# section's examples: "can resolve to different transports").
_SIGNIFICANT_PARAMS = ("user", "ttl", "method", "maddr", "transport")


def _unescape_unreserved(text: str) -> str:
    """Escapes of unreserved characters resolved, other escapes upper-cased (section 19.1.4)."""

    def resolve(m: re.Match[str]) -> str:
        char = chr(int(m[1], 16))
        return char if char in _UNRESERVED else "%" + m[1].upper()

    return _ESCAPE.sub(resolve, text) if "%" in text else text


def _same_text(a: str | None, b: str | None, *, fold: bool) -> bool:
    if a is None or b is None:
        return a is b
    a, b = _unescape_unreserved(a), _unescape_unreserved(b)
    return a.lower() == b.lower() if fold else a == b


def _host_key(host: str) -> str:
    if host.startswith("["):
        try:
            return "[" + str(ipaddress.IPv6Address(host[1:-1])) + "]"
        except ValueError:
            return host.lower()
    return host.lower()


@dataclass
class SipURI:
    """A ``sip:`` or ``sips:`` URI (RFC 3261 section 19.1.1).

    ``params`` keys are lower-cased (parameter names are case-insensitive, section 19.1.4), values
    keep their case; ``None`` is a parameter without a value (``;lr``). ``host`` keeps the
    brackets of an IPv6 reference (``[2001:db8::1]``).
    """

    scheme: str
    user: str | None
    password: str | None
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> SipURI:
        """Parse ``text``.

        Raises ``UnsupportedURIScheme`` (416) for a well-formed URI of another scheme (``tel:``,
        ``http:``), ``ParseError`` (400) for anything malformed.
        """
        m = _SCHEME.match(text)
        if m is None:
            raise ParseError(f"Malformed URI (no scheme): {text!r}")
        scheme = m[1].lower()
        if scheme not in _DEFAULT_PORTS:
            # RFC 3261 section 8.2.2.1: a scheme the UAS does not support -> 416.
            raise UnsupportedURIScheme(f"Unsupported URI scheme {m[1]!r}")
        rest = text[m.end() :]
        user = password = None
        userinfo, at, hostpart = rest.rpartition("@")
        if at:
            # Neither host, parameters nor headers may hold an unescaped "@", so the last one
            # ends the userinfo, and the first ":" of the userinfo starts the password
            # (a user part has no ":").
            user, colon, pw = userinfo.partition(":")
            if _USER.fullmatch(user) is None:
                raise ParseError(f"Malformed user part in URI {text!r}")
            if colon:
                if _PASSWORD.fullmatch(pw) is None:
                    raise ParseError(f"Malformed password in URI {text!r}")
                password = pw
        hm = _HOSTPORT.match(hostpart)
        if hm is None:
            raise ParseError(f"Malformed host in URI {text!r}")
        host = hm[1]
        port = None
        if hm[2] is not None:
            port = int(hm[2])
            if port > 65535:
                raise ParseError(f"Port out of range in URI {text!r}")
        pos = hm.end()
        params: dict[str, str | None] = {}
        while pos < len(hostpart) and hostpart[pos] == ";":
            pm = _PARAM.match(hostpart, pos)
            if pm is None:
                raise ParseError(f"Malformed parameter in URI {text!r}")
            params[pm[1].lower()] = pm[2]
            pos = pm.end()
        headers: dict[str, str] = {}
        if pos < len(hostpart) and hostpart[pos] == "?":
            for item in hostpart[pos + 1 :].split("&"):
                hdr = _HEADER.fullmatch(item)
                if hdr is None:
                    raise ParseError(f"Malformed header in URI {text!r}")
                headers[hdr[1]] = hdr[2]
            pos = len(hostpart)
        if pos != len(hostpart):
            raise ParseError(f"Malformed URI {text!r}")
        return cls(scheme, user, password, host, port, params, headers)

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out += [":", self.password]
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out += [":", str(self.port)]
        for name, value in self.params.items():
            out += [";", name] if value is None else [";", name, "=", value]
        if self.headers:
            out += ["?", "&".join(f"{k}={v}" for k, v in self.headers.items())]
        return "".join(out)

    def equivalent(self, other: SipURI) -> bool:
        """Whether the two URIs are equal by the rules of RFC 3261 section 19.1.4.

        Userinfo is case-sensitive, everything else is not; escapes of unreserved characters
        equal the characters; a port, or a user, ttl, method, maddr or transport parameter in
        one URI only makes them differ; other parameters in one URI only are ignored; headers
        must all be in both.
        """
        if self.scheme != other.scheme or self.port != other.port:
            return False
        if _host_key(self.host) != _host_key(other.host):
            return False
        if not _same_text(self.user, other.user, fold=False):
            return False
        if not _same_text(self.password, other.password, fold=False):
            return False
        for name in self.params.keys() | other.params.keys():
            if name in self.params and name in other.params:
                if not _same_text(self.params[name], other.params[name], fold=True):
                    return False
            elif name in _SIGNIFICANT_PARAMS:
                return False

        def header_key(headers: dict[str, str]) -> dict[str, str]:
            return {
                _unescape_unreserved(k).lower(): _unescape_unreserved(v).lower()
                for k, v in headers.items()
            }

        return header_key(self.headers) == header_key(other.headers)

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter, lower-cased, or ``None`` when absent.

        Absence matters: RFC 3263 section 4.1 then chooses the transport by DNS lookups; a caller
        that does not resolve uses ``"tls"`` for ``sips`` and ``"udp"`` otherwise.
        """
        value = self.params.get("transport")
        return value.lower() if value else None

    @property
    def default_port(self) -> int:
        """The port to use when none is given: 5061 for ``sips``, 5060 for ``sip`` (19.1.2)."""
        return _DEFAULT_PORTS[self.scheme]

    @property
    def host_address(self) -> str:
        """The host without IPv6 brackets, as a socket address wants it."""
        if self.host.startswith("["):
            return self.host[1:-1]
        return self.host


def uri_scheme(text: str) -> str | None:
    """The lower-cased scheme of any absolute URI (``sip``, ``tel``, ``soap.beep``), or ``None``."""
    m = _SCHEME.match(text)
    return m[1].lower() if m else None
