"""What every call shares once a dialog exists: in-dialog requests, session timers, BYE.

RFC 3261 sections 12 to 15 and RFC 4028. :class:`Call` is the base of the outbound and inbound
calls of :mod:`gateway.sip.invite`; it talks to the endpoint only through the small interface
of :class:`Core` (send a request, respond, schedule, emit).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Protocol

from gateway.sip.dialog import Dialog
from gateway.sip.errors import SipError
from gateway.sip.events import Address, CallEnded, CallUpdated, DtmfReceived, Event
from gateway.sip.headers import parse_params
from gateway.sip.message import Request, Response, response_for
from gateway.sip.sdp import SessionDescription, make_answer
from gateway.sip.transaction import ClientTransaction, ServerTransaction, Timers

__all__ = ["Call", "Core", "parse_dtmf_info"]

ResponseHandler = Callable[[ClientTransaction, Response | None, float], None]


class Core(Protocol):
    """What a call needs from the endpoint."""

    rng: random.Random

    @property
    def timers(self) -> Timers: ...
    @property
    def session_expires(self) -> int: ...
    @property
    def min_se(self) -> int: ...
    @property
    def follow_redirects(self) -> bool: ...
    @property
    def max_redirects(self) -> int: ...
    @property
    def user_agent(self) -> str: ...
    def send_request(
        self, request: Request, destination: Address, now: float, handler: ResponseHandler | None
    ) -> ClientTransaction: ...
    def send_stateless(self, message: Request | Response, destination: Address) -> None: ...
    def respond(self, stx: ServerTransaction, response: Response, now: float) -> None: ...
    def schedule(self, deadline: float, fn: Callable[[float], None]) -> int: ...
    def cancel_timer(self, handle: int | None) -> None: ...
    def emit(self, event: Event) -> None: ...
    def forget(self, call_id: str) -> None: ...
    def tag(self) -> str: ...
    def via(self, transport: str) -> str: ...
    def contact(self, transport: str, user: str = "gw") -> str: ...
    def capabilities(self, response: Response) -> Response: ...
    def destination(self, uri: str, transport: str) -> Address: ...


class Call:
    """A call with (eventually) a confirmed dialog: the in-dialog half of RFC 3261."""

    #: Whether we chose the Call-ID (we placed the call): RFC 3261 section 14.1 glare timing.
    owns_call_id = False

    def __init__(self, core: Core, call_id: str, transport: str, local_sdp: bytes) -> None:
        self.core = core
        self.call_id = call_id
        self.transport = transport
        self.dialog: Dialog | None = None
        self.local_sdp = local_sdp
        self.ended = False
        self.answered = False
        # RFC 4028: who refreshes ("local" or "remote"), the interval, and the timer handle.
        self.refresher: str | None = None
        self.interval: int = 0
        self._session_timer: int | None = None
        self._bye_tx: ClientTransaction | None = None
        #: The cause reported when our BYE completes, when it is not a plain hang-up (488).
        self.end_cause: tuple[int, str] | None = None
        # The 2xx to a re-INVITE of the far end, re-sent until its ACK (section 13.3.1.4).
        self._unacked: Response | None = None
        self._unacked_timer: int | None = None
        # Our refresh re-INVITE awaits its final response: a re-INVITE of the far end gets 491.
        self._reinvite_pending = False

    # -- dialog membership --------------------------------------------------------------------

    def in_dialog(self, request: Request) -> bool:
        d = self.dialog
        return d is not None and request.to.tag == d.local_tag and request.from_.tag == d.remote_tag

    def receive_request(self, stx: ServerTransaction, request: Request, now: float) -> None:
        """A request within our dialog (RFC 3261 section 12.2.2)."""
        assert self.dialog is not None
        if self.ended:
            # The call lingers only to absorb retransmissions; its dialog ended with the BYE
            # (section 15), so a new request in it is answered as for no dialog.
            self.core.respond(stx, response_for(request, 481), now)
            return
        if not self.dialog.receive_request(request):
            self.core.respond(stx, response_for(request, 500, "Out of order CSeq"), now)
            return
        method = request.method
        if method == "BYE":
            self.core.respond(stx, response_for(request, 200), now)
            self._end(200, "BYE", "remote", now)
        elif method in ("INVITE", "UPDATE"):
            self._receive_offer(stx, request, now)
        elif method == "INFO":
            self._receive_info(stx, request, now)
        elif method == "OPTIONS":
            self.core.respond(stx, self.core.capabilities(response_for(request, 200)), now)
        else:
            self.core.respond(stx, response_for(request, 405, headers=_allow()), now)

    def receive_ack(self, ack: Request, now: float) -> None:
        """An ACK for a 2xx we sent: stop re-sending it."""
        if self._unacked is not None and ack.cseq.seq == self._unacked.cseq.seq:
            self._unacked = None
            self.core.cancel_timer(self._unacked_timer)

    def cancelled(self, target: ServerTransaction, now: float) -> None:
        """A CANCEL matched one of our INVITE server transactions."""

    def stray_2xx(self, response: Response, now: float) -> None:
        """A 2xx that matched no transaction (its transaction ended): overridden by the UAC."""

    def server_timeout(self, stx: ServerTransaction, now: float) -> None:
        """Timer H fired on one of our server transactions: no ACK ever came."""

    # -- re-INVITE and UPDATE from the far end --------------------------------------------------

    def _receive_offer(self, stx: ServerTransaction, request: Request, now: float) -> None:
        if request.method == "INVITE" and self._reinvite_pending:
            # RFC 3261 section 14.2: an INVITE while ours is in progress "MUST return a 491".
            self.core.respond(stx, response_for(request, 491), now)
            return
        try:
            interval, refresher = self._session_request(request)
        except SipError as exc:
            self.core.respond(stx, response_for(request, exc.status, headers=exc.headers), now)
            return
        response = response_for(request, 200)
        response.headers.add("Contact", self.core.contact(self.transport))
        if request.body:
            try:
                offer = SessionDescription.parse(request.body)
                ours = SessionDescription.parse(self.local_sdp)
                audio_port = next(m.port for m in ours.media if m.media == "audio")
                answer, audio = make_answer(
                    offer,
                    address=ours.connection or ours.origin.address,
                    port=audio_port,
                    session_id=ours.origin.session_id,
                    version=ours.origin.version + 1,
                )
            except (SipError, StopIteration) as exc:
                status = exc.status if isinstance(exc, SipError) else 488
                self.core.respond(stx, response_for(request, status), now)
                return
            body = bytes(answer)
            if _without_origin(body) != _without_origin(self.local_sdp):
                self.local_sdp = body  # RFC 3264 section 8: a changed session, a new version
            response.headers.add("Content-Type", "application/sdp")
            response.body = self.local_sdp
            self.core.emit(CallUpdated(self.call_id, audio, now))
        elif request.method == "INVITE":
            # An offerless re-INVITE: our 2xx carries an offer, the ACK the answer (13.2.1).
            response.headers.add("Content-Type", "application/sdp")
            response.body = self.local_sdp
        if interval:
            who = "uac" if refresher == "remote" else "uas"
            # RFC 4028 section 9: Require "timer" when the UAC refreshes, and otherwise only
            # toward a UAC that said it supports the extension.
            if who == "uac" or "timer" in _supported(request):
                response.headers.add("Require", "timer")
            response.headers.add("Session-Expires", f"{interval};refresher={who}")
            self._arm_session(interval, refresher, now)
        self.send_final(stx, response, now)

    def send_final(self, stx: ServerTransaction, response: Response, now: float) -> None:
        """Send a final response; a 2xx to a re-INVITE is re-sent until its ACK comes."""
        self.core.respond(stx, response, now)
        if stx.request.method == "INVITE" and 200 <= response.status < 300:
            self._unacked = response
            t1 = self.core.timers.t1
            self._resend_2xx(stx, response, now, t1, now + 64 * t1)

    def _resend_2xx(
        self, stx: ServerTransaction, response: Response, now: float, interval: float, end: float
    ) -> None:
        # RFC 3261 section 13.3.1.4: the UAS core re-sends its 2xx at T1, 2*T1 ... capped at
        # T2, until the ACK; none within 64*T1 ends the session with BYE. The copies go through
        # the transaction, which lets them pass in its Accepted state (RFC 6026 section 8).
        # Without this, a lost 200 to the far end's re-INVITE (hold) was never repeated.
        def fire(at: float) -> None:
            if self._unacked is not response or self.ended:
                return
            if at >= end:
                self._unacked = None
                self.end_cause = (408, "No ACK")
                self.hangup(at, 'SIP;cause=408;text="No ACK"')
                return
            self.core.respond(stx, response, at)
            self._resend_2xx(stx, response, at, min(2 * interval, self.core.timers.t2), end)

        self._unacked_timer = self.core.schedule(min(now + interval, end), fire)

    def _session_request(self, request: Request) -> tuple[int, str | None]:
        """Read RFC 4028 headers of a refresh request: (interval, who refreshes) or (0, None)."""
        value = request.headers.get("Session-Expires")
        if value is None:
            return 0, None
        number, _, params = value.partition(";")
        try:
            interval = int(number.strip())
        except ValueError as exc:
            raise SipError("malformed Session-Expires") from exc
        if interval < self.core.min_se:
            # RFC 4028 section 8.1: too small -> 422 with our Min-SE.
            raise SipError(
                "Session interval too small", 422, headers=[("Min-SE", str(self.core.min_se))]
            )
        who = parse_params(params).get("refresher") if params else None
        if who is None:
            # Section 9: the UAS chooses, and only a UAC that supports "timer" can refresh (a
            # proxy may have added Session-Expires for a UAC that does not).
            who = "uac" if "timer" in _supported(request) else "uas"
        # "uac" is the sender of this request, i.e. the far end (RFC 4028 section 9).
        return interval, "local" if who == "uas" else "remote"

    def _arm_session(self, interval: int, refresher: str | None, now: float) -> None:
        """Start the RFC 4028 timer: refresh at half the interval, or expect the far end's."""
        self.core.cancel_timer(self._session_timer)
        self.interval, self.refresher = interval, refresher
        if refresher == "local":
            self._session_timer = self.core.schedule(now + interval / 2, self._refresh)
        else:
            # Section 10: without a refresh, BYE "before the session expiration", leaving
            # min(32, interval / 3) seconds for the refresh to arrive.
            deadline = now + interval - min(32.0, interval / 3)
            self._session_timer = self.core.schedule(deadline, self._session_expired)

    def _refresh(self, now: float) -> None:
        """Refresh the session with a re-INVITE carrying our unchanged SDP (section 7.4)."""
        if self.ended or self.dialog is None:
            return
        request = self.dialog.create_request(
            "INVITE",
            via=self.core.via(self.transport),
            contact=self.core.contact(self.transport),
            headers=[
                ("Supported", "timer"),
                ("Session-Expires", f"{self.interval};refresher=uac"),
                ("Content-Type", "application/sdp"),
            ],
            body=self.local_sdp,
        )
        dest = self.core.destination(str(self.dialog.next_hop()), self.transport)

        def answered(tx: ClientTransaction, response: Response | None, at: float) -> None:
            if response is None or response.status >= 200:
                self._reinvite_pending = False
            if response is None or response.status in (408, 481):
                # RFC 3261 section 14.1: the dialog is gone; end the call.
                self.end_cause = (408, "Session refresh failed")
                self.hangup(at, 'SIP;cause=408;text="Session refresh failed"')
            elif 200 <= response.status < 300 and self.dialog is not None:
                # The CSeq of the INVITE answered (one more if it was re-sent with credentials).
                ack = self.dialog.create_request(
                    "ACK", via=self.core.via(self.transport), cseq=response.cseq.seq
                )
                self.core.send_stateless(ack, dest)
                self._arm_session(self.interval, "local", at)
            elif response.status == 491:
                # Glare with a re-INVITE of the far end (RFC 3261 section 14.1): try again
                # later, 2.1-4 s for the owner of the Call-ID, else 0-2 s. Before, nothing was
                # re-armed and the session expired at the far end.
                low, high = (2.1, 4.0) if self.owns_call_id else (0.0, 2.0)
                delay = self.core.rng.uniform(low, high)
                self._session_timer = self.core.schedule(at + delay, self._refresh)

        self._reinvite_pending = True
        self._send_in_dialog(request, dest, now, answered)

    def _session_expired(self, now: float) -> None:
        if not self.ended:
            self.end_cause = (408, "Session expired")
            self.hangup(now, 'SIP;cause=408;text="Session expired"')

    # -- INFO ---------------------------------------------------------------------------------

    def _receive_info(self, stx: ServerTransaction, request: Request, now: float) -> None:
        digit, duration = parse_dtmf_info(request.content_type, request.body)
        self.core.respond(stx, response_for(request, 200), now)
        if digit is not None:
            self.core.emit(DtmfReceived(self.call_id, digit, duration, now))

    # -- ending -------------------------------------------------------------------------------

    def hangup(self, now: float, reason: str | None = None) -> None:
        """Send BYE in the confirmed dialog; CallEnded follows when it completes."""
        if self.ended or self.dialog is None or self._bye_tx is not None:
            return
        headers = [("Reason", reason)] if reason else []
        bye = self.dialog.create_request("BYE", via=self.core.via(self.transport), headers=headers)
        dest = self.core.destination(str(self.dialog.next_hop()), self.transport)

        def answered(tx: ClientTransaction, response: Response | None, at: float) -> None:
            if response is None or response.status >= 200:
                cause, text = self.end_cause or (200, "BYE")
                self._end(cause, text, "local", at)

        self._bye_tx = self._send_in_dialog(bye, dest, now, answered)

    def _send_in_dialog(
        self,
        request: Request,
        dest: Address,
        now: float,
        handler: ResponseHandler,
        *,
        retried: bool = False,
    ) -> ClientTransaction:
        """Send a request of the dialog, answering one 401/407 with the trunk's credentials.

        RFC 3261 section 22.2: the same request again, with the next CSeq and a new branch.
        A trunk that challenges BYE otherwise kept the call up on its side (the 407 ended it
        on ours), and a challenged session refresh let the session lapse.
        """

        def answered(tx: ClientTransaction, response: Response | None, at: float) -> None:
            if response is not None and response.status in (401, 407) and not retried:
                credentials = self._credentials(request, response)
                if credentials and self.dialog is not None:
                    self.dialog.local_seq += 1
                    headers = request.headers.copy()
                    headers.set("Via", self.core.via(self.transport))
                    headers.set("CSeq", f"{self.dialog.local_seq} {request.method}")
                    for name, value in credentials:
                        headers.set(name, value)
                    again = Request(request.method, request.uri, headers, request.body)
                    self._send_in_dialog(again, dest, at, handler, retried=True)
                    return
            handler(tx, response, at)

        return self.core.send_request(request, dest, now, answered)

    def _credentials(self, request: Request, challenge: Response) -> list[tuple[str, str]]:
        """Headers answering ``challenge`` for ``request``; none here (see OutboundCall)."""
        return []

    def _end(self, cause: int, reason: str, by: str, now: float) -> None:
        if self.ended:
            return
        self.ended = True
        self.core.cancel_timer(self._session_timer)
        self.core.emit(CallEnded(self.call_id, cause, reason, by, now, self.answered))
        # Kept for 64*T1 to absorb retransmissions (a 2xx to re-ACK, a repeated BYE).
        linger = 64 * self.core.timers.t1
        self.core.schedule(now + linger, lambda at: self.core.forget(self.call_id))


def parse_dtmf_info(content_type: str | None, body: bytes) -> tuple[str | None, int | None]:
    """The digit of a SIP INFO body: ``application/dtmf-relay`` (``Signal=5``, ``Duration=160``)
    or ``application/dtmf`` (the digit alone). Returns (None, None) for anything else."""
    text = body.decode("utf-8", "replace").strip()
    if content_type == "application/dtmf":
        key = text[:1].upper()
        return (key, None) if key and key in "0123456789*#ABCD" else (None, None)
    if content_type != "application/dtmf-relay":
        return None, None
    digit: str | None = None
    duration: int | None = None
    for line in text.splitlines():
        name, _, value = line.partition("=")
        name, value = name.strip().lower(), value.strip()
        if name == "signal" and value:
            digit = {"10": "*", "11": "#"}.get(value, value[:1].upper())
        elif name == "duration" and value.isdigit():
            duration = int(value)
    if digit is None or digit not in "0123456789*#ABCD":
        return None, None
    return digit, duration


def _supported(request: Request) -> set[str]:
    """The option tags of the request's Supported headers, lower-cased."""
    return {tag.strip().lower() for tag in request.headers.get_all("Supported")}


def _without_origin(sdp: bytes) -> bytes:
    return b"\n".join(line for line in sdp.splitlines() if not line.startswith(b"o="))


def _allow() -> Sequence[tuple[str, str]]:
    return [("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO")]
