"""Dialogs (RFC 3261 section 12) and the requests built from them: ACK, BYE, CANCEL, re-INVITE.

A dialog is identified by Call-ID, local tag and remote tag; it holds the route set, the remote
target and both CSeq spaces. Everything here is pure: branches and tags come from the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.sip.errors import ParseError
from gateway.sip.headers import NameAddr
from gateway.sip.message import Headers, Request, Response
from gateway.sip.uri import SipURI

__all__ = ["Dialog", "build_cancel", "next_hop"]


@dataclass
class Dialog:
    """The state of one dialog, from either side (RFC 3261 section 12.1).

    ``local_uri``/``remote_uri`` are the From/To header values without tags; ``route_set``
    holds the Route values in the order requests carry them.
    """

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str
    remote_uri: str
    remote_target: str
    route_set: list[str] = field(default_factory=list)
    local_seq: int = 0
    remote_seq: int | None = None
    secure: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def from_uac(cls, request: Request, response: Response) -> Dialog:
        """The dialog a 2xx (or 1xx with a To tag) creates at the UAC (section 12.1.2).

        "The route set MUST be set to the list of URIs in the Record-Route header field from
        the response, taken in reverse order"; the remote target is the response's Contact.
        """
        remote_tag = response.to.tag
        if not remote_tag:
            raise ParseError("a dialog-creating response needs a To tag")
        contacts = response.contact
        if not contacts:
            raise ParseError("a dialog-creating response needs a Contact")
        local_tag = request.from_.tag or ""
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local_uri=_without_tag(request.from_),
            remote_uri=_without_tag(response.to),
            remote_target=contacts[0].uri,
            route_set=[str(r) for r in reversed(response.record_route)],
            local_seq=request.cseq.seq,
            remote_seq=None,
            secure=request.uri.lower().startswith("sips:"),
        )

    @classmethod
    def from_uas(cls, request: Request, local_tag: str) -> Dialog:
        """The dialog our 2xx creates at the UAS (section 12.1.1): Record-Route in order."""
        contacts = request.contact
        if not contacts:
            raise ParseError("a dialog-creating request needs a Contact")
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=request.from_.tag or "",
            local_uri=_without_tag(request.to),
            remote_uri=_without_tag(request.from_),
            remote_target=contacts[0].uri,
            route_set=[str(r) for r in request.record_route],
            local_seq=0,
            remote_seq=request.cseq.seq,
            secure=request.uri.lower().startswith("sips:"),
        )

    def create_request(
        self,
        method: str,
        *,
        via: str,
        contact: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        cseq: int | None = None,
    ) -> Request:
        """A request within the dialog (section 12.2.1.1).

        The local CSeq grows by one for every request but ACK and CANCEL (which reuse the
        INVITE's number: pass ``cseq``). With a loose-routing first hop (``;lr``) the
        Request-URI is the remote target and the route set goes in Route; with a strict router
        the Request-URI is the first route and the remote target ends the Route list.
        """
        if cseq is None:
            self.local_seq += 1
            cseq = self.local_seq
        uri, routes = self._request_uri_and_routes()
        items: list[tuple[str, str]] = [("Via", via)]
        items += [("Route", r) for r in routes]
        items += [
            ("Max-Forwards", "70"),
            ("From", f"{self.local_uri};tag={self.local_tag}"),
            ("To", f"{self.remote_uri};tag={self.remote_tag}"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
        ]
        if contact is not None:
            items.append(("Contact", contact))
        items += headers or []
        return Request(method, uri, Headers(items), body)

    def receive_request(self, request: Request) -> bool:
        """Check a request within the dialog; False when its CSeq is out of order (12.2.2).

        "If the remote sequence number was not empty, but the sequence number of the request is
        lower than the remote sequence number, the request is out of order and MUST be rejected
        with a 500". The remote target is refreshed by a re-INVITE's Contact (12.2.2).
        """
        seq = request.cseq.seq
        if request.method not in ("ACK", "CANCEL"):
            if self.remote_seq is not None and seq < self.remote_seq:
                return False
            self.remote_seq = seq
        if request.method in ("INVITE", "UPDATE"):
            contacts = request.contact
            if contacts:
                self.remote_target = contacts[0].uri
        return True

    def next_hop(self) -> SipURI:
        """Where requests of this dialog go: the first route, else the remote target."""
        uri, routes = self._request_uri_and_routes()
        if routes:
            return next_hop(NameAddr.parse(routes[0]).uri)
        return next_hop(uri)

    def _request_uri_and_routes(self) -> tuple[str, list[str]]:
        if not self.route_set:
            return self.remote_target, []
        first = NameAddr.parse(self.route_set[0])
        if "lr" in SipURI.parse(first.uri).params:
            return self.remote_target, list(self.route_set)
        # Strict router (RFC 2543): section 12.2.1.1, last paragraph.
        return first.uri, [*self.route_set[1:], f"<{self.remote_target}>"]


def next_hop(uri: str) -> SipURI:
    """Parse the URI a request is sent to (RFC 3263 without DNS: host, port, transport)."""
    return SipURI.parse(uri)


def build_cancel(invite: Request) -> Request:
    """CANCEL for a pending INVITE (RFC 3261 section 9.1).

    "The Request-URI, Call-ID, To, the numeric part of CSeq, and From header fields in the
    CANCEL request MUST be identical to those in the request being cancelled, including tags.
    A CANCEL constructed by a client MUST have only a single Via header field value matching
    the top Via value in the request being cancelled", and the same Route headers.
    """
    h = invite.headers
    items: list[tuple[str, str]] = [("Via", str(invite.top_via))]
    items += [("Route", r) for r in h.get_all("Route")]
    items += [
        ("Max-Forwards", "70"),
        ("From", h.get("From") or ""),
        ("To", h.get("To") or ""),
        ("Call-ID", invite.call_id),
        ("CSeq", f"{invite.cseq.seq} CANCEL"),
    ]
    return Request("CANCEL", invite.uri, Headers(items))


def _without_tag(addr: NameAddr) -> str:
    params = {k: v for k, v in addr.params.items() if k != "tag"}
    return str(NameAddr(addr.display, addr.uri, params))
