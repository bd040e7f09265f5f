"""HTTP digest authentication for SIP, mostly the UAC side.

RFC 3261 section 22 (SIP's use of digest), RFC 2617 (digest with qop), RFC 7616 (SHA-256,
SHA-512/256, ``-sess`` variants) and RFC 8760 (several challenges in order of preference).

A trunk that answers 401 sends ``WWW-Authenticate`` and expects ``Authorization``; a proxy that
answers 407 sends ``Proxy-Authenticate`` and expects ``Proxy-Authorization`` (section 22.3).
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.sip.errors import ParseError

__all__ = [
    "ALGORITHMS",
    "Challenge",
    "DigestError",
    "DigestSession",
    "authorization",
    "check_authorization",
    "choose_challenge",
    "parse_auth_params",
]


# RFC 7616 section 6.1 algorithm names -> hashlib names. MD5 stays for backward compatibility
# (RFC 8760 section 2.1); SHA-512/256 only where OpenSSL provides it.
_HASHLIB_NAMES = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}
_KNOWN_ALGORITHMS = tuple(n for base in _HASHLIB_NAMES for n in (base, f"{base}-sess"))


def _available(name: str) -> bool:
    try:
        hashlib.new(name, b"", usedforsecurity=False)
    except ValueError:
        return False
    return True


ALGORITHMS: tuple[str, ...] = tuple(
    n for n in _KNOWN_ALGORITHMS if _available(_HASHLIB_NAMES[n.removesuffix("-sess")])
)
"""The algorithm names this module can answer, canonical spelling (RFC 7616 section 6.1)."""


def _hasher(algorithm: str) -> Callable[[bytes], str]:
    if algorithm not in ALGORITHMS:
        raise DigestError(f"unsupported digest algorithm {algorithm!r}")
    name = _HASHLIB_NAMES[algorithm.removesuffix("-sess")]
    # usedforsecurity=False: digest's MD5 is a protocol requirement, not our choice of hash.
    return lambda data: hashlib.new(name, data, usedforsecurity=False).hexdigest()


# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
# (RFC 3261 section 25.1). Proxies in the wild also put "/" , ":" and "@" in unquoted values,
# so token *values* are read up to the next separator instead of being checked char by char.
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
_LWS = " \t\r\n"


class DigestError(ValueError):
    """A challenge this module cannot answer (unsupported algorithm or qop, bad nc)."""


def parse_auth_params(text: str) -> dict[str, str]:
    """Parse ``auth-param *(COMMA auth-param)`` into a dict with lower-case names.

    RFC 3261 section 25.1: ``auth-param = auth-param-name EQUAL ( token / quoted-string )``;
    quoted strings may hold commas and ``quoted-pair`` escapes. Empty list elements (``a=1,,b=2``)
    are skipped as RFC 7230 section 7 asks of list recipients.
    """
    params: dict[str, str] = {}
    i, n = 0, len(text)
    while True:
        while i < n and (text[i] in _LWS or text[i] == ","):
            i += 1
        if i >= n:
            return params
        start = i
        while i < n and text[i] in _TOKEN_CHARS:
            i += 1
        name = text[start:i].lower()
        if not name:
            raise ParseError(f"auth-param name expected at {text[start : start + 10]!r}")
        while i < n and text[i] in _LWS:
            i += 1
        if i >= n or text[i] != "=":
            raise ParseError(f"auth-param {name!r} has no '='")
        i += 1
        while i < n and text[i] in _LWS:
            i += 1
        if i < n and text[i] == '"':
            value, i = _quoted_string(text, i)
        else:
            start = i
            while i < n and text[i] not in _LWS and text[i] not in ',"':
                i += 1
            value = text[start:i]
            if not value:
                raise ParseError(f"auth-param {name!r} has an empty value")
        if name in params:
            # RFC 7616 section 3.3: each parameter at most once; a duplicate makes it ambiguous.
            raise ParseError(f"auth-param {name!r} appears twice")
        params[name] = value
        while i < n and text[i] in _LWS:
            i += 1
        if i < n and text[i] != ",":
            raise ParseError(f"',' expected after auth-param {name!r}")


def _quoted_string(text: str, i: int) -> tuple[str, int]:
    """Read the quoted-string opening at ``text[i]``; return its value and the next index."""
    out: list[str] = []
    i += 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\":
            # quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
            if i + 1 >= n:
                break
            out.append(text[i + 1])
            i += 2
            continue
        out.append(c)
        i += 1
    raise ParseError("unterminated quoted-string in auth-params")


def _quote(value: str) -> str:
    """Format ``value`` as a quoted-string, escaping ``"`` and ``\\`` (RFC 3261 section 25.1)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _split_scheme(value: str) -> tuple[str, str]:
    value = value.strip(_LWS)
    for k, c in enumerate(value):
        if c in _LWS:
            return value[:k], value[k:]
    return value, ""


def _credentials(value: str) -> dict[str, str] | None:
    """The auth-params of a Digest ``Authorization`` value; None if it is not one."""
    scheme, rest = _split_scheme(value)
    if scheme.lower() != "digest":
        return None
    try:
        return parse_auth_params(rest)
    except ParseError:
        return None


def _canonical_algorithm(name: str) -> str:
    for known in _KNOWN_ALGORITHMS:
        if known.lower() == name.lower():
            return known
    return name


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` or ``Proxy-Authenticate`` digest challenge.

    RFC 3261 section 25.1 ``digest-cln``; RFC 7616 section 3.3. ``algorithm`` is the canonical
    spelling when known ("MD5" when absent, RFC 2617 section 3.2.1) and kept as sent otherwise;
    ``qop`` holds the offered options in lower case, empty when the server sent none.
    """

    scheme: str
    realm: str
    nonce: str
    opaque: str | None = None
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    stale: bool = False
    domain: str | None = None

    @classmethod
    def parse(cls, value: str) -> Challenge:
        """Parse a challenge header value such as ``Digest realm="x", nonce="y"``."""
        scheme, rest = _split_scheme(value)
        if scheme.lower() != "digest":
            raise ParseError(f"unsupported authentication scheme {scheme or value!r}")
        params = parse_auth_params(rest)
        for required in ("realm", "nonce"):
            if required not in params:
                raise ParseError(f"digest challenge without {required}")
        qop = tuple(
            q.strip(_LWS).lower() for q in params.get("qop", "").split(",") if q.strip(_LWS)
        )
        return cls(
            scheme="Digest",
            realm=params["realm"],
            nonce=params["nonce"],
            opaque=params.get("opaque"),
            algorithm=_canonical_algorithm(params.get("algorithm", "MD5")),
            qop=qop,
            # RFC 7616 section 3.3: "stale" is "true" case-insensitively; anything else is false.
            stale=params.get("stale", "").lower() == "true",
            domain=params.get("domain"),
        )

    @property
    def supported(self) -> bool:
        """Whether this module can answer the challenge (algorithm and qop known).

        A "-sess" algorithm needs a qop: its session key holds the cnonce, which RFC 2617
        section 3.2.2 forbids sending without qop.
        """
        if self.algorithm not in ALGORITHMS:
            return False
        if not self.qop:
            return not self.algorithm.endswith("-sess")
        return "auth" in self.qop or "auth-int" in self.qop


def choose_challenge(values: Sequence[str]) -> Challenge | None:
    """Pick the first challenge we can answer among several header values.

    RFC 8760 section 2.4: a server offering several algorithms sends one challenge per algorithm,
    most preferred first, and the client uses the first one it supports. Values that do not parse
    (another scheme such as Basic, a malformed challenge) are skipped.
    """
    for value in values:
        try:
            challenge = Challenge.parse(value)
        except ParseError:
            continue
        if challenge.supported:
            return challenge
    return None


def _response(
    algorithm: str,
    a1: str,
    a2: str,
    body: bytes,
    *,
    nonce: str,
    qop: str | None,
    nc: str,
    cnonce: str,
) -> str:
    """The ``request-digest`` of RFC 2617 section 3.2.2.1 and RFC 7616 section 3.4.1."""
    h = _hasher(algorithm)

    def hs(text: str) -> str:
        return h(text.encode("utf-8"))

    ha1 = hs(a1)  # A1 = username ":" realm ":" passwd
    if algorithm.endswith("-sess"):
        # RFC 7616 section 3.4.2: A1 = H(user:realm:pass) ":" nonce ":" cnonce
        ha1 = hs(f"{ha1}:{nonce}:{cnonce}")
    # RFC 7616 section 3.4.3: with auth-int, A2 = Method ":" request-uri ":" H(entity-body)
    ha2 = hs(f"{a2}:{h(body)}" if qop == "auth-int" else a2)
    if qop is None:
        if algorithm.endswith("-sess"):
            raise DigestError(f"{algorithm} needs qop")  # no cnonce is sent without qop
        # RFC 2069 compatibility (RFC 2617 section 3.2.2.1), still seen on old SIP servers.
        return hs(f"{ha1}:{nonce}:{ha2}")
    return hs(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def _choose_qop(offered: tuple[str, ...]) -> str | None:
    # "auth" unless only "auth-int" is offered: hashing the body breaks on any proxy that
    # rewrites SDP, and "auth" is the option RFC 8760 requires every UA to support.
    if not offered:
        return None
    return "auth" if "auth" in offered else "auth-int"


def authorization(
    challenge: Challenge,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    nc: int,
    cnonce: str,
    body: bytes = b"",
) -> str:
    """The ``Authorization`` / ``Proxy-Authorization`` value answering ``challenge``.

    RFC 3261 section 22.4: ``uri`` is the Request-URI of the request being authenticated.
    With qop offered, "auth" is preferred and "auth-int" (a hash of ``body``) used only when
    "auth" is not offered; ``nc`` is written as 8 hex digits (RFC 2617 section 3.2.2).
    """
    if not 1 <= nc <= 0xFFFFFFFF:
        raise DigestError(f"nonce count {nc} out of range")
    if not challenge.supported:
        raise DigestError(f"cannot answer {challenge.algorithm} with qop {challenge.qop!r}")
    qop = _choose_qop(challenge.qop)
    nc_value = f"{nc:08x}"
    a1 = f"{username}:{challenge.realm}:{password}"
    a2 = f"{method}:{uri}"
    response = _response(
        challenge.algorithm,
        a1,
        a2,
        body,
        nonce=challenge.nonce,
        qop=qop,
        nc=nc_value,
        cnonce=cnonce,
    )
    parts = [
        f"username={_quote(username)}",
        f"realm={_quote(challenge.realm)}",
        f"nonce={_quote(challenge.nonce)}",
        f"uri={_quote(uri)}",
        f"response={_quote(response)}",
        f"algorithm={challenge.algorithm}",
    ]
    if qop is not None:
        # cnonce and nc MUST be sent when qop is, and MUST NOT be otherwise (RFC 2617 3.2.2).
        parts += [f"cnonce={_quote(cnonce)}", f"nc={nc_value}", f"qop={qop}"]
    if challenge.opaque is not None:
        # RFC 2617 section 3.2.2: opaque is returned unchanged.
        parts.append(f"opaque={_quote(challenge.opaque)}")
    return "Digest " + ", ".join(parts)


def check_authorization(
    value: str,
    *,
    method: str,
    password: str,
    realm: str,
    nonce_ok: Callable[[str], bool] | None = None,
    username: str | None = None,
    body: bytes = b"",
) -> bool:
    """Server side: whether an ``Authorization`` value proves knowledge of ``password``.

    For tests and the loopback test trunk. ``nonce_ok`` lets the caller reject nonces it did not
    issue or that expired; ``username``, when given, must match too. A malformed value is False.
    """
    params = _credentials(value)
    if params is None:
        return False
    try:
        user, got_realm, nonce = params["username"], params["realm"], params["nonce"]
        uri, response = params["uri"], params["response"]
    except KeyError:
        return False
    if got_realm != realm or (username is not None and user != username):
        return False
    if nonce_ok is not None and not nonce_ok(nonce):
        return False
    qop = params.get("qop")
    if qop is not None:
        qop = qop.lower()
        if qop not in ("auth", "auth-int") or "nc" not in params or "cnonce" not in params:
            return False
    try:
        algorithm = _canonical_algorithm(params.get("algorithm", "MD5"))
        nc, cnonce = params.get("nc", ""), params.get("cnonce", "")
        a1 = f"{user}:{realm}:{password}"
        expected = _response(
            algorithm, a1, f"{method}:{uri}", body, nonce=nonce, qop=qop, nc=nc, cnonce=cnonce
        )
    except DigestError:
        return False
    return hmac.compare_digest(expected.encode(), response.lower().encode("utf-8", "replace"))


_MAX_NONCES = 64
"""How many nonce counts a session remembers; older nonces are stale at any real server."""
_MAX_CALLS = 1024
"""How many calls' proxy challenges a session keeps if the caller never calls forget()."""

WWW_AUTHORIZATION = "Authorization"
PROXY_AUTHORIZATION = "Proxy-Authorization"


class DigestSession:
    """Digest credentials of one trunk, with the nonce counts and the challenges seen.

    Challenges are cached so that later requests carry credentials up front (:meth:`reuse`),
    within the limits of RFC 3261: a 401's challenge (section 22.2) may serve any later request
    to the trunk, while a 407's (section 22.3) only serves requests with the same Call-ID:
    "These credentials MUST NOT be cached across dialogs". Each reuse of a nonce carries the
    next nonce count (RFC 2617 section 3.2.2). Random cnonces come from the caller's ``rng``.
    """

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self._password = password
        # realm -> latest 401 challenge; a realm's newest challenge replaces older ones.
        self._www: dict[str, Challenge] = {}
        # Call-ID -> realm -> latest 407 challenge; insertion-ordered, oldest call evicted first.
        self._proxy: dict[str, dict[str, Challenge]] = {}
        # nonce -> last nonce count used; insertion-ordered so the oldest nonce is evicted first.
        self._nc: dict[str, int] = {}
        # nonce -> cnonce, for "-sess" algorithms whose session key embeds the first cnonce.
        self._sess_cnonce: dict[str, str] = {}

    def answer(
        self,
        challenge: Challenge,
        *,
        method: str,
        uri: str,
        rng: random.Random,
        body: bytes = b"",
        proxy: bool = False,
        call_id: str | None = None,
        rejected: Sequence[str] = (),
    ) -> str | None:
        """Answer ``challenge`` (from a 401, or a 407 when ``proxy``), or None to give up.

        ``rejected`` holds the ``Authorization`` (or ``Proxy-Authorization``) values that the
        challenged request carried, and ``call_id`` its Call-ID (needed to reuse a 407's
        challenge within the call). RFC 3261 section 22.1: "A UAC MUST NOT re-attempt requests
        with the credentials that have just been rejected (though the request may be retried if
        the nonce was stale)". So when the request already carried credentials for this realm
        and the server challenges again without ``stale=true``, the password is wrong: None,
        and the call fails with the 401 or 407. Rejected credentials that were sent up front
        (a nonce count above 1, on a nonce other than the one now offered) earn one fresh
        answer: the server merely forgot its nonce, e.g. after a restart.
        """
        if not challenge.supported:
            return None
        if isinstance(rejected, str):
            rejected = [rejected]  # a lone header value, not a sequence of characters
        if not challenge.stale and any(_proves_wrong(v, challenge) for v in rejected):
            return None
        if not proxy:
            self._www[challenge.realm] = challenge
        elif call_id is not None:
            calls = self._proxy.pop(call_id, {})
            calls[challenge.realm] = challenge
            self._proxy[call_id] = calls  # re-insert: most recently used last
            while len(self._proxy) > _MAX_CALLS:
                del self._proxy[next(iter(self._proxy))]
        return self._authorize(challenge, method=method, uri=uri, rng=rng, body=body)

    def reuse(
        self,
        method: str,
        uri: str,
        rng: random.Random,
        body: bytes = b"",
        *,
        call_id: str | None = None,
    ) -> list[tuple[str, str]]:
        """Credentials for a new request from the cached challenges, as (header name, value).

        Pre-authenticates later requests (BYE, in-dialog re-INVITE, the next INVITE) so that a
        server that challenges every request does not cost a round trip each time:
        ``Authorization`` from every cached 401 challenge, and ``Proxy-Authorization`` from the
        407 challenges of the request's own ``call_id``. Empty when nothing applies.
        """
        headers = [(WWW_AUTHORIZATION, c) for c in self._www.values()]
        if call_id is not None:
            headers += [(PROXY_AUTHORIZATION, c) for c in self._proxy.get(call_id, {}).values()]
        return [
            (name, self._authorize(c, method=method, uri=uri, rng=rng, body=body))
            for name, c in headers
        ]

    def forget(self, call_id: str | None = None) -> None:
        """Drop the proxy challenges of ``call_id`` when its dialog ends; everything if None."""
        if call_id is not None:
            self._proxy.pop(call_id, None)
            return
        self._www.clear()
        self._proxy.clear()
        self._nc.clear()
        self._sess_cnonce.clear()

    def _authorize(
        self, challenge: Challenge, *, method: str, uri: str, rng: random.Random, body: bytes
    ) -> str:
        nonce = challenge.nonce
        nc = self._nc.pop(nonce, 0) + 1
        self._nc[nonce] = nc  # re-insert: most recently used last
        while len(self._nc) > _MAX_NONCES:
            old = next(iter(self._nc))
            del self._nc[old]
            self._sess_cnonce.pop(old, None)
        cnonce = self._sess_cnonce.get(nonce) or _new_cnonce(rng)
        if challenge.algorithm.endswith("-sess"):
            self._sess_cnonce[nonce] = cnonce
        return authorization(
            challenge,
            method=method,
            uri=uri,
            username=self.username,
            password=self._password,
            nc=nc,
            cnonce=cnonce,
            body=body,
        )


def _new_cnonce(rng: random.Random) -> str:
    # 96 random bits: enough that a server never sees the same cnonce twice (RFC 7616 3.4).
    return f"{rng.getrandbits(96):024x}"


def _proves_wrong(value: str, challenge: Challenge) -> bool:
    """Whether rejected credentials ``value`` show that the password (or user) is wrong."""
    params = _credentials(value)
    if params is None:
        return False
    if params.get("realm") != challenge.realm:
        return False  # credentials for another realm say nothing about this one
    nc = params.get("nc")
    if nc is None or params.get("nonce") == challenge.nonce:
        # No nonce count (RFC 2069 style) cannot tell a pre-emptive answer from a direct one,
        # and a server that rejects its own current nonce is rejecting the password.
        return True
    try:
        return int(nc, 16) <= 1
    except ValueError:
        return True
