"""Server transactions: RFC 3261 sections 17.2.1 (INVITE) and 17.2.2 (non-INVITE), RFC 6026.

A server transaction is built from the request that created it (the caller passes that request
to the TU), absorbs retransmissions of it by re-sending the last response, retransmits a non-2xx
final response to INVITE until the ACK arrives, and lingers to absorb late retransmissions.
The TU's responses go in with :meth:`ServerTransaction.respond`; everything to send comes out of
``take_outgoing()``.
"""

from __future__ import annotations

import logging

from gateway.sip.message import Request, Response, response_for
from gateway.sip.transaction_base import (
    DEFAULT_TIMERS,
    TRYING_DELAY,
    Key,
    State,
    Timer,
    Timers,
    Transaction,
    TransactionError,
    server_key,
)

logger = logging.getLogger(__name__)


class ServerTransaction(Transaction):
    """What both server machines share: the request, its key, the last response sent."""

    request: Request
    key: Key

    def __init__(self, request: Request, state: State, *, reliable: bool, timers: Timers) -> None:
        super().__init__(state, reliable=reliable, timers=timers)
        if request.method == "ACK":
            # RFC 3261 17.2.3 / 17.1: an ACK either matches an INVITE server transaction or is
            # passed to the TU on its own (ACK for a 2xx); it never creates a transaction.
            raise TransactionError("an ACK never creates a server transaction")
        self.request = request
        self.key = server_key(request)
        self._outgoing: list[Response] = []
        self._last_response: Response | None = None

    @property
    def last_response(self) -> Response | None:
        """The most recent response passed to the transport, re-sent for retransmissions."""
        return self._last_response

    @property
    def response_to_tag(self) -> str | None:
        """The To tag of the last response sent (RFC 2543 ACK matching, section 17.2.3)."""
        return self._last_response.to.tag if self._last_response is not None else None

    def take_outgoing(self) -> list[Response]:
        """The responses to hand to the transport now, oldest first; the queue is emptied."""
        out, self._outgoing = self._outgoing, []
        return out

    def receive(self, request: Request, now: float) -> Request | None:
        """Process a request matched to this transaction (a retransmission, or an ACK).

        Returns the request when the TU must see it, None when the transaction absorbed it.
        """
        raise NotImplementedError

    def respond(self, response: Response, now: float) -> None:
        """Send the TU's ``response`` to the request of this transaction.

        Provisional and final responses move the machine as RFC 3261 17.2.1 / 17.2.2 say. A
        final response the machine cannot send (a second final to an INVITE) raises
        :class:`TransactionError`; one that arrives after termination is dropped.
        """
        raise NotImplementedError

    @property
    def _call_id(self) -> str | None:
        # For log lines: the raw header, which cannot raise as the parsed view may.
        return self.request.headers.get("Call-ID")

    def _send(self, response: Response) -> None:
        self._last_response = response
        self._outgoing.append(response)

    def _resend_last(self) -> None:
        if self._last_response is not None:
            self._outgoing.append(self._last_response)


class InviteServerTransaction(ServerTransaction):
    """RFC 3261 section 17.2.1 (figure 7) as RFC 6026 section 8 corrects it: PROCEEDING, COMPLETED,
    CONFIRMED, ACCEPTED, TERMINATED."""

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool,
        timers: Timers = DEFAULT_TIMERS,
        now: float,
    ) -> None:
        if request.method != "INVITE":
            raise TransactionError(f"{request.method} needs a non-INVITE server transaction")
        super().__init__(request, State.PROCEEDING, reliable=reliable, timers=timers)
        # 17.2.1: "The server transaction MUST generate a 100 (Trying) response unless it knows
        # that the TU will generate a provisional or final response within 200 ms": we give the
        # TU those 200 ms, then answer 100 ourselves to quench the client's retransmissions.
        self._start(Timer.TRYING_100, now + TRYING_DELAY)
        self._interval = timers.t1

    def receive(self, request: Request, now: float) -> Request | None:
        state = self.state
        if request.method == "ACK":
            if state is State.COMPLETED:
                # 17.2.1: the ACK for our non-2xx: stop retransmitting, and absorb further ACKs
                # for Timer I (T4 unreliable, zero reliable).
                self.state = State.CONFIRMED
                self._stop(Timer.G, Timer.H)
                self._start(Timer.I, now + (0.0 if self.reliable else self.timers.t4))
                return None
            if state is State.ACCEPTED:
                # RFC 6026 section 8.7: an ACK matching the transaction in Accepted (same branch
                # or RFC 2543 matching) is for the 2xx, so it belongs to the TU.
                return request
            return None
        if request.method != "INVITE":
            return None
        if state in (State.PROCEEDING, State.COMPLETED):
            # 17.2.1: a retransmitted INVITE gets the most recent provisional response in
            # Proceeding, the final response in Completed.
            self._resend_last()
        # Confirmed and RFC 6026 Accepted absorb the retransmission silently: in Accepted the TU
        # retransmits the 2xx on its own schedule (RFC 3261 13.3.1.4).
        return None

    def respond(self, response: Response, now: float) -> None:
        status = response.status
        state = self.state
        if state is State.PROCEEDING:
            self._stop(Timer.TRYING_100)
            self._send(response)
            if status < 200:
                return
            if status < 300:
                # RFC 6026 section 8: a 2xx moves the transaction to Accepted and starts
                # Timer L; the TU itself retransmits the 2xx until the ACK arrives.
                self.state = State.ACCEPTED
                self._start(Timer.L, now + self.timers.transaction_timeout)
                return
            # 17.2.1: 300-699: Completed, Timer G (T1, unreliable only) retransmits, Timer H
            # (64*T1) gives up waiting for the ACK.
            self.state = State.COMPLETED
            if not self.reliable:
                self._start(Timer.G, now + self._interval)
            self._start(Timer.H, now + self.timers.transaction_timeout)
            return
        if state is State.ACCEPTED and 200 <= status < 300:
            # RFC 6026 section 8: the TU's 2xx retransmissions pass through in Accepted.
            self._send(response)
            return
        if state is State.TERMINATED:
            logger.debug("%d for %s after termination dropped", status, self._call_id)
            return
        raise TransactionError(f"cannot send {status} in state {state.name}")

    def transport_error(self, now: float) -> None:
        """The transport could not send a response (RFC 3261 section 17.2.4).

        In ACCEPTED the failure is reported but the state is kept, as in RFC 6026's diagram of
        the INVITE server transaction: the 2xx belongs to the TU, which may retransmit it or give
        up, and Timer L still absorbs retransmitted INVITEs.
        """
        if self.state is State.ACCEPTED:
            self.transport_failed = True
            return
        super().transport_error(now)

    def _fire(self, timer: Timer, now: float) -> None:
        if timer is Timer.TRYING_100:
            if self.state is State.PROCEEDING and self._last_response is None:
                # 17.2.1: the 100 (Trying) carries no To tag ("downgraded from MAY to SHOULD
                # NOT"); response_for leaves it out when none is given.
                self._send(response_for(self.request, 100))
        elif timer is Timer.G and self.state is State.COMPLETED:
            # 17.2.1: retransmit; the interval doubles up to T2 (T1, 2*T1, 4*T1, T2, T2, ...).
            self._resend_last()
            self._interval = min(2 * self._interval, self.timers.t2)
            self._start(Timer.G, now + self._interval)
        elif timer is Timer.H and self.state is State.COMPLETED:
            # 17.2.1: no ACK came: terminate and "indicate to the TU that a transaction failure
            # has occurred".
            logger.debug("no ACK for %s (Timer H)", self._call_id)
            self.timed_out = True
            self._terminate(now)
        elif timer in (Timer.I, Timer.L):
            self._terminate(now)


class NonInviteServerTransaction(ServerTransaction):
    """RFC 3261 section 17.2.2 (figure 8): TRYING, PROCEEDING, COMPLETED, TERMINATED."""

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool,
        timers: Timers = DEFAULT_TIMERS,
        now: float,
    ) -> None:
        if request.method == "INVITE":
            raise TransactionError("INVITE needs an INVITE server transaction")
        super().__init__(request, State.TRYING, reliable=reliable, timers=timers)

    def receive(self, request: Request, now: float) -> Request | None:
        # 17.2.2: retransmissions are discarded in Trying; in Proceeding and Completed they
        # get the last response again. None of them reaches the TU.
        if self.state in (State.PROCEEDING, State.COMPLETED):
            self._resend_last()
        return None

    def respond(self, response: Response, now: float) -> None:
        state = self.state
        if state in (State.TRYING, State.PROCEEDING):
            self._send(response)
            if response.status < 200:
                self.state = State.PROCEEDING
                return
            # 17.2.2: Completed; Timer J (64*T1 unreliable, zero reliable) absorbs request
            # retransmissions.
            self.state = State.COMPLETED
            timeout = 0.0 if self.reliable else self.timers.transaction_timeout
            self._start(Timer.J, now + timeout)
            return
        # 17.2.2: "Any other final responses passed by the TU to the server transaction MUST be
        # discarded while in the Completed state."
        logger.debug("%d for %s discarded in %s", response.status, self._call_id, state.name)

    def _fire(self, timer: Timer, now: float) -> None:
        if timer is Timer.J:
            self._terminate(now)


def server_transaction(
    request: Request,
    *,
    reliable: bool,
    timers: Timers = DEFAULT_TIMERS,
    now: float,
) -> ServerTransaction:
    """A new server transaction for ``request``, INVITE or non-INVITE by its method.

    The caller passes ``request`` to the TU; an INVITE transaction answers 100 (Trying) after
    200 ms unless the TU responded first.
    """
    if request.method == "INVITE":
        return InviteServerTransaction(request, reliable=reliable, timers=timers, now=now)
    return NonInviteServerTransaction(request, reliable=reliable, timers=timers, now=now)
