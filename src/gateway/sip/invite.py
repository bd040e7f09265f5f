"""Calls as a UAC and as a UAS: the INVITE session usage (RFC 3261 sections 13 to 15).

:class:`OutboundCall` places a call through a trunk: INVITE with an SDP offer; provisional
responses and early dialogs; the 2xx that confirms the dialog and its ACK (re-sent for each
retransmitted 2xx); digest authentication on 401/407; 3xx followed or failed by configuration;
CANCEL when the ring timeout expires; every 4xx-6xx ends the call with its cause.
:class:`InboundCall` answers an INVITE from a trunk (the opt-out line).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gateway.sip.auth import DigestSession, choose_challenge
from gateway.sip.dialog import Dialog, build_cancel
from gateway.sip.errors import SipError
from gateway.sip.events import Address, CallAnswered, CallProgressed, IncomingCall
from gateway.sip.headers import NameAddr, parse_params
from gateway.sip.message import Headers, Request, Response, response_for
from gateway.sip.sdp import AudioSession, NoCommonCodec, SessionDescription, negotiate
from gateway.sip.session import Call, Core
from gateway.sip.transaction import ClientTransaction, InviteClientTransaction, ServerTransaction
from gateway.sip.uri import SipURI

if TYPE_CHECKING:
    from gateway.sip.endpoint import Endpoint

__all__ = ["Call", "InboundCall", "OutboundCall"]


class OutboundCall(Call):
    """A call we place (UAC)."""

    owns_call_id = True

    def __init__(self, core: Core, call_id: str, transport: str, local_sdp: bytes) -> None:
        super().__init__(core, call_id, transport, local_sdp)
        self.trunk = ""
        self.auth: DigestSession | None = None
        self.destination: Address = Address(transport, "", 0)
        self.invite_request: Request | None = None
        self.invite_tx: InviteClientTransaction | None = None
        self.ack: Request | None = None
        self.provisional = False
        self.cancel_pending = False
        self.cancelling = False
        self.redirects = 0
        self._ring_timer: int | None = None

    @classmethod
    def start(
        cls,
        core: Endpoint,
        trunk: str,
        trunk_uri: SipURI,
        destination: Address,
        auth: DigestSession | None,
        *,
        to_user: str,
        from_user: str,
        from_domain: str,
        sdp: bytes,
        now: float,
        ring_timeout: float | None,
        display_name: str | None,
        extra_headers: Sequence[tuple[str, str]],
    ) -> OutboundCall:
        transport = destination.transport
        call = cls(core, core.new_call_id(transport), transport, sdp)
        call.trunk, call.auth, call.destination = trunk, auth, destination
        target = SipURI(
            trunk_uri.scheme, to_user, None, trunk_uri.host, trunk_uri.port, dict(trunk_uri.params)
        )
        domain = from_domain or trunk_uri.host
        display = f'"{display_name}" ' if display_name else ""
        headers = Headers(
            [
                ("Via", core.via(transport)),
                ("Max-Forwards", "70"),
                ("From", f"{display}<sip:{from_user}@{domain}>;tag={core.tag()}"),
                ("To", f"<sip:{to_user}@{trunk_uri.host}>"),
                ("Call-ID", call.call_id),
                ("CSeq", "1 INVITE"),
                ("Contact", core.contact(transport)),
                ("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO"),
                ("Supported", "timer"),
                ("User-Agent", core.user_agent),
            ]
        )
        if core.session_expires:
            headers.add("Session-Expires", str(core.session_expires))
            headers.add("Min-SE", str(core.min_se))
        for name, value in extra_headers:
            headers.add(name, value)
        headers.add("Content-Type", "application/sdp")
        call._send_invite(Request("INVITE", str(target), headers, sdp), now)
        if ring_timeout is not None:
            call._ring_timer = core.schedule(now + ring_timeout, call._ring_timeout)
        return call

    # -- the INVITE transaction ---------------------------------------------------------------

    def _send_invite(self, request: Request, now: float, fresh: Sequence[str] = ()) -> None:
        if self.auth is not None:
            # Pre-authenticate with the realm's cached challenge (RFC 3261 section 22.3), but
            # keep the credentials that ``fresh`` names: the answer to the challenge just
            # received (nonce count 1) must not be replaced by a re-use of the same challenge.
            cached = self.auth.reuse(
                "INVITE", request.uri, self.core.rng, request.body, call_id=self.call_id
            )
            for name, value in cached:
                if name not in fresh:
                    request.headers.set(name, value)
        self.invite_request = request
        tx = self.core.send_request(request, self.destination, now, self._on_response)
        assert isinstance(tx, InviteClientTransaction)
        self.invite_tx = tx

    def _resend(self, request: Request, now: float, headers: Sequence[tuple[str, str]]) -> None:
        """A new INVITE for the same call: same Call-ID and From tag, next CSeq, new branch."""
        h = request.headers.copy()
        h.set("Via", self.core.via(self.transport))
        h.set("CSeq", f"{request.cseq.seq + 1} INVITE")
        for name, value in headers:
            h.set(name, value)
        fresh = [name for name, _ in headers]
        self._send_invite(Request("INVITE", request.uri, h, request.body), now, fresh)

    def _on_response(self, tx: ClientTransaction, response: Response | None, now: float) -> None:
        if tx is not self.invite_tx:
            if response is not None and 200 <= response.status < 300:
                self.stray_2xx(response, now)  # a 2xx to an INVITE we replaced (auth, 3xx)
            return
        if response is None:
            cause, reason = (503, "Transport failure") if tx.transport_failed else (408, "Timeout")
            self._fail(cause, reason, "network", now)
            return
        status = response.status
        if status < 200:
            self._provisional(response, now)
        elif status < 300:
            self._answered(response, now)
        elif (
            (status in (401, 407) and self._authenticate(response, now))
            or (status == 422 and self._retry_min_se(response, now))
            or (300 <= status < 400 and self._redirect(response, now))
        ):
            return
        else:
            by = "local" if status == 487 and self.cancelling else "remote"
            self._fail(status, response.reason, by, now)

    def _provisional(self, response: Response, now: float) -> None:
        # Any provisional response, 100 Trying included, allows a CANCEL (RFC 3261 section
        # 9.1); waiting for a 180 left a call whose callee only sent 100 pending forever.
        self.provisional = True
        if response.status != 100:
            audio = self._audio_of(response, now)
            self.core.emit(
                CallProgressed(self.call_id, response.status, response.reason, audio, now)
            )
        if self.cancel_pending:
            self._send_cancel(now)

    def _audio_of(self, response: Response, now: float) -> AudioSession | None:
        if not response.body or response.content_type != "application/sdp":
            return None
        try:
            return negotiate(SessionDescription.parse(response.body))
        except SipError:
            return None

    def _answered(self, response: Response, now: float) -> None:
        assert self.invite_request is not None
        if self.dialog is not None:
            self.stray_2xx(response, now)
            return
        try:
            self.dialog = Dialog.from_uac(self.invite_request, response)
        except SipError:
            # A 2xx we cannot build a dialog from (no To tag, no Contact): nothing to ACK.
            self._fail(502, "Bad 2xx", "remote", now)
            return
        self.core.cancel_timer(self._ring_timer)
        self._send_ack(now)
        self._read_session_timer(response, now)
        if self.cancelling or self.ended:
            # The 2xx crossed our CANCEL (RFC 3261 section 9.1): ACK it, then BYE. The call
            # ends as cancelled (487), not as an answered call that hung up (200): no
            # CallAnswered was reported for it.
            self.end_cause = (487, "Call cancelled")
            self.hangup(now, 'SIP;cause=487;text="Call cancelled"')
            return
        self.answered = True
        try:
            audio = negotiate(SessionDescription.parse(response.body))
        except SipError as exc:
            cause = exc.status if isinstance(exc, NoCommonCodec) else 488
            # RFC 3264 section 6: no common codec; the call ends with the Reason (RFC 3326).
            self.end_cause = (cause, exc.message)
            self.hangup(now, f'SIP;cause={cause};text="No common codec"')
            return
        self.core.emit(CallAnswered(self.call_id, audio, now))

    def _send_ack(self, now: float) -> None:
        """The ACK for a 2xx: a new transaction-less request of the dialog (section 13.2.2.4)."""
        assert self.dialog is not None and self.invite_request is not None
        headers = []
        if self.auth is not None:
            headers = [
                (n, v)
                for n, v in self.invite_request.headers
                if n in ("Authorization", "Proxy-Authorization")
            ]
        self.ack = self.dialog.create_request(
            "ACK",
            via=self.core.via(self.transport),
            cseq=self.invite_request.cseq.seq,
            headers=headers,
        )
        self.core.send_stateless(self.ack, self._dialog_destination())

    def stray_2xx(self, response: Response, now: float) -> None:
        """A retransmitted 2xx: re-send the same ACK; a 2xx from another fork: ACK and BYE it."""
        if (
            self.dialog is not None
            and self.ack is not None
            and response.to.tag == self.dialog.remote_tag
        ):
            self.core.send_stateless(self.ack, self._dialog_destination())
            return
        if self.invite_request is None:
            return
        try:
            other = Dialog.from_uac(self.invite_request, response)
        except SipError:
            return
        dest = self.core.destination(str(other.next_hop()), self.transport)
        ack = other.create_request("ACK", via=self.core.via(self.transport), cseq=response.cseq.seq)
        self.core.send_stateless(ack, dest)
        bye = other.create_request("BYE", via=self.core.via(self.transport))
        self.core.send_request(bye, dest, now, None)

    def _authenticate(self, response: Response, now: float) -> bool:
        assert self.invite_request is not None
        if self.auth is None:
            return False
        proxy = response.status == 407
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        challenge = choose_challenge(response.headers.get_lines(name))
        if challenge is None:
            return False
        sent = self.invite_request.headers.get_lines(
            "Proxy-Authorization" if proxy else "Authorization"
        )
        value = self.auth.answer(
            challenge,
            method="INVITE",
            uri=self.invite_request.uri,
            rng=self.core.rng,
            body=self.invite_request.body,
            proxy=proxy,
            call_id=self.call_id,
            rejected=sent,
        )
        if value is None:
            return False
        header = "Proxy-Authorization" if proxy else "Authorization"
        self._resend(self.invite_request, now, [(header, value)])
        return True

    def _credentials(self, request: Request, challenge: Response) -> list[tuple[str, str]]:
        """Answer a 401/407 to a request of the dialog (BYE, session refresh) with our
        trunk's credentials; none when there are none or they were just rejected."""
        if self.auth is None:
            return []
        proxy = challenge.status == 407
        offered = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        header = "Proxy-Authorization" if proxy else "Authorization"
        chosen = choose_challenge(challenge.headers.get_lines(offered))
        if chosen is None:
            return []
        value = self.auth.answer(
            chosen,
            method=request.method,
            uri=request.uri,
            rng=self.core.rng,
            body=request.body,
            proxy=proxy,
            call_id=self.call_id,
            rejected=request.headers.get_lines(header),
        )
        return [] if value is None else [(header, value)]

    def _retry_min_se(self, response: Response, now: float) -> bool:
        """422 (RFC 4028 section 7.4): retry once with the interval the far end asks for."""
        assert self.invite_request is not None
        min_se = response.headers.get("Min-SE")
        if min_se is None:
            return False
        value = min_se.split(";")[0].strip()
        current = self.invite_request.headers.get("Session-Expires") or "0"
        if not value.isdigit() or int(value) <= int(current.split(";")[0]):
            return False
        self._resend(self.invite_request, now, [("Session-Expires", value), ("Min-SE", value)])
        return True

    def _redirect(self, response: Response, now: float) -> bool:
        assert self.invite_request is not None
        if not self.core.follow_redirects or self.redirects >= self.core.max_redirects:
            return False
        try:
            contacts = response.contact
            target = SipURI.parse(contacts[0].uri) if contacts else None
        except SipError:
            return False
        if target is None:
            return False
        self.redirects += 1
        transport = target.transport or self.transport
        # RFC 3261 section 8.1.3.4: the new request goes to the Contact as Request-URI.
        self.destination = Address(
            transport, target.host_address, target.port or (5061 if transport == "tls" else 5060)
        )
        request = self.invite_request
        uri = str(SipURI(target.scheme, target.user, None, target.host, target.port, target.params))
        self.invite_request = Request("INVITE", uri, request.headers, request.body)
        self._resend(self.invite_request, now, [])
        return True

    # -- ending -------------------------------------------------------------------------------

    def _ring_timeout(self, now: float) -> None:
        if self.dialog is None and not self.ended:
            self.hangup(now, 'SIP;cause=487;text="Ring timeout"')

    def hangup(self, now: float, reason: str | None = None) -> None:
        """CANCEL before the answer (once a provisional arrived, section 9.1), BYE after."""
        if self.dialog is not None:
            super().hangup(now, reason)
            return
        if self.cancelling or self.ended:
            return
        self.cancelling = True
        if self.provisional:
            self._send_cancel(now)
        else:
            # "a CANCEL ... SHOULD NOT be sent until a provisional response is received".
            self.cancel_pending = True

    def _send_cancel(self, now: float) -> None:
        assert self.invite_request is not None and self.invite_tx is not None
        self.cancel_pending = False
        cancel = build_cancel(self.invite_request)
        self.invite_tx.cancel_sent(now)
        self.core.send_request(cancel, self.destination, now, None)

    def _fail(self, cause: int, reason: str, by: str, now: float) -> None:
        self.core.cancel_timer(self._ring_timer)
        self._end(cause, reason, by, now)

    def _read_session_timer(self, response: Response, now: float) -> None:
        value = response.headers.get("Session-Expires")
        if value is None:
            return
        number, _, params = value.partition(";")
        if not number.strip().isdigit():
            return
        who = parse_params(params).get("refresher") if params else "uac"
        self._arm_session(int(number), "local" if who in ("uac", None) else "remote", now)

    def _dialog_destination(self) -> Address:
        assert self.dialog is not None
        return self.core.destination(str(self.dialog.next_hop()), self.transport)


class InboundCall(Call):
    """A call a trunk places to us (UAS): the opt-out line answers these."""

    def __init__(self, core: Core, call_id: str, transport: str) -> None:
        super().__init__(core, call_id, transport, b"")
        self.stx: ServerTransaction | None = None
        self.request: Request | None = None
        self._retransmit: int | None = None
        self._ok: Response | None = None
        self._source: Address | None = None
        #: Our To tag: drawn once, so that the 180 and the 200 name the same dialog (12.1.1).
        self.local_tag = core.tag()

    @classmethod
    def receive(
        cls, core: Endpoint, stx: ServerTransaction, request: Request, trunk: str, now: float
    ) -> InboundCall:
        source = core.destination_of(stx)
        call = cls(core, request.call_id, source.transport)
        call.stx, call.request, call._source = stx, request, source
        caller = request.from_.uri
        for value in request.headers.get_all("P-Asserted-Identity"):
            caller = NameAddr.parse(value).uri
            break
        try:
            called = SipURI.parse(request.uri).user or request.to.sip_uri().user or ""
        except SipError:
            called = ""
        core.emit(IncomingCall(call.call_id, trunk, caller, called, request.body, now))
        return call

    def accept(self, sdp: bytes, now: float) -> None:
        """200 OK with our SDP; re-sent until the ACK (RFC 3261 section 13.3.1.4)."""
        if self.stx is None or self.request is None or self.dialog is not None or self.ended:
            return
        tag = self.local_tag
        self.local_sdp = sdp
        self.dialog = Dialog.from_uas(self.request, tag)
        ok = response_for(self.request, 200, to_tag=tag)
        ok.headers.add("Contact", self.core.contact(self.transport))
        ok.headers.add("Content-Type", "application/sdp")
        ok.body = sdp
        self.answered = True
        self.send_final(self.stx, ok, now)

    def ring(self, now: float, status: int = 180) -> None:
        """A provisional response (180 Ringing, 183) with the tag the 200 will carry."""
        if self.stx is None or self.request is None or self.dialog is not None or self.ended:
            return
        self.core.respond(self.stx, response_for(self.request, status, to_tag=self.local_tag), now)

    def reject(self, status: int, now: float, reason: str = "") -> None:
        if self.stx is None or self.request is None or self.dialog is not None or self.ended:
            return
        self.core.respond(
            self.stx, response_for(self.request, status, reason, to_tag=self.local_tag), now
        )
        self._end(status, reason or "Rejected", "local", now)

    def send_final(self, stx: ServerTransaction, response: Response, now: float) -> None:
        self.core.respond(stx, response, now)
        if stx.request.method == "INVITE" and 200 <= response.status < 300:
            # RFC 6026: the TU re-sends its 2xx at T1, 2*T1 ... capped at T2, until the ACK.
            self._ok = response
            self._retransmit_ok(now, self.core.timers.t1, now + 64 * self.core.timers.t1)

    def _retransmit_ok(self, now: float, interval: float, give_up: float) -> None:
        def fire(at: float) -> None:
            if self._ok is None or self.ended:
                return
            if at >= give_up:
                # Section 13.3.1.4: no ACK in 64*T1 -> the session is confirmed then BYE'd.
                self._ok = None
                self.end_cause = (408, "No ACK")
                self.hangup(at, 'SIP;cause=408;text="No ACK"')
                return
            assert self._source is not None
            self.core.send_stateless(self._ok, self._source)
            self._retransmit_ok(at, min(interval * 2, self.core.timers.t2), give_up)

        # Section 13.3.1.4: the retransmissions are "independent of whatever transport
        # protocol is used to send the response" (a proxy on the way may use UDP), and the
        # BYE comes at 64*T1 exactly, not at the next retransmission after it.
        self._retransmit = self.core.schedule(min(now + interval, give_up), fire)

    def receive_ack(self, ack: Request, now: float) -> None:
        if self._ok is not None and ack.cseq.seq == self._ok.cseq.seq:
            self._ok = None
            self.core.cancel_timer(self._retransmit)

    def cancelled(self, target: ServerTransaction, now: float) -> None:
        # A CANCEL that crossed our final answer (a reject) finds the call ended: the INVITE
        # is already answered, and a 487 now would be refused by its transaction (it raised).
        if self.ended:
            return
        if target is self.stx and self.dialog is None and self.request is not None:
            self.core.respond(target, response_for(self.request, 487, to_tag=self.local_tag), now)
            self._end(487, "Request Terminated", "remote", now)
