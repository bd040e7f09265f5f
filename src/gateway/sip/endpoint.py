"""The user agent core: routes messages to transactions, dialogs and calls (sans-IO).

Driven after aioquic: :meth:`Endpoint.receive` with the bytes, where they came from and ``now``;
:meth:`Endpoint.datagrams_to_send` for what to put on the wire; :meth:`Endpoint.get_timer` and
:meth:`Endpoint.handle_timer` for time; :meth:`Endpoint.next_event` for what happened. Protocol
errors become responses here, at one boundary, and never escape to the transport.
"""

from __future__ import annotations

import contextlib
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gateway.sip import invite
from gateway.sip.auth import DigestSession
from gateway.sip.checks import check_request, check_response
from gateway.sip.errors import SipError
from gateway.sip.events import Address, Event, OptionsAnswered, TrunkStateChanged
from gateway.sip.message import Request, Response, parse, response_for
from gateway.sip.routing import (
    SourceFilter,
    default_port,
    destination,
    fix_via,
    response_destination,
)
from gateway.sip.scheduler import Scheduler
from gateway.sip.transaction import (
    ClientTransaction,
    ServerTransaction,
    Timers,
    TransactionLayer,
    client_transaction,
    server_transaction,
)
from gateway.sip.trunks import Trunk, TrunkSettings, options_request
from gateway.sip.uri import SipURI

__all__ = ["ALLOWED_METHODS", "Endpoint", "EndpointSettings", "TrunkSettings"]

#: The methods this user agent serves (Allow, RFC 3261 section 20.5).
ALLOWED_METHODS = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "UPDATE", "INFO")
#: Option tags we support (RFC 4028 session timers).
SUPPORTED = ("timer",)
ACCEPTED_TYPES = ("application/sdp", "application/dtmf-relay", "application/dtmf")

ResponseHandler = Callable[[ClientTransaction, Response | None, float], None]


@dataclass(frozen=True)
class EndpointSettings:
    timers: Timers = field(default_factory=Timers)
    user_agent: str = "gateway"
    follow_redirects: bool = True
    max_redirects: int = 3
    session_expires: int = 1800
    min_se: int = 90
    #: Requests per second answered to one address that is not a trunk; the rest are dropped.
    stranger_rate: int = 50


class Endpoint:
    """One SIP user agent: every call and trunk of a process share it."""

    def __init__(
        self,
        settings: EndpointSettings,
        trunks: Sequence[TrunkSettings],
        *,
        rng: random.Random,
    ) -> None:
        self.settings = settings
        self.rng = rng
        self.transactions = TransactionLayer()
        self.trunks: dict[str, Trunk] = {}
        self._sources: dict[str, str] = {}
        for t in trunks:
            uri = SipURI.parse(t.uri)
            transport = uri.transport or ("tls" if uri.scheme == "sips" else "udp")
            address = Address(transport, uri.host_address, uri.port or default_port(transport))
            auth = DigestSession(t.username, t.password) if t.username else None
            self.trunks[t.name] = Trunk(t, uri, address, auth)
            for host in (uri.host_address, *t.sources):
                self._sources.setdefault(host, t.name)
        self.local: dict[str, tuple[str, int]] = {}
        self.calls: dict[str, invite.Call] = {}
        self.stats: dict[str, int] = {
            "received": 0,
            "malformed": 0,
            "answered_error": 0,
            "stranger_dropped": 0,
            "stranger_answered": 0,
            "unmatched_responses": 0,
        }
        self._out: list[tuple[bytes, Address]] = []
        self._events: deque[Event] = deque()
        self._handlers: dict[ClientTransaction, ResponseHandler] = {}
        self._destinations: dict[object, Address] = {}
        self._timers = Scheduler()
        self._strangers = SourceFilter(settings.stranger_rate)

    # -- what calls read (gateway.sip.session.Core) ---------------------------------------------

    @property
    def timers(self) -> Timers:
        return self.settings.timers

    @property
    def session_expires(self) -> int:
        return self.settings.session_expires

    @property
    def min_se(self) -> int:
        return self.settings.min_se

    @property
    def follow_redirects(self) -> bool:
        return self.settings.follow_redirects

    @property
    def max_redirects(self) -> int:
        return self.settings.max_redirects

    @property
    def user_agent(self) -> str:
        return self.settings.user_agent

    def destination(self, uri: str, transport: str) -> Address:
        """Where a request for ``uri`` goes (RFC 3263 without DNS: the URI's host and port)."""
        return destination(uri, transport)

    def destination_of(self, stx: ServerTransaction) -> Address:
        """The address (and connection) a server transaction's request came from."""
        return self._destinations[stx]

    # -- wiring -------------------------------------------------------------------------------

    def add_listener(self, transport: str, host: str, port: int) -> None:
        """Tell the core where a socket listens: Via and Contact use the socket's real address."""
        self.local[transport] = (host, port)

    def start_keepalives(self, now: float) -> None:
        """Start the OPTIONS keep-alive toward each trunk that has an interval."""
        for trunk in self.trunks.values():
            if trunk.settings.keepalive_interval > 0:
                self._keepalive(trunk, now)

    # -- input --------------------------------------------------------------------------------

    def receive(self, data: bytes, source: Address, now: float) -> None:
        """Handle one datagram, or one framed message of a stream, from ``source``."""
        self.stats["received"] += 1
        trunk = self._sources.get(source.host)
        if trunk is None and not self._strangers.allow(source.host, now):
            # Dropped before parsing: a flood from a stranger costs a dict look-up.
            self.stats["stranger_dropped"] += 1
            return
        try:
            message = parse(data)
        except SipError as exc:
            self.stats["malformed"] += 1
            if exc.request is not None and exc.request.method != "ACK":
                self._answer_error(exc.request, exc, source, now)
            return
        if isinstance(message, Response):
            self._receive_response(message, now)
        elif trunk is None and self._in_our_dialog(message):
            # The callee a 3xx sent us to may be no trunk: its BYE or re-INVITE in the dialog
            # still belongs to our call (it got 403, and the call never ended).
            self._receive_request(message, source, "", now)
        elif trunk is None:
            # RFC 3261 section 8.2: a UA may refuse; the gateway is not an open door.
            self.stats["stranger_answered"] += 1
            if message.method != "ACK":
                self._stateless(message, 403, source, "Forbidden")
        else:
            self._receive_request(message, source, trunk, now)

    def _in_our_dialog(self, request: Request) -> bool:
        """Whether ``request`` carries the Call-ID and both tags of one of our dialogs."""
        try:
            call = self.calls.get(request.call_id)
            return call is not None and bool(request.to.tag) and call.in_dialog(request)
        except SipError:
            return False

    def _receive_response(self, response: Response, now: float) -> None:
        try:
            check_response(response)
        except SipError:
            self.stats["malformed"] += 1
            return
        tx = self.transactions.match_response(response)
        if tx is None:
            # RFC 3261 section 17.1.3 / 18.1.2: a response matching no transaction is dropped
            # (a retransmitted 2xx after the transaction ended: see invite.Call.stray_2xx).
            call = self.calls.get(response.call_id)
            if call is not None and 200 <= response.status < 300:
                call.stray_2xx(response, now)
            else:
                self.stats["unmatched_responses"] += 1
            return
        passed = tx.receive(response, now)
        self._flush(tx)
        if passed is not None:
            handler = self._handlers.get(tx)
            if handler is not None:
                handler(tx, passed, now)
        if tx.terminated:
            self._handlers.pop(tx, None)

    def _receive_request(self, request: Request, source: Address, trunk: str, now: float) -> None:
        # RFC 3261 section 8.2: every check first, so that the layers below only ever see
        # requests whose Via, From, To, Call-ID and CSeq can be read.
        try:
            check_request(
                request,
                supported=SUPPORTED,
                accepted_content_types=ACCEPTED_TYPES,
                methods=ALLOWED_METHODS,
            )
            fix_via(request, source)
        except SipError as exc:
            self.stats["malformed"] += 1
            if request.method != "ACK":  # an ACK is never answered (section 17.2.3)
                self._answer_error(request, exc, source, now)
            return
        try:
            self._dispatch_request(request, source, trunk, now)
        except SipError as exc:
            # A header read deeper (a Contact, a Session-Expires) was malformed.
            self.stats["malformed"] += 1
            if request.method != "ACK":
                self._answer_error(request, exc, source, now)

    def _dispatch_request(self, request: Request, source: Address, trunk: str, now: float) -> None:
        stx = self.transactions.match_request(request)
        if stx is not None:
            passed = stx.receive(request, now)
            self._flush(stx)
            if passed is not None and passed.method == "ACK":
                self._route_ack(passed, now)
            return
        if request.method == "ACK":
            self._route_ack(request, now)
            return
        stx = server_transaction(
            request, reliable=source.transport != "udp", timers=self.settings.timers, now=now
        )
        self._destinations[stx] = source
        self.transactions.add_server(stx)
        if request.method == "CANCEL":
            self._receive_cancel(stx, request, now)
            return
        if request.to.tag:
            call = self.calls.get(request.call_id)
            if call is None or not call.in_dialog(request):
                # RFC 3261 section 12.2.2: no dialog matches -> 481.
                self.respond(stx, response_for(request, 481), now)
                return
            call.receive_request(stx, request, now)
            return
        if request.method == "INVITE":
            if request.call_id in self.calls:
                # A second INVITE with our Call-ID but no To tag: a loop or a merged request.
                self.respond(stx, response_for(request, 482), now)
                return
            if not request.contact:
                # RFC 3261 section 8.1.1.8: an INVITE MUST carry a Contact, the dialog's remote
                # target; without one, accept() could only raise when building the dialog.
                self.respond(stx, response_for(request, 400, "Missing Contact"), now)
                return
            self.calls[request.call_id] = invite.InboundCall.receive(self, stx, request, trunk, now)
            return
        if request.method == "OPTIONS":
            self.respond(stx, self.capabilities(response_for(request, 200, to_tag=self.tag())), now)
            return
        # BYE, UPDATE, INFO outside a dialog.
        self.respond(stx, response_for(request, 481), now)

    def _route_ack(self, ack: Request, now: float) -> None:
        call = self.calls.get(ack.call_id)
        if call is not None:
            call.receive_ack(ack, now)

    def _receive_cancel(self, stx: ServerTransaction, cancel: Request, now: float) -> None:
        target = self.transactions.match_cancel(cancel)
        if target is None:
            # RFC 3261 section 9.2: no matching transaction -> 481.
            self.respond(stx, response_for(cancel, 481), now)
            return
        self.respond(stx, response_for(cancel, 200, to_tag=self.tag()), now)
        call = self.calls.get(cancel.call_id)
        if call is not None:
            call.cancelled(target, now)

    # -- output -------------------------------------------------------------------------------

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        """What to put on the wire now, with its destination; the queue is emptied."""
        out, self._out = self._out, []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def emit(self, event: Event) -> None:
        self._events.append(event)

    def send_request(
        self, request: Request, destination: Address, now: float, handler: ResponseHandler | None
    ) -> ClientTransaction:
        """Start a client transaction for ``request`` toward ``destination``."""
        tx = client_transaction(
            request,
            reliable=destination.transport != "udp",
            timers=self.settings.timers,
            now=now,
        )
        self._destinations[tx] = destination
        if handler is not None:
            self._handlers[tx] = handler
        self.transactions.add_client(tx)
        self._flush(tx)
        return tx

    def send_stateless(self, message: Request | Response, destination: Address) -> None:
        """Send outside any transaction: the ACK for a 2xx, a 2xx retransmission."""
        self._out.append((bytes(message), destination))

    def respond(self, stx: ServerTransaction, response: Response, now: float) -> None:
        """Answer a request through its server transaction."""
        if "Server" not in response.headers:
            response.headers.add("Server", self.settings.user_agent)
        stx.respond(response, now)
        self._flush(stx)

    def _flush(self, tx: ClientTransaction | ServerTransaction) -> None:
        messages = tx.take_outgoing()
        if messages:
            dest = self._destinations[tx]
            if isinstance(tx, ServerTransaction):
                dest = response_destination(tx.request, dest)
            for m in messages:
                self._out.append((bytes(m), dest))
        if tx.terminated:
            self._destinations.pop(tx, None)

    def _answer_error(self, request: Request, exc: SipError, source: Address, now: float) -> None:
        self.stats["answered_error"] += 1
        # A request too broken to answer (no usable Via) is dropped.
        with contextlib.suppress(SipError):
            self._stateless(request, exc.status, source, exc.reason, exc.headers)

    def _stateless(
        self,
        request: Request,
        status: int,
        source: Address,
        reason: str = "",
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        # A top Via too broken to read (RFC 4475 sections 3.1.2.1 and 3.1.2.16) is copied as it
        # came, and the answer goes to the source address (see _response_destination).
        with contextlib.suppress(SipError):
            fix_via(request, source)
        response = response_for(request, status, reason, to_tag=self.tag(), headers=headers)
        response.headers.add("Server", self.settings.user_agent)
        self._out.append((bytes(response), response_destination(request, source)))

    def capabilities(self, response: Response) -> Response:
        """Add Allow, Accept and Supported (RFC 3261 section 11.2: the answer to OPTIONS)."""
        response.headers.add("Allow", ", ".join(ALLOWED_METHODS))
        response.headers.add("Accept", ", ".join(ACCEPTED_TYPES))
        response.headers.add("Supported", ", ".join(SUPPORTED))
        return response

    # -- time ---------------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The earliest deadline of every transaction and call timer."""
        mine = self._timers.get_timer()
        theirs = self.transactions.get_timer()
        if mine is None:
            return theirs
        return mine if theirs is None else min(mine, theirs)

    def handle_timer(self, now: float) -> None:
        for tx in self.transactions.handle_timer(now):
            if isinstance(tx, ClientTransaction | ServerTransaction):
                self._flush(tx)
            if isinstance(tx, ClientTransaction) and tx.terminated:
                handler = self._handlers.pop(tx, None)
                if handler is not None and (tx.timed_out or tx.transport_failed):
                    handler(tx, None, now)
            elif isinstance(tx, ServerTransaction) and tx.terminated and tx.timed_out:
                call = self.calls.get(tx.request.call_id)
                if call is not None:
                    call.server_timeout(tx, now)
        self._timers.fire(now)

    def schedule(self, deadline: float, fn: Callable[[float], None]) -> int:
        """Call ``fn(now)`` at ``deadline``; returns a handle for :meth:`cancel_timer`."""
        return self._timers.schedule(deadline, fn)

    def cancel_timer(self, handle: int | None) -> None:
        self._timers.cancel(handle)

    def transport_error(self, destination: Address, now: float) -> None:
        """The transport could not reach ``destination``: fail its client transactions (503)."""
        for tx, dest in list(self._destinations.items()):
            if dest == destination and isinstance(tx, ClientTransaction) and not tx.terminated:
                tx.transport_error(now)
                handler = self._handlers.pop(tx, None)
                if handler is not None:
                    handler(tx, None, now)

    # -- identifiers and common headers ---------------------------------------------------------

    def tag(self) -> str:
        return f"{self.rng.getrandbits(64):016x}"

    def branch(self) -> str:
        return f"z9hG4bK{self.rng.getrandbits(80):020x}"

    def new_call_id(self, transport: str) -> str:
        host = self.local_address(transport)[0]
        return f"{self.rng.getrandbits(96):024x}@{host}"

    def local_address(self, transport: str) -> tuple[str, int]:
        """The address of our socket for ``transport`` (any listener's host when none)."""
        if transport in self.local:
            return self.local[transport]
        host = next(iter(self.local.values()), ("127.0.0.1", 5060))[0]
        return (host, 5061 if transport == "tls" else 5060)

    def via(self, transport: str) -> str:
        host, port = self.local_address(transport)
        sent_by = f"[{host}]" if ":" in host else host
        # RFC 3581: rport asks the server to answer to the port the request came from.
        return f"SIP/2.0/{transport.upper()} {sent_by}:{port};branch={self.branch()};rport"

    def contact(self, transport: str, user: str = "gw") -> str:
        host, port = self.local_address(transport)
        host = f"[{host}]" if ":" in host else host
        params = "" if transport == "udp" else f";transport={transport}"
        return f"<sip:{user}@{host}:{port}{params}>"

    # -- requests of our own ------------------------------------------------------------------

    def invite(
        self,
        *,
        trunk: str,
        to_user: str,
        from_user: str,
        sdp: bytes,
        now: float,
        ring_timeout: float | None = None,
        display_name: str | None = None,
        extra_headers: Sequence[tuple[str, str]] = (),
    ) -> str:
        """Place a call to ``to_user`` through ``trunk``; returns its Call-ID.

        Events follow: :class:`CallProgressed`, then :class:`CallAnswered` or
        :class:`CallEnded`. ``ring_timeout`` (seconds) cancels an unanswered call.
        """
        t = self.trunks.get(trunk)
        if t is None:
            raise KeyError(f"no trunk named {trunk!r}")
        call = invite.OutboundCall.start(
            self,
            t.settings.name,
            t.uri,
            t.address,
            t.auth,
            to_user=to_user,
            from_user=from_user,
            from_domain=t.settings.from_domain,
            sdp=sdp,
            now=now,
            ring_timeout=ring_timeout,
            display_name=display_name,
            extra_headers=extra_headers,
        )
        self.calls[call.call_id] = call
        return call.call_id

    def hangup(self, call_id: str, now: float, reason: str | None = None) -> None:
        """End a call: CANCEL while it rings, BYE once answered (``reason``: a Reason value)."""
        call = self.calls.get(call_id)
        if call is not None:
            call.hangup(now, reason)

    def accept(self, call_id: str, sdp: bytes, now: float) -> None:
        """Answer an :class:`IncomingCall` with 200 and our SDP answer."""
        call = self.calls.get(call_id)
        if isinstance(call, invite.InboundCall):
            call.accept(sdp, now)

    def ring(self, call_id: str, now: float, status: int = 180) -> None:
        """Tell the caller of an :class:`IncomingCall` that it rings (180, or 183)."""
        call = self.calls.get(call_id)
        if isinstance(call, invite.InboundCall):
            call.ring(now, status)

    def reject(self, call_id: str, status: int, now: float, reason: str = "") -> None:
        """Refuse an :class:`IncomingCall` with a final ``status`` (404, 480, 486, 603 ...)."""
        call = self.calls.get(call_id)
        if isinstance(call, invite.InboundCall):
            call.reject(status, now, reason)

    def forget(self, call_id: str) -> None:
        """Drop an ended call (the core keeps it briefly to absorb retransmissions)."""
        self.calls.pop(call_id, None)

    def options(self, trunk: str, now: float) -> str:
        """Send OPTIONS to ``trunk`` (RFC 3261 section 11); :class:`OptionsAnswered` follows."""
        t = self.trunks[trunk]
        return self._send_options(t, now, keepalive=False)

    def _send_options(self, t: Trunk, now: float, *, keepalive: bool) -> str:
        transport = t.address.transport
        call_id = self.new_call_id(transport)
        request = options_request(
            t,
            via=self.via(transport),
            tag=self.tag(),
            call_id=call_id,
            contact=self.contact(transport),
            user_agent=self.settings.user_agent,
        )
        sent = now

        def answered(tx: ClientTransaction, response: Response | None, at: float) -> None:
            if response is not None and response.status < 200:
                return
            status = 503 if tx.transport_failed else 408
            reason = "Transport failure" if tx.transport_failed else "Request Timeout"
            if response is not None:
                status, reason = response.status, response.reason
            rtt = at - sent
            self.emit(OptionsAnswered(call_id, t.settings.name, status, reason, rtt, at))
            if keepalive:
                self._keepalive_result(t, status, response is not None, rtt, at)

        self.send_request(request, t.address, now, answered)
        return call_id

    def _keepalive(self, t: Trunk, now: float) -> None:
        self._send_options(t, now, keepalive=True)
        t.keepalive_handle = self.schedule(
            now + t.settings.keepalive_interval, lambda at: self._keepalive(t, at)
        )

    def _keepalive_result(
        self, t: Trunk, status: int, answered: bool, rtt: float, now: float
    ) -> None:
        # Any answer proves the trunk is there (even 403 or 404); silence or a transport
        # failure marks it down.
        up = answered
        if t.up is not up:
            t.up = up
            self.emit(TrunkStateChanged(t.settings.name, up, status, rtt if up else None, now))
