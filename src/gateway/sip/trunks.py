"""Trunks as the user agent core sees them, and the OPTIONS that probes them (RFC 3261 11)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.sip.auth import DigestSession
from gateway.sip.events import Address
from gateway.sip.message import Headers, Request
from gateway.sip.uri import SipURI

__all__ = ["Trunk", "TrunkSettings", "options_request"]


@dataclass(frozen=True)
class TrunkSettings:
    """A trunk as the core sees it: its URI, credentials and the addresses it sends from."""

    name: str
    uri: str
    username: str = ""
    password: str = ""
    from_domain: str = ""
    keepalive_interval: float = 30.0
    #: Source hosts (IP addresses) accepted as this trunk, besides the URI's host.
    sources: tuple[str, ...] = ()


@dataclass
class Trunk:
    """A trunk at run time: its parsed URI, where it is reached, its credentials, its state."""

    settings: TrunkSettings
    uri: SipURI
    address: Address
    auth: DigestSession | None
    up: bool | None = None
    keepalive_handle: int | None = None


def options_request(
    t: Trunk, *, via: str, tag: str, call_id: str, contact: str, user_agent: str
) -> Request:
    """OPTIONS to the trunk itself (no user part): the keep-alive and ``gateway trunk check``."""
    host = f"{t.uri.host}" + (f":{t.uri.port}" if t.uri.port else "")
    domain = t.settings.from_domain or t.uri.host
    return Request(
        "OPTIONS",
        str(SipURI(t.uri.scheme, None, None, t.uri.host, t.uri.port, dict(t.uri.params))),
        Headers(
            [
                ("Via", via),
                ("Max-Forwards", "70"),
                ("From", f"<sip:gw@{domain}>;tag={tag}"),
                ("To", f"<sip:{host}>"),
                ("Call-ID", call_id),
                ("CSeq", "1 OPTIONS"),
                ("Contact", contact),
                ("Accept", "application/sdp"),
                ("User-Agent", user_agent),
            ]
        ),
    )
