"""What the four transaction machines share: timer values, states, keys, deadlines.

RFC 3261 section 17, with RFC 6026's corrections for 2xx responses to INVITE. Everything here
is sans-IO: time is the ``now`` argument, and a timer is a stored deadline that
:meth:`Transaction.handle_timer` fires once ``now`` has reached it.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable
from dataclasses import dataclass

from gateway.sip.message import Request

#: RFC 3261 section 8.1.1.7: a branch starting with this was built by an RFC 3261 element.
MAGIC_COOKIE = "z9hG4bK"

#: Timer D over unreliable transports: "at least 32 seconds" (RFC 3261 section 17.1.1.2).
TIMER_D_MINIMUM = 32.0

#: How long an INVITE server transaction waits for the TU before it answers 100 (Trying) itself
#: (RFC 3261 section 17.2.1).
TRYING_DELAY = 0.2


@dataclass(frozen=True, slots=True)
class Timers:
    """The base timer values of RFC 3261 section 17.1.1.1 and table 4, in seconds.

    ``t1`` is the round-trip time estimate, ``t2`` the cap on retransmission intervals of
    non-INVITE requests and INVITE responses, ``t4`` how long a message may live in the network.
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    def __post_init__(self) -> None:
        if not (self.t1 > 0 and self.t2 >= self.t1 and self.t4 >= 0):
            raise ValueError(f"timer values need 0 < T1 <= T2 and T4 >= 0: {self}")

    @property
    def transaction_timeout(self) -> float:
        """64*T1: Timers B, F, H, J (unreliable), L and M (RFC 3261 table 4, RFC 6026)."""
        return 64 * self.t1

    @property
    def timer_d(self) -> float:
        """Timer D over unreliable transports: 32 s, or 64*T1 when that is longer.

        Timer D absorbs the server's retransmissions of a non-2xx final response, which go on
        until its Timer H (64*T1); 32 s is that span for the default T1, and the RFC's minimum.
        """
        return max(TIMER_D_MINIMUM, self.transaction_timeout)


DEFAULT_TIMERS = Timers()


class State(enum.Enum):
    """Transaction states (RFC 3261 figures 5 to 8; ACCEPTED from RFC 6026)."""

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class Timer(enum.Enum):
    """The named timers of RFC 3261 table 4, and L and M of RFC 6026."""

    A = "A"  # INVITE request retransmission (17.1.1.2)
    B = "B"  # INVITE transaction timeout (17.1.1.2)
    D = "D"  # wait for response retransmissions after a non-2xx final (17.1.1.2)
    E = "E"  # non-INVITE request retransmission (17.1.2.2)
    F = "F"  # non-INVITE transaction timeout (17.1.2.2)
    G = "G"  # INVITE non-2xx final response retransmission (17.2.1)
    H = "H"  # wait for ACK (17.2.1)
    I = "I"  # noqa: E741  (the RFC's name) wait for ACK retransmissions (17.2.1)
    J = "J"  # wait for non-INVITE request retransmissions (17.2.2)
    K = "K"  # wait for non-INVITE response retransmissions (17.1.2.2)
    L = "L"  # wait for INVITE retransmissions after a 2xx (RFC 6026 section 8.7)
    M = "M"  # wait for 2xx retransmissions and forked 2xx (RFC 6026 section 8.4)
    TRYING_100 = "100"  # send 100 (Trying) if the TU stays silent for 200 ms (17.2.1)

    # Members are singletons compared by identity; the C-level identity hash spares the
    # Python-level Enum.__hash__ on every timer armed or fired (thousands a second).
    __hash__ = object.__hash__


class TransactionError(ValueError):
    """The TU used a transaction wrongly: a bug in our code, not the peer's (so a ValueError,
    as errors.py keeps API misuse apart from :class:`~gateway.sip.errors.SipError`)."""


#: A transaction key: an opaque, hashable tuple (see :func:`client_key`, :func:`server_key`).
Key = tuple[object, ...]


def has_rfc3261_branch(branch: str | None) -> bool:
    """True when ``branch`` is RFC 3261 style: the magic cookie and something unique after it.

    A branch that is the bare cookie carries no transaction identifier (RFC 4475 section 3.2.1,
    "badbranch"); rather than reject it, we fall back to the RFC 2543 rules as that section
    allows, as for a branch without the cookie.
    """
    return branch is not None and branch.startswith(MAGIC_COOKIE) and branch != MAGIC_COOKIE


def request_client_key(request: Request) -> Key:
    """The key of the client transaction that sends ``request`` (RFC 3261 section 17.1.3)."""
    return (request.top_via.branch, request.method)


def _via_identity(request: Request) -> tuple[object, ...]:
    # RFC 2543 matching compares the whole top Via; retransmissions carry the same one, so a
    # normalised tuple of its parts is enough (case-insensitive transport, host and parameter
    # names, as RFC 3261 section 20.42 and 7.3.1 allow).
    via = request.top_via
    params = tuple(sorted((name.lower(), value) for name, value in via.params.items()))
    return (via.transport.upper(), via.host.lower(), via.port, params)


def server_key(request: Request, *, method: str | None = None) -> Key:
    """The key that matches ``request`` to a server transaction (RFC 3261 section 17.2.3).

    With an RFC 3261 branch: (branch, sent-by host, sent-by port, method), where an ACK counts
    as the INVITE it acknowledges. Otherwise the RFC 2543 rules: Request-URI, To tag, From tag,
    Call-ID, CSeq number and method, and top Via; an ACK's To tag is the one of the response the
    server sent, which the transaction layer checks separately (see :func:`ack_2543_key`).
    ``method`` overrides the request's method: a CANCEL is matched to its INVITE with
    ``method="INVITE"`` (RFC 3261 section 9.2).
    """
    if method is None:
        method = "INVITE" if request.method == "ACK" else request.method
    via = request.top_via
    branch = via.branch
    if has_rfc3261_branch(branch):
        return (branch, via.host.lower(), via.port, method)
    return (
        request.uri,
        request.to.tag,
        request.from_.tag,
        request.call_id,
        request.cseq.seq,
        method,
        _via_identity(request),
    )


def ack_2543_key(request: Request) -> Key:
    """RFC 2543 matching of an ACK to an INVITE: everything but the To tag (section 17.2.3).

    The INVITE carried no To tag (or the dialog's), the ACK carries the one of the response; the
    layer finds the transaction by this key, then compares the To tags.
    """
    return (
        request.uri,
        request.from_.tag,
        request.call_id,
        request.cseq.seq,
        _via_identity(request),
    )


_deadline_of = operator.itemgetter(1)

#: Called with the transaction and a deadline each time the transaction arms a timer or
#: terminates (deadline ``now``), so that a :class:`TransactionLayer` can keep one heap.
Listener = Callable[["Transaction", float], None]


class Transaction:
    """Deadlines, the outgoing queue and termination, shared by the four machines."""

    state: State
    reliable: bool
    timers: Timers
    timed_out: bool
    transport_failed: bool
    #: The matching key (RFC 3261 sections 17.1.3 and 17.2.3), set by each machine.
    key: Key

    def __init__(self, state: State, *, reliable: bool, timers: Timers) -> None:
        self.state = state
        self.reliable = reliable
        self.timers = timers
        #: Timer B, F or H fired: the peer never completed the transaction (RFC 3261 8.1.3.1:
        #: the TU treats a client timeout as 408 Request Timeout).
        self.timed_out = False
        #: The transport reported a fatal error (RFC 3261 section 17.1.4, 17.2.4): for a client,
        #: the TU treats it as 503 Service Unavailable.
        self.transport_failed = False
        self._deadlines: dict[Timer, float] = {}
        self._listener: Listener | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.state.name} {self.key!r}>"

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def get_timer(self) -> float | None:
        """The earliest pending deadline, or None when no timer runs."""
        return min(self._deadlines.values(), default=None)

    def timer_deadline(self, timer: Timer) -> float | None:
        """When ``timer`` fires, or None when it is not running (for tests and logs)."""
        return self._deadlines.get(timer)

    def handle_timer(self, now: float) -> None:
        """Fire every timer whose deadline is at or before ``now``, earliest first."""
        deadlines = self._deadlines
        while deadlines:
            timer, deadline = min(deadlines.items(), key=_deadline_of)
            if deadline > now:
                break
            del deadlines[timer]
            self._fire(timer, now)

    def transport_error(self, now: float) -> None:
        """The transport could not send a message (RFC 3261 sections 17.1.4 and 17.2.4).

        The transaction informs the TU through :attr:`transport_failed` and terminates.
        """
        if self.state is not State.TERMINATED:
            self.transport_failed = True
            self._terminate(now)

    def set_listener(self, listener: Listener | None) -> None:
        """Register the callback told about every deadline (used by the layer).

        It hears at once of the deadlines already armed, then of each one armed later.
        """
        self._listener = listener
        if listener is not None:
            for deadline in self._deadlines.values():
                listener(self, deadline)

    # -- for the machines -------------------------------------------------------------------

    def _fire(self, timer: Timer, now: float) -> None:
        raise NotImplementedError

    def _start(self, timer: Timer, deadline: float) -> None:
        self._deadlines[timer] = deadline
        if self._listener is not None:
            self._listener(self, deadline)

    def _stop(self, *timers: Timer) -> None:
        for timer in timers:
            self._deadlines.pop(timer, None)

    def _terminate(self, now: float) -> None:
        # RFC 3261 17.1.1.2 / 17.2.1: a terminated transaction is destroyed at once; the
        # listener hears of it with a deadline of now so the layer removes it on its next pass.
        self.state = State.TERMINATED
        self._deadlines.clear()
        if self._listener is not None:
            self._listener(self, now)
