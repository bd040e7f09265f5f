"""The four transaction machines (RFC 3261 section 17, RFC 6026) and the transaction layer.

One-machine tests jump from deadline to deadline with ``get_timer()`` and read what would be
sent with ``take_outgoing()``. Pair tests link a client and a server through an in-memory
network that serialises every message to bytes and can drop or duplicate it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sip.message import Headers, Request, Response, parse, response_for
from gateway.sip.transaction import (
    MAGIC_COOKIE,
    ClientTransaction,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    ServerTransaction,
    State,
    Timer,
    Timers,
    Transaction,
    TransactionError,
    TransactionLayer,
    client_key,
    client_transaction,
    has_rfc3261_branch,
    server_key,
    server_transaction,
)
from tests.paths import RFC4475

FIXTURES = RFC4475

# RFC 3261 section 17.1.1.2 with T1 = 500 ms: the INVITE leaves at 0, then Timer A doubles.
INVITE_SENDS_T1_500MS = [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
# Section 17.1.2.2: Timer E doubles up to T2 = 4 s, then stays there until Timer F at 32 s.
NON_INVITE_SENDS = [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]


def make_request(
    method: str = "INVITE",
    *,
    branch: str = MAGIC_COOKIE + "abc123",
    sent_by: str = "client.example.com:5060",
    to_tag: str | None = None,
    seq: int = 1,
    extra_vias: tuple[str, ...] = (),
    routes: tuple[str, ...] = (),
    call_id: str = "call-1@client.example.com",
) -> Request:
    to = "Bob <sip:bob@example.net>" + (f";tag={to_tag}" if to_tag else "")
    items = [("Via", f"SIP/2.0/UDP {sent_by};branch={branch}")]
    items += [("Via", via) for via in extra_vias]
    items += [("Route", route) for route in routes]
    items += [
        ("Max-Forwards", "70"),
        ("From", "Alice <sip:alice@example.com>;tag=a-tag"),
        ("To", to),
        ("Call-ID", call_id),
        ("CSeq", f"{seq} {method}"),
        ("Contact", "<sip:alice@client.example.com>"),
        ("Content-Length", "0"),
    ]
    return Request(method, "sip:bob@example.net", Headers(items))


def answer(request: Request, status: int, to_tag: str = "b-tag") -> Response:
    return response_for(request, status, to_tag=None if status == 100 else to_tag)


def wire(message: Request | Response) -> Request | Response:
    """The message as the peer would parse it off the network."""
    return parse(bytes(message))


def wire_request(message: Request | Response) -> Request:
    parsed = wire(message)
    assert isinstance(parsed, Request)
    return parsed


def wire_response(message: Request | Response) -> Response:
    parsed = wire(message)
    assert isinstance(parsed, Response)
    return parsed


def drive(tx: Transaction, until: float = float("inf")) -> list[tuple[float, list[str]]]:
    """Jump from deadline to deadline; log when something was sent (method or status)."""
    log: list[tuple[float, list[str]]] = []
    while (deadline := tx.get_timer()) is not None and deadline <= until:
        tx.handle_timer(deadline)
        sent = _labels(tx)
        if sent:
            log.append((deadline, sent))
    return log


def _labels(tx: Transaction) -> list[str]:
    if isinstance(tx, ClientTransaction):
        return [request.method for request in tx.take_outgoing()]
    assert isinstance(tx, ServerTransaction)
    return [str(response.status) for response in tx.take_outgoing()]


def state(tx: Transaction) -> State:
    """The state, read through a call so that mypy does not narrow it between steps."""
    return tx.state


def send_times(log: list[tuple[float, list[str]]]) -> list[float]:
    return [when for when, _ in log]


# -- INVITE client transaction (RFC 3261 section 17.1.1) ---------------------------------------


@pytest.mark.parametrize("t1", [0.5, 1.0])
def test_invite_retransmits_on_timer_a_and_times_out_on_timer_b(t1: float) -> None:
    tx = client_transaction(make_request(), reliable=False, timers=Timers(t1=t1), now=0.0)
    assert isinstance(tx, InviteClientTransaction)
    assert state(tx) is State.CALLING
    assert [r.method for r in tx.take_outgoing()] == ["INVITE"]
    assert tx.timer_deadline(Timer.B) == 64 * t1
    log = drive(tx)
    scale = t1 / 0.5
    assert [0.0, *send_times(log)] == [t * scale for t in INVITE_SENDS_T1_500MS]
    assert all(sent == ["INVITE"] for _, sent in log)
    assert state(tx) is State.TERMINATED
    assert tx.timed_out
    assert not tx.transport_failed


def test_invite_timer_b_fires_at_64_t1() -> None:
    tx = client_transaction(make_request(), reliable=False, now=10.0)
    assert tx.timer_deadline(Timer.B) == 10.0 + 32.0
    tx.handle_timer(41.999)
    assert state(tx) is State.CALLING
    tx.handle_timer(42.0)
    assert state(tx) is State.TERMINATED
    assert tx.timed_out


def test_invite_over_tcp_is_not_retransmitted_and_times_out_at_64_t1() -> None:
    tx = client_transaction(make_request(), reliable=True, now=0.0)
    assert len(tx.take_outgoing()) == 1
    assert tx.get_timer() == 32.0
    assert drive(tx) == []
    assert state(tx) is State.TERMINATED
    assert tx.timed_out


def test_invite_provisional_stops_retransmissions() -> None:
    request = make_request()
    tx = client_transaction(request, reliable=False, now=0.0)
    tx.take_outgoing()
    drive(tx, until=0.5)
    ringing = answer(request, 180)
    assert tx.receive(ringing, 0.7) is ringing
    assert state(tx) is State.PROCEEDING
    assert tx.get_timer() is None
    assert tx.receive(answer(request, 183), 0.8) is not None  # more provisionals go up


def test_invite_cancel_sent_bounds_proceeding_by_64_t1() -> None:
    request = make_request()
    tx = client_transaction(request, reliable=False, now=0.0)
    assert isinstance(tx, InviteClientTransaction)
    tx.receive(answer(request, 180), 0.1)
    tx.cancel_sent(5.0)
    assert tx.get_timer() == 37.0
    drive(tx)
    assert state(tx) is State.TERMINATED
    assert tx.timed_out


def test_invite_cancel_sent_in_calling_leaves_timer_b() -> None:
    tx = client_transaction(make_request(), reliable=False, now=0.0)
    assert isinstance(tx, InviteClientTransaction)
    tx.cancel_sent(5.0)
    assert tx.timer_deadline(Timer.B) == 32.0


def test_late_timer_call_retransmits_once_not_in_a_burst() -> None:
    tx = client_transaction(make_request(), reliable=False, now=0.0)
    tx.take_outgoing()
    tx.handle_timer(10.0)  # the loop was late: deadlines 0.5, 1.5, 3.5 and 7.5 all passed
    assert [r.method for r in tx.take_outgoing()] == ["INVITE"]
    assert tx.timer_deadline(Timer.A) == 11.0
    assert tx.timer_deadline(Timer.B) == 32.0


def test_invite_non_2xx_final_builds_ack_and_acks_each_retransmission() -> None:
    request = make_request(
        extra_vias=("SIP/2.0/UDP proxy.example.com;branch=z9hG4bKproxy",),
        routes=("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"),
    )
    tx = client_transaction(request, reliable=False, now=0.0)
    tx.take_outgoing()
    busy = wire_response(answer(request, 486))
    assert tx.receive(busy, 1.0) is busy
    assert state(tx) is State.COMPLETED
    [ack] = tx.take_outgoing()
    ack = wire_request(ack)
    # RFC 3261 section 17.1.1.3.
    assert ack.method == "ACK"
    assert ack.uri == request.uri
    assert ack.call_id == request.call_id
    assert ack.headers.get("From") == request.headers.get("From")
    assert (ack.cseq.seq, ack.cseq.method) == (1, "ACK")
    assert [str(v) for v in ack.via] == [str(request.top_via)]
    assert ack.to.tag == "b-tag"
    assert ack.headers.get_all("Route") == request.headers.get_all("Route")
    assert ack.body == b""
    # A retransmitted final response is absorbed, and the same ACK is sent again.
    assert tx.receive(busy, 2.0) is None
    assert [bytes(m) for m in tx.take_outgoing()] == [bytes(ack)]
    assert tx.receive(answer(request, 180), 2.5) is None
    assert tx.take_outgoing() == []
    # Timer D: 32 s over UDP.
    assert tx.get_timer() == 33.0
    drive(tx)
    assert state(tx) is State.TERMINATED
    assert not tx.timed_out


def test_timer_d_is_32_s_or_64_t1_when_longer() -> None:
    # "at least 32 seconds" (17.1.1.2), and long enough to absorb every retransmission the
    # server makes until its own Timer H (64*T1).
    assert Timers().timer_d == 32.0
    assert Timers(t1=0.25).timer_d == 32.0
    assert Timers(t1=1.0).timer_d == 64.0
    request = make_request()
    tx = client_transaction(request, reliable=False, timers=Timers(t1=1.0), now=0.0)
    tx.receive(answer(request, 404), 2.0)
    assert tx.get_timer() == 66.0


def test_invite_non_2xx_over_tcp_terminates_at_once_timer_d_zero() -> None:
    request = make_request()
    tx = client_transaction(request, reliable=True, now=0.0)
    tx.receive(answer(request, 603), 3.0)
    assert state(tx) is State.COMPLETED
    assert tx.get_timer() == 3.0
    tx.handle_timer(3.0)
    assert state(tx) is State.TERMINATED
    assert [r.method for r in tx.take_outgoing()] == ["INVITE", "ACK"]


def test_invite_2xx_moves_to_accepted_and_every_2xx_goes_to_tu_until_timer_m() -> None:
    request = make_request()
    tx = client_transaction(request, reliable=False, now=0.0)
    tx.take_outgoing()
    ok = answer(request, 200)
    assert tx.receive(ok, 0.2) is ok
    assert state(tx) is State.ACCEPTED
    assert tx.take_outgoing() == []  # the TU acknowledges a 2xx itself (13.2.2.4)
    assert tx.get_timer() == pytest.approx(0.2 + 32.0)
    # RFC 6026: retransmitted and forked 2xx reach the TU, so that it can ACK them.
    assert tx.receive(ok, 0.7) is ok
    forked = answer(request, 200, to_tag="other-branch")
    assert tx.receive(forked, 0.8) is forked
    assert tx.receive(answer(request, 180), 0.9) is None
    assert tx.receive(answer(request, 486), 1.0) is None
    assert tx.take_outgoing() == []
    assert drive(tx) == []
    assert state(tx) is State.TERMINATED
    assert not tx.timed_out


def test_client_transport_error_terminates_and_flags_failure() -> None:
    tx = client_transaction(make_request(), reliable=False, now=0.0)
    tx.transport_error(0.0)
    assert state(tx) is State.TERMINATED
    assert tx.transport_failed
    assert not tx.timed_out
    assert tx.get_timer() is None


def test_client_rejects_ack_and_branch_without_cookie() -> None:
    with pytest.raises(TransactionError):
        client_transaction(make_request("ACK"), reliable=False, now=0.0)
    with pytest.raises(TransactionError):
        client_transaction(make_request(branch="1234"), reliable=False, now=0.0)
    with pytest.raises(ValueError):
        NonInviteClientTransaction(make_request("INVITE"), reliable=False, now=0.0)


# -- non-INVITE client transaction (RFC 3261 section 17.1.2) -----------------------------------


def test_non_invite_timer_e_doubles_up_to_t2_until_timer_f() -> None:
    tx = client_transaction(make_request("OPTIONS"), reliable=False, now=0.0)
    assert isinstance(tx, NonInviteClientTransaction)
    assert state(tx) is State.TRYING
    tx.take_outgoing()
    log = drive(tx)
    assert [0.0, *send_times(log)] == NON_INVITE_SENDS
    assert state(tx) is State.TERMINATED
    assert tx.timed_out


@pytest.mark.parametrize(
    ("provisional_at", "next_sends"), [(0.2, [0.5, 4.5, 8.5]), (1.0, [1.5, 5.5])]
)
def test_non_invite_retransmits_every_t2_after_a_provisional(
    provisional_at: float, next_sends: list[float]
) -> None:
    request = make_request("REGISTER")
    tx = client_transaction(request, reliable=False, now=0.0)
    tx.take_outgoing()
    drive(tx, until=provisional_at)
    trying = answer(request, 100)
    assert tx.receive(trying, provisional_at) is trying
    assert state(tx) is State.PROCEEDING
    times = send_times(drive(tx))
    assert times[: len(next_sends)] == next_sends
    assert all(later - earlier == 4.0 for earlier, later in itertools.pairwise(times[1:]))
    assert times[-1] < 32.0
    assert tx.timed_out


def test_non_invite_final_then_timer_k() -> None:
    request = make_request("BYE")
    tx = client_transaction(request, reliable=False, now=0.0)
    tx.take_outgoing()
    ok = answer(request, 200)
    assert tx.receive(ok, 0.3) is ok
    assert state(tx) is State.COMPLETED
    assert tx.receive(ok, 0.4) is None  # retransmissions absorbed
    assert tx.get_timer() == pytest.approx(0.3 + 5.0)  # Timer K = T4
    assert drive(tx) == []
    assert state(tx) is State.TERMINATED
    assert not tx.timed_out


def test_non_invite_over_tcp_timer_k_is_zero_and_no_timer_e() -> None:
    request = make_request("OPTIONS")
    tx = client_transaction(request, reliable=True, now=0.0)
    assert tx.timer_deadline(Timer.E) is None
    assert tx.get_timer() == 32.0
    tx.receive(answer(request, 404), 1.0)
    assert tx.get_timer() == 1.0
    tx.handle_timer(1.0)
    assert state(tx) is State.TERMINATED


TIMER_VALUES = (
    st.sampled_from([0.125, 0.25, 0.5, 1.0, 2.0])
    .flatmap(
        lambda t1: st.builds(
            Timers, t1=st.just(t1), t2=st.sampled_from([t1, 2 * t1, 4.0, 8.0, 16.0])
        )
    )
    .filter(lambda timers: timers.t2 >= timers.t1)
)


@given(TIMER_VALUES)
def test_retransmission_schedules_follow_t1_and_t2(timers: Timers) -> None:
    timeout = 64 * timers.t1
    # INVITE (17.1.1.2): intervals T1, 2*T1, 4*T1 ... uncapped, until Timer B.
    invite = client_transaction(make_request(), reliable=False, timers=timers, now=0.0)
    times = send_times(drive(invite))
    expected = []
    when, interval = timers.t1, timers.t1
    while when < timeout:
        expected.append(when)
        interval *= 2
        when += interval
    assert times == expected
    assert invite.timed_out
    # Non-INVITE (17.1.2.2): intervals T1, 2*T1 ... capped at T2, until Timer F.
    options = client_transaction(make_request("OPTIONS"), reliable=False, timers=timers, now=0.0)
    times = send_times(drive(options))
    expected = []
    when, interval = timers.t1, timers.t1
    while when < timeout:
        expected.append(when)
        interval = min(2 * interval, timers.t2)
        when += interval
    assert times == expected
    assert options.timed_out
    # INVITE server, non-2xx (17.2.1): Timer G follows the same capped series until Timer H.
    request = make_request()
    server = server_transaction(request, reliable=False, timers=timers, now=0.0)
    server.respond(answer(request, 500), 0.0)
    server.take_outgoing()
    assert send_times(drive(server)) == expected
    assert server.timed_out


# -- INVITE server transaction (RFC 3261 section 17.2.1) ---------------------------------------


def test_server_sends_100_trying_after_200_ms_of_tu_silence() -> None:
    request = make_request()
    tx = server_transaction(request, reliable=False, now=0.0)
    assert isinstance(tx, InviteServerTransaction)
    assert state(tx) is State.PROCEEDING
    assert tx.get_timer() == 0.2
    tx.handle_timer(0.199)
    assert tx.take_outgoing() == []
    tx.handle_timer(0.2)
    [trying] = tx.take_outgoing()
    assert trying.status == 100
    assert trying.to.tag is None  # 17.2.1: no tag in the 100
    assert trying.call_id == request.call_id
    assert tx.get_timer() is None


def test_server_sends_no_100_when_tu_responds_within_200_ms() -> None:
    request = make_request()
    tx = server_transaction(request, reliable=False, now=0.0)
    tx.respond(answer(request, 180), 0.05)
    assert tx.get_timer() is None
    assert [r.status for r in tx.take_outgoing()] == [180]
    tx.handle_timer(1.0)
    assert tx.take_outgoing() == []


def test_server_retransmitted_invite_gets_the_last_response() -> None:
    request = make_request()
    tx = server_transaction(request, reliable=False, now=0.0)
    assert tx.receive(wire_request(request), 0.1) is None
    assert tx.take_outgoing() == []  # nothing sent yet, nothing to repeat
    tx.respond(answer(request, 180), 0.15)
    tx.respond(answer(request, 183), 0.16)
    tx.take_outgoing()
    assert tx.receive(wire_request(request), 0.5) is None
    assert [r.status for r in tx.take_outgoing()] == [183]


def test_server_non_2xx_retransmitted_on_timer_g_until_timer_h() -> None:
    request = make_request()
    tx = server_transaction(request, reliable=False, now=0.0)
    tx.respond(answer(request, 486), 0.0)
    assert state(tx) is State.COMPLETED
    assert [r.status for r in tx.take_outgoing()] == [486]
    log = drive(tx)
    times = send_times(log)
    intervals = [b - a for a, b in zip([0.0, *times], times, strict=False)]
    assert intervals[:5] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert set(intervals[3:]) == {4.0}
    assert times[-1] == 31.5
    assert all(sent == ["486"] for _, sent in log)
    assert state(tx) is State.TERMINATED
    assert tx.timed_out  # Timer H: the ACK never came


def test_server_ack_confirms_and_timer_i_absorbs_ack_retransmissions() -> None:
    request = make_request()
    tx = server_transaction(request, reliable=False, now=0.0)
    busy = answer(request, 486)
    tx.respond(busy, 0.0)
    tx.take_outgoing()
    drive(tx, until=1.5)
    tx.take_outgoing()
    ack = make_request("ACK", to_tag="b-tag")
    assert tx.receive(ack, 2.0) is None
    assert state(tx) is State.CONFIRMED
    assert tx.get_timer() == 7.0  # Timer I = T4
    assert tx.receive(ack, 2.5) is None
    assert tx.receive(request, 2.6) is None
    assert tx.take_outgoing() == []
    assert drive(tx) == []
    assert state(tx) is State.TERMINATED
    assert not tx.timed_out


def test_server_over_tcp_no_timer_g_and_timer_i_zero() -> None:
    request = make_request()
    tx = server_transaction(request, reliable=True, now=0.0)
    tx.respond(answer(request, 404), 0.1)
    assert tx.timer_deadline(Timer.G) is None
    assert tx.get_timer() == pytest.approx(0.1 + 32.0)  # Timer H
    tx.receive(make_request("ACK", to_tag="b-tag"), 0.3)
    assert tx.get_timer() == 0.3
    tx.handle_timer(0.3)
    assert state(tx) is State.TERMINATED


def test_server_2xx_moves_to_accepted_acks_go_to_tu_until_timer_l() -> None:
    request = make_request()
    tx = server_transaction(request, reliable=False, now=0.0)
    ok = answer(request, 200)
    tx.respond(ok, 0.1)
    assert state(tx) is State.ACCEPTED
    assert [r.status for r in tx.take_outgoing()] == [200]
    assert tx.get_timer() == pytest.approx(0.1 + 32.0)  # Timer L
    # The transaction never retransmits the 2xx itself, and absorbs INVITE retransmissions.
    assert drive(tx, until=10.0) == []
    assert tx.receive(request, 0.5) is None
    assert tx.take_outgoing() == []
    # The TU retransmits the 2xx through the transaction (RFC 3261 13.3.1.4).
    tx.respond(ok, 0.6)
    assert [r.status for r in tx.take_outgoing()] == [200]
    ack = make_request("ACK", to_tag="b-tag")
    assert tx.receive(ack, 0.7) is ack
    assert drive(tx) == []
    assert state(tx) is State.TERMINATED


def test_server_rejects_a_second_final_response() -> None:
    request = make_request()
    tx = server_transaction(request, reliable=False, now=0.0)
    tx.respond(answer(request, 486), 0.0)
    with pytest.raises(TransactionError):
        tx.respond(answer(request, 200), 0.1)


def test_server_transport_error_terminates() -> None:
    request = make_request()
    tx = server_transaction(request, reliable=False, now=0.0)
    tx.respond(answer(request, 500), 0.0)
    tx.transport_error(0.0)
    assert state(tx) is State.TERMINATED
    assert tx.transport_failed
    assert tx.get_timer() is None


def test_server_transport_error_in_accepted_informs_tu_but_keeps_absorbing() -> None:
    request = make_request()
    tx = server_transaction(request, reliable=False, now=0.0)
    tx.respond(answer(request, 200), 0.0)
    tx.transport_error(0.0)
    assert tx.transport_failed
    assert state(tx) is State.ACCEPTED
    assert tx.receive(request, 1.0) is None
    assert tx.get_timer() == 32.0


# -- non-INVITE server transaction (RFC 3261 section 17.2.2) -----------------------------------


def test_non_invite_server_absorbs_in_trying_and_repeats_later() -> None:
    request = make_request("OPTIONS")
    tx = server_transaction(request, reliable=False, now=0.0)
    assert isinstance(tx, NonInviteServerTransaction)
    assert state(tx) is State.TRYING
    assert tx.get_timer() is None  # no 100 Trying for non-INVITE
    assert tx.receive(request, 0.5) is None
    assert tx.take_outgoing() == []
    tx.respond(answer(request, 100), 0.6)
    assert state(tx) is State.PROCEEDING
    tx.take_outgoing()
    tx.receive(request, 1.5)
    assert [r.status for r in tx.take_outgoing()] == [100]
    tx.respond(answer(request, 200), 2.0)
    assert state(tx) is State.COMPLETED
    tx.take_outgoing()
    tx.receive(request, 3.5)
    assert [r.status for r in tx.take_outgoing()] == [200]
    tx.respond(answer(request, 500), 3.6)  # discarded in Completed
    assert tx.take_outgoing() == []
    assert tx.get_timer() == 34.0  # Timer J = 64*T1
    drive(tx)
    assert state(tx) is State.TERMINATED


def test_non_invite_server_over_tcp_timer_j_is_zero() -> None:
    request = make_request("BYE")
    tx = server_transaction(request, reliable=True, now=0.0)
    tx.respond(answer(request, 200), 0.4)
    assert tx.get_timer() == 0.4
    tx.handle_timer(0.4)
    assert state(tx) is State.TERMINATED


# -- an in-memory network between two transaction layers ---------------------------------------


@dataclass
class Link:
    """A client layer and a server layer joined by a network that can lose or copy messages.

    ``drop_requests`` / ``drop_responses`` name the indices (0 = first) of the messages lost in
    each direction; ``duplicate`` delivers everything twice. ``on_request`` is the server TU: it
    is told of each request the server transaction layer passes up.
    """

    on_request: Callable[[Link, ServerTransaction, Request], None]
    drop_requests: set[int] = field(default_factory=set)
    drop_responses: set[int] = field(default_factory=set)
    duplicate: bool = False
    now: float = 0.0
    client_layer: TransactionLayer = field(default_factory=TransactionLayer)
    server_layer: TransactionLayer = field(default_factory=TransactionLayer)
    sent_requests: int = 0
    sent_responses: int = 0
    server_saw: list[tuple[float, str]] = field(default_factory=list)
    server_tu_saw: list[tuple[float, str]] = field(default_factory=list)
    client_tu_saw: list[tuple[float, int]] = field(default_factory=list)
    pending: list[Transaction] = field(default_factory=list)
    scheduled: list[tuple[float, Callable[[], None]]] = field(default_factory=list)
    server_txs: list[ServerTransaction] = field(default_factory=list)

    def start(self, request: Request) -> ClientTransaction:
        tx = client_transaction(request, reliable=False, now=self.now)
        self.client_layer.add_client(tx)
        self.pending.append(tx)
        self.flush()
        return tx

    def later(self, delay: float, action: Callable[[], None]) -> None:
        self.scheduled.append((self.now + delay, action))

    def respond(self, tx: ServerTransaction, response: Response) -> None:
        tx.respond(response, self.now)
        self.pending.append(tx)
        self.flush()

    def flush(self) -> None:
        while self.pending:
            tx = self.pending.pop(0)
            if isinstance(tx, ClientTransaction):
                for request in tx.take_outgoing():
                    index, self.sent_requests = self.sent_requests, self.sent_requests + 1
                    if index not in self.drop_requests:
                        for _ in range(2 if self.duplicate else 1):
                            self._to_server(wire_request(request))
            elif isinstance(tx, ServerTransaction):
                for response in tx.take_outgoing():
                    index, self.sent_responses = self.sent_responses, self.sent_responses + 1
                    if index not in self.drop_responses:
                        for _ in range(2 if self.duplicate else 1):
                            self._to_client(wire_response(response))

    def _to_server(self, request: Request) -> None:
        self.server_saw.append((self.now, request.method))
        tx = self.server_layer.match_request(request)
        if tx is None:
            if request.method == "ACK":
                self.server_tu_saw.append((self.now, "ACK"))  # a 2xx ACK: the dialog's
                return
            tx = server_transaction(request, reliable=False, now=self.now)
            self.server_layer.add_server(tx)
            self.server_txs.append(tx)
            self.server_tu_saw.append((self.now, request.method))
            self.on_request(self, tx, request)
        else:
            passed = tx.receive(request, self.now)
            if passed is not None:
                self.server_tu_saw.append((self.now, passed.method))
        self.pending.append(tx)

    def _to_client(self, response: Response) -> None:
        tx = self.client_layer.match_response(response)
        if tx is None:
            return
        passed = tx.receive(response, self.now)
        if passed is not None:
            self.client_tu_saw.append((self.now, passed.status))
        self.pending.append(tx)

    def run(self, until: float) -> None:
        while True:
            candidates = [
                t
                for t in (
                    self.client_layer.get_timer(),
                    self.server_layer.get_timer(),
                    *(when for when, _ in self.scheduled),
                )
                if t is not None and t <= until
            ]
            if not candidates:
                self.now = until
                return
            self.now = min(candidates)
            for when, action in [s for s in self.scheduled if s[0] <= self.now]:
                self.scheduled.remove((when, action))
                action()
            self.pending += self.client_layer.handle_timer(self.now)
            self.pending += self.server_layer.handle_timer(self.now)
            self.flush()


def reject_busy(link: Link, tx: ServerTransaction, request: Request) -> None:
    link.respond(tx, answer(request, 486))


def accept_options(link: Link, tx: ServerTransaction, request: Request) -> None:
    link.respond(tx, answer(request, 200))


def test_pair_lost_invite_is_seen_by_the_server_at_exactly_t1() -> None:
    link = Link(on_request=reject_busy, drop_requests={0})
    client = link.start(make_request())
    link.run(until=40.0)
    assert link.server_saw == [(0.5, "INVITE"), (0.5, "ACK")]
    assert link.server_tu_saw == [(0.5, "INVITE")]
    assert link.client_tu_saw == [(0.5, 486)]
    assert state(client) is State.TERMINATED
    assert len(link.client_layer) == 0
    assert len(link.server_layer) == 0


def test_pair_lost_final_response_is_resent_on_the_client_retransmission() -> None:
    link = Link(on_request=accept_options, drop_responses={0})
    link.start(make_request("OPTIONS"))
    link.run(until=40.0)
    assert link.server_saw == [(0.0, "OPTIONS"), (0.5, "OPTIONS")]
    assert link.server_tu_saw == [(0.0, "OPTIONS")]
    assert link.client_tu_saw == [(0.5, 200)]
    assert len(link.client_layer) == len(link.server_layer) == 0


def test_pair_lost_non_2xx_to_invite_is_retransmitted_on_timer_g() -> None:
    def reject_after_trying(link: Link, tx: ServerTransaction, request: Request) -> None:
        link.later(0.3, lambda: link.respond(tx, answer(request, 486)))

    # Response 0 is the 100 Trying (at 0.2 s, which stops Timer A); response 1, the 486, is lost.
    link = Link(on_request=reject_after_trying, drop_responses={1})
    link.start(make_request())
    link.run(until=40.0)
    assert link.client_tu_saw == [(0.2, 100), (0.8, 486)]
    assert link.server_saw == [(0.0, "INVITE"), (0.8, "ACK")]
    assert len(link.client_layer) == len(link.server_layer) == 0


def test_pair_delayed_answer_lets_100_trying_quench_retransmissions() -> None:
    def answer_later(link: Link, tx: ServerTransaction, request: Request) -> None:
        link.later(3.0, lambda: link.respond(tx, answer(request, 200)))

    link = Link(on_request=answer_later)
    client = link.start(make_request())
    link.run(until=2.9)
    assert link.client_tu_saw == [(0.2, 100)]
    assert link.server_saw == [(0.0, "INVITE")]  # no retransmission reached the server
    assert state(client) is State.PROCEEDING
    link.run(until=3.0)
    assert link.client_tu_saw[-1] == (3.0, 200)
    assert state(client) is State.ACCEPTED


def test_pair_duplicates_are_absorbed_except_2xx_to_invite() -> None:
    link = Link(on_request=accept_options, duplicate=True)
    link.start(make_request("OPTIONS"))
    link.start(make_request(branch=MAGIC_COOKIE + "inv", call_id="call-2"))
    link.run(until=40.0)
    assert link.server_tu_saw == [(0.0, "OPTIONS"), (0.0, "INVITE")]
    # The OPTIONS was answered twice (once per copy), each answer arrived twice: the TU sees
    # one 200. The INVITE's single 2xx arrived twice, and both copies reach the TU (RFC 6026).
    assert link.client_tu_saw == [(0.0, 200), (0.0, 200), (0.0, 200)]
    assert len(link.client_layer) == len(link.server_layer) == 0


LOSSES = st.sets(st.integers(min_value=0, max_value=14), max_size=15)


@settings(max_examples=150, deadline=None)
@given(lost_requests=LOSSES, lost_responses=LOSSES)
def test_pair_options_under_any_loss_ends_cleanly(
    lost_requests: set[int], lost_responses: set[int]
) -> None:
    link = Link(
        on_request=accept_options, drop_requests=lost_requests, drop_responses=lost_responses
    )
    client = link.start(make_request("OPTIONS"))
    link.run(until=100.0)
    # The server TU sees the request at most once, the client TU the answer at most once.
    assert [method for _, method in link.server_tu_saw] in ([], ["OPTIONS"])
    assert len(link.client_tu_saw) <= 1
    # Either the answer arrived, or Timer F reported a timeout, never both.
    assert client.timed_out == (link.client_tu_saw == [])
    if lost_requests >= set(range(11)):  # all 11 transmissions lost
        assert link.server_tu_saw == []
    assert len(link.client_layer) == len(link.server_layer) == 0


@settings(max_examples=150, deadline=None)
@given(lost_requests=LOSSES, lost_responses=LOSSES)
def test_pair_rejected_invite_under_any_loss_ends_cleanly(
    lost_requests: set[int], lost_responses: set[int]
) -> None:
    link = Link(on_request=reject_busy, drop_requests=lost_requests, drop_responses=lost_responses)
    client = link.start(make_request())
    link.run(until=100.0)
    assert len(link.server_tu_saw) <= 1
    assert [status for _, status in link.client_tu_saw] in ([], [486])
    assert client.timed_out == (link.client_tu_saw == [])
    acks = [when for when, method in link.server_saw if method == "ACK"]
    for server in link.server_txs:
        # Timer H reports a failure exactly when no ACK got through (17.2.1).
        assert server.timed_out == (acks == [])
    assert len(link.client_layer) == len(link.server_layer) == 0


# -- matching (RFC 3261 sections 17.1.3, 17.2.3, 9.2) ------------------------------------------


def test_client_key_is_branch_and_cseq_method() -> None:
    invite = make_request()
    tx = client_transaction(invite, reliable=False, now=0.0)
    assert client_key(answer(invite, 180)) == tx.key == (MAGIC_COOKIE + "abc123", "INVITE")
    cancel = make_request("CANCEL")
    assert client_key(answer(cancel, 200)) != tx.key


def test_layer_matches_responses_by_branch_and_method() -> None:
    layer = TransactionLayer()
    invite = make_request()
    invite_tx = client_transaction(invite, reliable=False, now=0.0)
    cancel_tx = client_transaction(make_request("CANCEL"), reliable=False, now=1.0)
    layer.add_client(invite_tx)
    layer.add_client(cancel_tx)
    assert layer.match_response(wire_response(answer(invite, 180))) is invite_tx
    assert layer.match_response(answer(make_request("CANCEL"), 200)) is cancel_tx
    stray = answer(make_request(branch=MAGIC_COOKIE + "other"), 200)
    assert layer.match_response(stray) is None
    with pytest.raises(TransactionError):
        layer.add_client(client_transaction(invite, reliable=False, now=0.0))


def test_server_key_with_magic_cookie() -> None:
    request = make_request(sent_by="Client.Example.COM:5070")
    assert server_key(request) == (MAGIC_COOKIE + "abc123", "client.example.com", 5070, "INVITE")
    assert server_key(make_request("ACK", sent_by="client.example.com:5070")) == server_key(request)


def test_layer_matches_retransmission_ack_and_cancel_by_branch() -> None:
    layer = TransactionLayer()
    invite = make_request()
    tx = server_transaction(invite, reliable=False, now=0.0)
    layer.add_server(tx)
    assert layer.match_request(wire_request(invite)) is tx
    # Another sent-by or another branch is another transaction.
    assert layer.match_request(make_request(sent_by="elsewhere.example.com")) is None
    assert layer.match_request(make_request(branch=MAGIC_COOKIE + "new")) is None
    # The ACK of a non-2xx carries the INVITE's branch (17.1.1.3).
    tx.respond(answer(invite, 486), 0.1)
    assert layer.match_request(make_request("ACK", to_tag="b-tag")) is tx
    # The ACK of a 2xx is a new transaction with a new branch: it matches nothing.
    assert layer.match_request(make_request("ACK", branch=MAGIC_COOKIE + "ack2xx")) is None
    # CANCEL: its own transaction for match_request, the INVITE's for match_cancel (9.2).
    cancel = make_request("CANCEL")
    assert layer.match_request(cancel) is None
    assert layer.match_cancel(cancel) is tx
    assert layer.match_cancel(make_request("CANCEL", branch=MAGIC_COOKIE + "zzz")) is None
    cancel_tx = server_transaction(cancel, reliable=False, now=0.2)
    layer.add_server(cancel_tx)
    assert layer.match_request(wire_request(cancel)) is cancel_tx
    assert layer.match_cancel(cancel) is tx


def test_bare_magic_cookie_branch_uses_rfc_2543_matching() -> None:
    # RFC 4475 section 3.2.1: the branch is the bare cookie, no identifier: RFC 2543 matching.
    data = (FIXTURES / "badbranch.dat").read_bytes()
    options = wire_request(parse(data))
    assert options.top_via.branch == MAGIC_COOKIE
    assert not has_rfc3261_branch(MAGIC_COOKIE)
    assert has_rfc3261_branch(MAGIC_COOKIE + "x")
    key = server_key(options)
    assert key[:6] == (
        "sip:user@example.com",
        None,
        "33242",
        "badbranch.sadonfo23i420jv0as0derf3j3n",
        8,
        "OPTIONS",
    )
    layer = TransactionLayer()
    tx = server_transaction(options, reliable=False, now=0.0)
    layer.add_server(tx)
    assert layer.match_request(wire_request(parse(data))) is tx
    # Same bare branch, another request: the branch alone must not match it.
    assert layer.match_request(make_request("OPTIONS", branch=MAGIC_COOKIE)) is None
    other_cseq = wire_request(parse(data))
    other_cseq.headers.set("CSeq", "9 OPTIONS")
    assert layer.match_request(other_cseq) is None


def inv2543() -> Request:
    request = parse((FIXTURES / "inv2543.dat").read_bytes())
    assert isinstance(request, Request)
    return request


def ack_2543(invite: Request, to_value: str) -> Request:
    """The ACK an RFC 2543 client sends for a non-2xx: same Via, URI, From, Call-ID, CSeq."""
    headers = Headers(
        [
            ("Via", invite.headers.get_all("Via")[0]),
            ("From", invite.headers.get("From") or ""),
            ("To", to_value),
            ("Call-ID", invite.call_id),
            ("CSeq", f"{invite.cseq.seq} ACK"),
            ("Content-Length", "0"),
        ]
    )
    return Request("ACK", invite.uri, headers)


def test_rfc_2543_invite_matches_its_retransmission_ack_and_cancel() -> None:
    invite = inv2543()
    assert invite.top_via.branch is None
    layer = TransactionLayer()
    tx = server_transaction(invite, reliable=False, now=0.0)
    layer.add_server(tx)
    assert layer.match_request(inv2543()) is tx
    assert layer.match_request(make_request()) is None
    not_found = answer(invite, 404, to_tag="srv-tag")
    tx.respond(not_found, 0.1)
    # The ACK carries the To tag of the response the server sent (17.2.3).
    ack = ack_2543(invite, not_found.headers.get("To") or "")
    assert layer.match_request(wire_request(ack)) is tx
    assert tx.receive(ack, 0.2) is None
    assert state(tx) is State.CONFIRMED
    wrong_tag = ack_2543(invite, "sip:+16505552222@ss1.example.net;user=phone;tag=nope")
    assert layer.match_request(wrong_tag) is None
    # CANCEL: same URI, tags, Call-ID, CSeq number and Via; method ignored (9.2).
    cancel_headers = Headers(
        [(name, value) for name, value in invite.headers if name not in {"CSeq", "Content-Type"}]
    )
    cancel_headers.set("CSeq", f"{invite.cseq.seq} CANCEL")
    cancel = Request("CANCEL", invite.uri, cancel_headers)
    assert layer.match_request(cancel) is None
    assert layer.match_cancel(cancel) is tx


def test_rfc_2543_retransmission_with_other_cseq_is_another_transaction() -> None:
    invite = inv2543()
    layer = TransactionLayer()
    layer.add_server(server_transaction(invite, reliable=False, now=0.0))
    other = inv2543()
    other.headers.set("CSeq", "57 INVITE")
    assert layer.match_request(other) is None


def test_rfc_2543_ack_for_a_2xx_reaches_the_tu_in_accepted() -> None:
    invite = inv2543()
    layer = TransactionLayer()
    tx = server_transaction(invite, reliable=False, now=0.0)
    layer.add_server(tx)
    ok = answer(invite, 200, to_tag="ok-tag")
    tx.respond(ok, 0.1)
    ack = ack_2543(invite, ok.headers.get("To") or "")
    assert layer.match_request(ack) is tx
    assert tx.receive(ack, 0.2) is ack  # RFC 6026: the 2xx's ACK belongs to the TU


def test_layer_replaces_a_terminated_transaction_with_the_same_key() -> None:
    layer = TransactionLayer()
    request = make_request()
    first = server_transaction(request, reliable=False, now=0.0)
    layer.add_server(first)
    first.transport_error(0.1)
    assert layer.match_request(request) is None  # a terminated transaction matches nothing
    second = server_transaction(request, reliable=False, now=0.2)
    layer.add_server(second)
    assert layer.match_request(request) is second
    assert first not in layer
    with pytest.raises(TransactionError):
        layer.add_server(server_transaction(request, reliable=False, now=0.3))


# -- the layer's single timer -------------------------------------------------------------------


def test_layer_timer_is_the_earliest_and_terminated_transactions_leave() -> None:
    layer = TransactionLayer()
    invite = client_transaction(make_request(), reliable=False, now=0.0)
    options = client_transaction(
        make_request("OPTIONS", branch=MAGIC_COOKIE + "o"), reliable=True, now=0.1
    )
    layer.add_client(invite)
    layer.add_client(options)
    assert layer.get_timer() == 0.5
    assert layer.handle_timer(0.5) == [invite]
    assert [r.method for r in invite.take_outgoing()] == ["INVITE", "INVITE"]
    assert layer.get_timer() == 1.5
    # A response that changes a timer is seen without telling the layer.
    options.receive(answer(options.request, 200), 1.0)
    assert layer.get_timer() == 1.0
    assert layer.handle_timer(1.0) == [options]
    assert options not in layer
    assert len(layer) == 1
    invite.transport_error(1.2)
    assert layer.get_timer() == 1.2
    assert layer.handle_timer(1.2) == [invite]
    assert len(layer) == 0
    assert layer.get_timer() is None


def test_layer_with_thousands_of_transactions() -> None:
    layer = TransactionLayer()
    count = 3000
    for i in range(count):
        request = make_request(branch=f"{MAGIC_COOKIE}{i}", call_id=f"c{i}")
        tx = client_transaction(request, reliable=False, now=i / 1000)
        layer.add_client(tx)
        if i % 3 == 0:
            tx.receive(answer(request, 486), i / 1000 + 0.1)
        elif i % 3 == 1:
            tx.receive(answer(request, 200), i / 1000 + 0.1)
    rounds = 0
    expired: list[Transaction] = []
    while (deadline := layer.get_timer()) is not None:
        expired += layer.handle_timer(deadline)
        rounds += 1
        assert len(layer._heap) <= 4 * len(layer) + 64  # stale entries are bounded
    assert len(layer) == 0
    assert len({id(tx) for tx in expired if tx.terminated}) == count
    timed_out = {id(tx) for tx in expired if tx.timed_out}
    assert len(timed_out) == count // 3
