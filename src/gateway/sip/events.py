"""What the user agent core tells its user: small past-tense dataclasses (after aioquic).

:meth:`gateway.sip.endpoint.Endpoint.next_event` returns them in the order they happened. Media
details reach the caller as the parsed SDP (:class:`~gateway.sip.sdp.AudioSession`), plain data,
so that ``sip`` never imports ``media``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from gateway.sip.sdp import AudioSession

__all__ = [
    "Address",
    "CallAnswered",
    "CallEnded",
    "CallProgressed",
    "CallUpdated",
    "DtmfReceived",
    "Event",
    "IncomingCall",
    "OptionsAnswered",
    "TrunkStateChanged",
]


class Address(NamedTuple):
    """Where a message comes from or goes to: ``transport`` is ``udp``, ``tcp`` or ``tls``."""

    transport: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


@dataclass(frozen=True)
class CallProgressed:
    """A provisional response (180 Ringing, 183 Session Progress) arrived for our INVITE.

    ``audio`` is set when it carried an SDP answer (early media, RFC 3261 section 13.2.1).
    """

    call_id: str
    status: int
    reason: str
    audio: AudioSession | None
    at: float


@dataclass(frozen=True)
class CallAnswered:
    """A 2xx established the dialog; ``audio`` is the negotiated media (RFC 3264)."""

    call_id: str
    audio: AudioSession
    at: float


@dataclass(frozen=True)
class CallUpdated:
    """The far end changed the session (re-INVITE or UPDATE): hold, resume, new address."""

    call_id: str
    audio: AudioSession
    at: float


@dataclass(frozen=True)
class DtmfReceived:
    """A key press carried by SIP INFO (``application/dtmf-relay`` or ``application/dtmf``)."""

    call_id: str
    digit: str
    duration_ms: int | None
    at: float


@dataclass(frozen=True)
class CallEnded:
    """The call is over.

    ``cause`` is the SIP status that ended it: the final response for a call that never
    connected (486, 603, 408 for Timer B, 487 after our CANCEL, 503 for a transport failure),
    200 for a BYE. ``by`` says who ended it: ``local`` (we hung up or cancelled), ``remote``
    (the far end rejected or sent BYE) or ``network`` (timeout, transport failure).
    """

    call_id: str
    cause: int
    reason: str
    by: str
    at: float
    answered: bool = False


@dataclass(frozen=True)
class IncomingCall:
    """An INVITE from a trunk opened a new call; answer it with ``Endpoint.accept`` or
    ``Endpoint.reject``.

    ``caller`` is the P-Asserted-Identity URI when the trunk sent one (RFC 3325), else From's;
    ``called`` is the user part of the Request-URI (or of To when the Request-URI has none).
    """

    call_id: str
    trunk: str
    caller: str
    called: str
    offer: bytes
    at: float


@dataclass(frozen=True)
class OptionsAnswered:
    """Our OPTIONS got an answer (``status``), or none (``status`` 408, Timer F)."""

    request_id: str
    trunk: str
    status: int
    reason: str
    rtt: float
    at: float


@dataclass(frozen=True)
class TrunkStateChanged:
    """The OPTIONS keep-alive found a trunk ``up`` or ``down``."""

    trunk: str
    up: bool
    status: int
    rtt: float | None
    at: float


Event = (
    CallProgressed
    | CallAnswered
    | CallUpdated
    | DtmfReceived
    | CallEnded
    | IncomingCall
    | OptionsAnswered
    | TrunkStateChanged
)
