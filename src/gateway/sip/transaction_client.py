"""Client transactions: RFC 3261 sections 17.1.1 (INVITE) and 17.1.2 (non-INVITE), RFC 6026.

A client transaction sends its request at construction (read it with ``take_outgoing()``),
retransmits it on Timer A or E over unreliable transports, filters the responses it passes up to
the TU, and builds the ACK for a non-2xx final response to INVITE itself.
"""

from __future__ import annotations

import logging

from gateway.sip.message import Headers, Request, Response
from gateway.sip.transaction_base import (
    DEFAULT_TIMERS,
    MAGIC_COOKIE,
    Key,
    State,
    Timer,
    Timers,
    Transaction,
    TransactionError,
    has_rfc3261_branch,
    request_client_key,
)

logger = logging.getLogger(__name__)


def client_key(response: Response) -> Key:
    """The key of the client transaction ``response`` belongs to (RFC 3261 section 17.1.3).

    The branch of the top Via, and the CSeq method: a CANCEL carries the branch of its INVITE,
    so the method tells their responses apart.
    """
    return (response.top_via.branch, response.cseq.method)


def build_ack(request: Request, response: Response) -> Request:
    """The ACK for a non-2xx final ``response`` to the INVITE ``request`` (RFC 3261 17.1.1.3).

    Same Request-URI, Call-ID, From and CSeq number as the INVITE (method ACK); the top Via of
    the INVITE only, so it reaches the same server transaction; the To of the response, with its
    tag; and the INVITE's Route header fields, so that it follows the same path.
    """
    headers = Headers()
    headers.add("Via", request.headers.get_all("Via")[0])
    for route in request.headers.get_all("Route"):
        headers.add("Route", route)
    headers.add("Max-Forwards", request.headers.get("Max-Forwards") or "70")
    headers.add("From", _required(request.headers.get("From"), "From"))
    headers.add("To", _required(response.headers.get("To"), "To"))
    headers.add("Call-ID", _required(request.headers.get("Call-ID"), "Call-ID"))
    headers.add("CSeq", f"{request.cseq.seq} ACK")
    headers.add("Content-Length", "0")
    return Request("ACK", request.uri, headers)


def _required(value: str | None, name: str) -> str:
    if value is None:
        raise TransactionError(f"cannot build an ACK without a {name} header field")
    return value


class ClientTransaction(Transaction):
    """What both client machines share: the request, its key, the outgoing queue."""

    request: Request
    key: Key

    def __init__(self, request: Request, state: State, *, reliable: bool, timers: Timers) -> None:
        super().__init__(state, reliable=reliable, timers=timers)
        if request.method == "ACK":
            # RFC 3261 17.1: the ACK for a 2xx is sent by the TU outside any transaction, and the
            # ACK for a non-2xx is built by the INVITE client transaction itself.
            raise TransactionError("an ACK has no client transaction of its own")
        if not has_rfc3261_branch(request.top_via.branch):
            # RFC 3261 8.1.1.7: every request we send carries a unique magic-cookie branch;
            # matching responses (17.1.3) depends on it.
            raise TransactionError(
                f"branch {request.top_via.branch!r} does not start with {MAGIC_COOKIE}"
            )
        self.request = request
        self.key = request_client_key(request)
        self._outgoing: list[Request] = [request]
        self._interval = timers.t1

    @property
    def _call_id(self) -> str | None:
        return self.request.headers.get("Call-ID")

    def take_outgoing(self) -> list[Request]:
        """The requests to hand to the transport now, oldest first; the queue is emptied."""
        out, self._outgoing = self._outgoing, []
        return out

    def receive(self, response: Response, now: float) -> Response | None:
        """Process a response matched to this transaction (see :func:`client_key`).

        Returns the response when the TU must see it, None when the transaction absorbed it.
        """
        raise NotImplementedError


class InviteClientTransaction(ClientTransaction):
    """RFC 3261 section 17.1.1 (figure 5) as RFC 6026 section 8 corrects it: CALLING, PROCEEDING,
    COMPLETED, ACCEPTED, TERMINATED."""

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool,
        timers: Timers = DEFAULT_TIMERS,
        now: float,
    ) -> None:
        if request.method != "INVITE":
            raise TransactionError(f"{request.method} needs a non-INVITE client transaction")
        super().__init__(request, State.CALLING, reliable=reliable, timers=timers)
        # RFC 3261 17.1.1.2: "If an unreliable transport is being used, the client transaction
        # MUST start timer A with a value of T1 ... For any transport, the client transaction
        # MUST start timer B with a value of 64*T1 seconds".
        if not reliable:
            self._start(Timer.A, now + timers.t1)
        self._start(Timer.B, now + timers.transaction_timeout)
        self._ack: Request | None = None

    @property
    def ack(self) -> Request | None:
        """The ACK this transaction built for a non-2xx final response, if any."""
        return self._ack

    def cancel_sent(self, now: float) -> None:
        """The TU sent a CANCEL for this INVITE (RFC 3261 section 9.1).

        Without a final response to the INVITE within 64*T1 of the CANCEL, the client considers
        the INVITE cancelled and destroys its transaction: Timer B is re-armed from now to serve
        as that limit, and reports ``timed_out`` when it fires. (In CALLING no CANCEL should be
        sent yet, and Timer B runs anyway.)
        """
        if self.state is State.PROCEEDING:
            self._start(Timer.B, now + self.timers.transaction_timeout)

    def receive(self, response: Response, now: float) -> Response | None:
        status = response.status
        state = self.state
        if state in (State.CALLING, State.PROCEEDING):
            if status < 200:
                # 17.1.1.2: a provisional response stops retransmissions; it goes to the TU.
                if state is State.CALLING:
                    self.state = State.PROCEEDING
                    self._stop(Timer.A, Timer.B)
                return response
            self._stop(Timer.A, Timer.B)
            if status < 300:
                # RFC 6026 section 8.4: a 2xx moves the transaction to Accepted and starts
                # Timer M, so that retransmitted or forked 2xx still reach the TU, which ACKs.
                self.state = State.ACCEPTED
                self._start(Timer.M, now + self.timers.transaction_timeout)
                return response
            # 17.1.1.2: 300-699: generate the ACK, pass the response up, enter Completed and
            # set Timer D (at least 32 s unreliable, zero reliable) to absorb retransmissions.
            self.state = State.COMPLETED
            self._ack = build_ack(self.request, response)
            self._outgoing.append(self._ack)
            self._start(Timer.D, now + (0.0 if self.reliable else self.timers.timer_d))
            return response
        if state is State.COMPLETED:
            if status >= 300 and self._ack is not None:
                # "Any retransmissions of the final response that are received while in the
                # Completed state MUST cause the ACK to be re-passed to the transport layer".
                self._outgoing.append(self._ack)
            return None
        if state is State.ACCEPTED:
            # RFC 6026 section 8.4: in Accepted every 2xx matching the transaction is passed
            # up to the TU (retransmissions, and 2xx from other forks); other responses are not.
            return response if 200 <= status < 300 else None
        return None

    def _fire(self, timer: Timer, now: float) -> None:
        if timer is Timer.A and self.state is State.CALLING:
            # 17.1.1.2: retransmit and double the interval; Timer B bounds the series.
            self._outgoing.append(self.request)
            self._interval *= 2
            self._start(Timer.A, now + self._interval)
        elif timer is Timer.B and self.state in (State.CALLING, State.PROCEEDING):
            # 17.1.1.2: "the client transaction SHOULD inform the TU that a timeout has
            # occurred"; PROCEEDING only gets here after cancel_sent() re-armed Timer B.
            logger.debug("INVITE %s timed out (Timer B)", self._call_id)
            self.timed_out = True
            self._terminate(now)
        elif timer in (Timer.D, Timer.M):
            self._terminate(now)


class NonInviteClientTransaction(ClientTransaction):
    """RFC 3261 section 17.1.2 (figure 6): TRYING, PROCEEDING, COMPLETED, TERMINATED."""

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool,
        timers: Timers = DEFAULT_TIMERS,
        now: float,
    ) -> None:
        if request.method == "INVITE":
            raise TransactionError("INVITE needs an INVITE client transaction")
        super().__init__(request, State.TRYING, reliable=reliable, timers=timers)
        # 17.1.2.2: Timer F (64*T1) for every transport, Timer E (T1) for unreliable ones.
        if not reliable:
            self._start(Timer.E, now + timers.t1)
        self._start(Timer.F, now + timers.transaction_timeout)

    def receive(self, response: Response, now: float) -> Response | None:
        if self.state not in (State.TRYING, State.PROCEEDING):
            # 17.1.2.2: in Completed, response retransmissions are absorbed.
            return None
        if response.status < 200:
            # Timer E keeps its deadline; when it fires in Proceeding it is reset to T2.
            self.state = State.PROCEEDING
            return response
        # 17.1.2.2: a final response goes up; Completed buffers retransmissions for Timer K
        # (T4 unreliable, zero reliable).
        self.state = State.COMPLETED
        self._stop(Timer.E, Timer.F)
        self._start(Timer.K, now + (0.0 if self.reliable else self.timers.t4))
        return response

    def _fire(self, timer: Timer, now: float) -> None:
        if timer is Timer.E and self.state in (State.TRYING, State.PROCEEDING):
            # 17.1.2.2: in Trying the interval doubles up to T2; in Proceeding it is T2.
            self._outgoing.append(self.request)
            if self.state is State.TRYING:
                self._interval = min(2 * self._interval, self.timers.t2)
            else:
                self._interval = self.timers.t2
            self._start(Timer.E, now + self._interval)
        elif timer is Timer.F and self.state in (State.TRYING, State.PROCEEDING):
            logger.debug("%s %s timed out (Timer F)", self.request.method, self._call_id)
            self.timed_out = True
            self._terminate(now)
        elif timer is Timer.K:
            self._terminate(now)


def client_transaction(
    request: Request,
    *,
    reliable: bool,
    timers: Timers = DEFAULT_TIMERS,
    now: float,
) -> ClientTransaction:
    """A new client transaction for ``request``, INVITE or non-INVITE by its method.

    The request is queued for sending at once: call ``take_outgoing()``.
    """
    if request.method == "INVITE":
        return InviteClientTransaction(request, reliable=reliable, timers=timers, now=now)
    return NonInviteClientTransaction(request, reliable=reliable, timers=timers, now=now)
