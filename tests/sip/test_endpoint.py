"""The user agent core as a pair of endpoints in memory (ARCHITECTURE.md section 5).

Our endpoint places calls through its trunk to a far-end :class:`Endpoint` acting as the
callee; one clock jumps from one due time to the next, and the network drops, duplicates or
rewrites chosen messages. Times are exact: T1 = 0.5 s, so Timer A fires at 0.5, 1.5, 3.5 ...
and Timer B at 32 s.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from gateway.sip.auth import check_authorization, parse_auth_params
from gateway.sip.dialog import build_cancel
from gateway.sip.endpoint import Endpoint, EndpointSettings, TrunkSettings
from gateway.sip.events import (
    Address,
    CallAnswered,
    CallEnded,
    CallProgressed,
    CallUpdated,
    DtmfReceived,
    IncomingCall,
    OptionsAnswered,
    TrunkStateChanged,
)
from gateway.sip.invite import OutboundCall
from gateway.sip.message import Request, Response, response_for
from gateway.sip.sdp import SessionDescription
from tests.sip.pair import FAR, OFFER, OURS, Callee, Pair, Sent, far_answer, kind

T1 = 0.5
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO"


def only(events: list[CallEnded]) -> CallEnded:
    assert len(events) == 1, events
    return events[0]


def headers(sent: Sent, name: str) -> list[str]:
    """The header lines named ``name``, as written (not split on commas)."""
    return sent.message.headers.get_lines(name)


def branch(sent: Sent) -> str | None:
    return sent.message.top_via.params.get("branch")


# -- set-up and tear-down ---------------------------------------------------------------------


def test_call_rings_answers_is_acked_and_we_hang_up() -> None:
    pair = Pair()
    call_id = pair.call()
    pair.run(5.0)
    pair.ours.hangup(call_id, pair.now)
    pair.run(10.0)

    flow = [(s.at, s.kind, s.source) for s in pair.net.log]
    assert flow == [
        (0.0, "INVITE", OURS),
        (0.0, "180 INVITE", FAR),
        (1.0, "200 INVITE", FAR),
        (1.0, "ACK", OURS),
        (5.0, "BYE", OURS),
        (5.0, "200 BYE", FAR),
    ]
    progressed = pair.of(CallProgressed)
    assert [(e.call_id, e.status, e.at) for e in progressed] == [(call_id, 180, 0.0)]
    answered = pair.of(CallAnswered)
    assert [
        (e.call_id, e.audio.codec, e.audio.remote_address, e.audio.remote_port) for e in answered
    ] == [(call_id, "PCMU", "192.0.2.2", 30000)]
    ended = only(pair.of(CallEnded))
    assert (ended.cause, ended.by, ended.answered, ended.at) == (200, "local", True, 5.0)
    far_ended = [e for e in pair.far_events if isinstance(e, CallEnded)]
    assert [(e.cause, e.by) for e in far_ended] == [(200, "remote")]
    # The ACK and BYE belong to the dialog the 200 made: its To tag, our From tag, CSeq 1 / 2.
    ok, ack, bye = pair.net.sent("200 INVITE")[0], pair.net.sent("ACK")[0], pair.net.sent("BYE")[0]
    assert ack.message.to.tag == bye.message.to.tag == ok.message.to.tag
    assert str(ack.message.cseq) == "1 ACK"
    assert str(bye.message.cseq) == "2 BYE"
    # The ACK for a 2xx is a new transaction: a branch of its own (RFC 3261 section 17.1.1.3).
    assert branch(ack) != branch(pair.net.sent("INVITE")[0])


def test_far_end_hangs_up_and_we_answer_its_bye() -> None:
    pair = Pair()
    call_id = pair.call()
    pair.run(5.0)
    pair.far.hangup(call_id, pair.now)
    pair.run(10.0)

    assert [(s.at, s.kind, s.source) for s in pair.net.log[-2:]] == [
        (5.0, "BYE", FAR),
        (5.0, "200 BYE", OURS),
    ]
    ended = only(pair.of(CallEnded))
    assert (ended.call_id, ended.cause, ended.by, ended.answered) == (call_id, 200, "remote", True)


# -- loss -------------------------------------------------------------------------------------


def test_lost_200_is_retransmitted_by_the_callee_and_acked() -> None:
    pair = Pair()
    pair.net.drop(kind("200 INVITE"))
    pair.call()
    pair.run(40.0)

    # RFC 3261 section 13.3.1.4: the UAS re-sends its 2xx after T1; the ACK stops it.
    assert pair.net.times("200 INVITE") == [1.0, 1.0 + T1]
    assert pair.net.times("ACK") == [1.0 + T1]
    assert [e.at for e in pair.of(CallAnswered)] == [1.0 + T1]
    assert pair.of(CallEnded) == []


def test_each_retransmitted_200_is_acked_again() -> None:
    pair = Pair()
    pair.net.drop(kind("ACK"), times=2)
    pair.call()
    pair.run(40.0)

    # The 2xx comes again at T1, then 2*T1 later, until an ACK gets through; we answer each
    # copy with the same ACK (section 13.2.2.4), and report the answer once.
    assert pair.net.times("200 INVITE") == [1.0, 1.0 + T1, 1.0 + 3 * T1]
    assert pair.net.times("ACK") == [1.0, 1.0 + T1, 1.0 + 3 * T1]
    acks = {s.data for s in pair.net.sent("ACK")}
    assert len(acks) == 1
    assert len(pair.of(CallAnswered)) == 1


def test_lost_invite_is_resent_at_t1() -> None:
    pair = Pair()
    pair.net.drop(kind("INVITE"))
    pair.call()
    pair.run(5.0)

    assert pair.net.times("INVITE") == [0.0, T1]
    first, second = pair.net.sent("INVITE")
    assert first.data == second.data  # a retransmission, not a new request
    assert [e.at for e in pair.far_events if isinstance(e, IncomingCall)] == [T1]
    assert [e.at for e in pair.of(CallAnswered)] == [T1 + 1.0]


def test_no_answer_at_all_ends_with_408_at_timer_b() -> None:
    pair = Pair()
    pair.net.drop(kind("INVITE"), times=None)
    call_id = pair.call()
    pair.run(100.0)

    assert pair.net.times("INVITE") == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    ended = only(pair.of(CallEnded))
    assert (ended.call_id, ended.cause, ended.by, ended.at) == (call_id, 408, "network", 64 * T1)
    assert ended.answered is False


def test_180_overtaken_by_the_200_is_ignored() -> None:
    pair = Pair()
    # Every 180 is late by 2 s, after the 200 of 1 s (the INVITE, unanswered, is re-sent at
    # 0.5 s and rung again).
    pair.net.delay(kind("180 INVITE"), 2.0, times=None)
    call_id = pair.call()
    pair.run(5.0)

    # The INVITE transaction is Accepted when they come: nothing to report (RFC 6026).
    assert pair.net.times("INVITE") == [0.0, 0.5]
    assert [type(e).__name__ for e in pair.events] == ["CallAnswered"]
    assert [e.call_id for e in pair.of(CallAnswered)] == [call_id]
    assert pair.net.times("ACK") == [1.0]


def test_duplicated_invite_makes_one_incoming_call() -> None:
    pair = Pair()
    pair.net.duplicate(kind("INVITE"))
    pair.call()
    pair.run(5.0)

    assert len([e for e in pair.far_events if isinstance(e, IncomingCall)]) == 1
    assert len(pair.of(CallAnswered)) == 1
    # The copy is absorbed by the callee's transaction (it had nothing to re-send yet).
    assert pair.net.times("180 INVITE") == [0.0]


def test_2xx_from_a_second_fork_is_acked_and_byed_and_the_call_goes_on() -> None:
    pair = Pair()
    call_id = pair.call()
    pair.run(1.2)
    (ok,) = pair.net.sent("200 INVITE")
    tag = ok.message.to.tag
    assert tag is not None
    # A forking proxy delivers a second 2xx, from another UAS (another To tag).
    pair.inject(ok.data.replace(tag.encode(), b"fork2"), FAR)
    pair.run(10.0)

    # RFC 3261 section 13.2.2.4: each 2xx is ACKed; the extra dialog is ended with BYE.
    fork = [s for s in pair.net.log if s.source == OURS and s.message.to.tag == "fork2"]
    assert [(s.at, s.kind) for s in fork] == [(1.2, "ACK"), (1.2, "BYE")]
    assert [e.call_id for e in pair.of(CallAnswered)] == [call_id]
    assert pair.of(CallEnded) == []


def test_transport_failure_toward_a_tcp_trunk_ends_the_call_with_503() -> None:
    trunk = TrunkSettings("main", "sip:192.0.2.2:5070;transport=tcp", keepalive_interval=0)
    pair = Pair(trunk=trunk)
    call_id = pair.call()
    (invite,) = pair.net.sent("INVITE")
    assert invite.dest == FAR._replace(transport="tcp")
    # What SipTransport reports when the connection cannot be opened.
    pair.ours.transport_error(invite.dest, pair.now)
    pair.run(100.0)

    ended = only(pair.of(CallEnded))
    assert (ended.call_id, ended.cause, ended.by, ended.at) == (call_id, 503, "network", 0.0)


# -- rejection, cancellation -------------------------------------------------------------------


@pytest.mark.parametrize(("status", "reason"), [(486, "Busy Here"), (603, "Decline")])
def test_rejection_ends_the_call_with_its_cause_and_is_acked(status: int, reason: str) -> None:
    pair = Pair(callee=Callee(reject=status, reject_after=2.0))
    call_id = pair.call()
    pair.run(60.0)

    ended = only(pair.of(CallEnded))
    assert (ended.call_id, ended.cause, ended.reason, ended.by, ended.at) == (
        call_id,
        status,
        reason,
        "remote",
        2.0,
    )
    # RFC 3261 section 17.1.1.3: the ACK for a non-2xx is part of the INVITE transaction:
    # same branch, CSeq number and To tag of the response; the callee stops re-sending.
    (final,) = pair.net.sent(f"{status} INVITE")
    (ack,) = pair.net.sent("ACK")
    invite = pair.net.sent("INVITE")[0]
    assert ack.at == 2.0
    assert branch(ack) == branch(invite)
    assert str(ack.message.cseq) == "1 ACK"
    assert ack.message.to.tag == final.message.to.tag
    assert ack.request.uri == invite.request.uri


def test_ring_timeout_cancels_a_ringing_call() -> None:
    pair = Pair(callee=Callee(ring=1.0, answer=None))
    call_id = pair.call(ring_timeout=30.0)
    pair.run(100.0)

    (cancel,) = pair.net.sent("CANCEL")
    invite = pair.net.sent("INVITE")[0]
    assert cancel.at == 30.0
    # Section 9.1: the CANCEL copies the INVITE's Request-URI, top Via, Call-ID, From, To, and
    # CSeq number.
    assert cancel.request.uri == invite.request.uri
    assert branch(cancel) == branch(invite)
    assert str(cancel.message.cseq) == "1 CANCEL"
    assert pair.net.times("200 CANCEL") == [30.0]
    assert pair.net.times("487 INVITE") == [30.0]
    assert pair.net.times("ACK") == [30.0]
    ended = only(pair.of(CallEnded))
    assert (ended.call_id, ended.cause, ended.by, ended.at) == (call_id, 487, "local", 30.0)


def test_cancel_waits_for_a_provisional_response() -> None:
    # The callee is silent (its 100 Trying is lost) until it rings at 20 s: "If no provisional
    # response has been received, the CANCEL request MUST NOT be sent" (section 9.1).
    pair = Pair(callee=Callee(ring=20.0, answer=None))
    pair.net.drop(kind("100 INVITE"), times=None)
    pair.call(ring_timeout=10.0)
    pair.run(100.0)

    assert pair.net.times("CANCEL") == [20.0]
    ended = only(pair.of(CallEnded))
    assert (ended.cause, ended.by, ended.at) == (487, "local", 20.0)


def test_ring_timeout_after_100_trying_only_sends_cancel() -> None:
    # 100 Trying is a provisional response too: a callee that sends it and then nothing must
    # still be cancelled when the ring timeout expires, not left pending forever.
    pair = Pair(callee=Callee(ring=None, answer=None))
    pair.call(ring_timeout=30.0)
    pair.run(100.0)

    assert pair.net.times("100 INVITE") == [0.2]
    assert pair.net.times("CANCEL") == [30.0]
    ended = only(pair.of(CallEnded))
    assert (ended.cause, ended.by, ended.at) == (487, "local", 30.0)


def test_200_crossing_our_cancel_is_acked_then_byed_and_ends_as_cancelled() -> None:
    # The callee picks up at the very moment the ring timeout sends CANCEL: section 9.1 says
    # the 2xx must still be ACKed, and the call is then ended with BYE.
    pair = Pair(callee=Callee(ring=1.0, answer=30.0))
    call_id = pair.call(ring_timeout=30.0)
    pair.run(100.0)

    assert [s.kind for s in pair.net.log if s.source == OURS] == ["INVITE", "CANCEL", "ACK", "BYE"]
    (bye,) = pair.net.sent("BYE")
    assert headers(bye, "Reason") == ['SIP;cause=487;text="Call cancelled"']
    # Nobody heard anything: the call is reported cancelled, never answered.
    assert pair.of(CallAnswered) == []
    ended = only(pair.of(CallEnded))
    assert (ended.call_id, ended.cause, ended.by, ended.answered) == (call_id, 487, "local", False)


@pytest.mark.parametrize(
    ("callee", "ring_timeout", "hangup_at"),
    [
        (Callee(), None, 5.0),  # answered, we hang up
        (Callee(reject=486), None, None),  # rejected
        (Callee(ring=1.0, answer=None), 30.0, None),  # cancelled by the ring timeout
        (Callee(ring=1.0, answer=None), None, 10.0),  # cancelled by a hang-up
    ],
)
def test_nothing_is_left_once_a_call_has_ended(
    callee: Callee, ring_timeout: float | None, hangup_at: float | None
) -> None:
    # A gateway places millions of calls: once a call has ended and its retransmission window
    # (64*T1) has passed, neither side may keep anything of it, not even a cancelled timer.
    pair = Pair(callee=callee)
    call_id = pair.call(ring_timeout=ring_timeout)
    if hangup_at is not None:
        pair.run(hangup_at)
        pair.ours.hangup(call_id, pair.now)
    pair.run(300.0)

    assert len(pair.of(CallEnded)) == 1
    for endpoint in (pair.ours, pair.far):
        assert endpoint.calls == {}
        assert len(endpoint.transactions) == 0
        assert endpoint.get_timer() is None
        assert len(endpoint._timers) == 0


# -- digest authentication -------------------------------------------------------------------

REALM = "trunk.example"


def challenger(
    status: int, algorithm: str, password: str = "s3cret"
) -> Callable[[Request], list[Response] | None]:
    """A proxy in front of the callee: challenges every INVITE that lacks valid credentials."""
    header = "Proxy-Authorization" if status == 407 else "Authorization"
    offer = "Proxy-Authenticate" if status == 407 else "WWW-Authenticate"
    nonces = iter(f"nonce{i}" for i in range(100))

    def answer(request: Request) -> list[Response] | None:
        for value in request.headers.get_all(header):
            if check_authorization(
                value,
                method=request.method,
                password=password,
                realm=REALM,
                username="alice",
                body=request.body,
            ):
                return None
        challenge = (
            f'Digest realm="{REALM}", nonce="{next(nonces)}", algorithm={algorithm}, qop="auth"'
        )
        return [response_for(request, status, to_tag="px", headers=[(offer, challenge)])]

    return answer


@pytest.mark.parametrize(("status", "algorithm"), [(401, "MD5"), (407, "SHA-256")])
def test_digest_challenge_is_answered_with_a_new_invite(status: int, algorithm: str) -> None:
    trunk = TrunkSettings(
        "main", "sip:192.0.2.2:5070", username="alice", password="s3cret", keepalive_interval=0
    )
    pair = Pair(trunk=trunk)
    pair.net.answer(kind("INVITE"), challenger(status, algorithm))
    call_id = pair.call()
    pair.run(10.0)

    first, second = pair.net.sent("INVITE")
    # RFC 3261 section 22.2: the retry is a new transaction (new branch) of the same call,
    # CSeq plus one, with the credentials the challenge asked for.
    assert second.message.call_id == first.message.call_id == call_id
    assert second.message.from_.tag == first.message.from_.tag
    assert str(first.message.cseq) == "1 INVITE"
    assert str(second.message.cseq) == "2 INVITE"
    assert branch(second) != branch(first)
    name = "Proxy-Authorization" if status == 407 else "Authorization"
    (credentials,) = headers(second, name)
    params = parse_auth_params(credentials.removeprefix("Digest "))
    assert params["algorithm"] == algorithm
    assert params["nc"] == "00000001"
    assert params["qop"] == "auth"
    # The challenge itself was ACKed within its own transaction.
    (ack,) = [s for s in pair.net.sent("ACK") if branch(s) == branch(first)]
    assert str(ack.message.cseq) == "1 ACK"
    assert [e.call_id for e in pair.of(CallAnswered)] == [call_id]


def test_wrong_password_gives_up_with_the_407() -> None:
    trunk = TrunkSettings(
        "main", "sip:192.0.2.2:5070", username="alice", password="wrong", keepalive_interval=0
    )
    pair = Pair(trunk=trunk)
    pair.net.answer(kind("INVITE"), challenger(407, "MD5"))
    call_id = pair.call()
    pair.run(60.0)

    # One answer to the challenge; the same challenge again means the password is wrong
    # (section 22.1: never re-send credentials that were just rejected).
    assert pair.net.times("INVITE") == [0.0, 0.0]
    ended = only(pair.of(CallEnded))
    assert (ended.call_id, ended.cause, ended.by) == (call_id, 407, "remote")
    assert pair.far_events == []


def test_trunk_that_challenges_bye_gets_an_authenticated_bye() -> None:
    trunk = TrunkSettings(
        "main", "sip:192.0.2.2:5070", username="alice", password="s3cret", keepalive_interval=0
    )
    pair = Pair(trunk=trunk)
    ours = {"INVITE", "BYE"}
    pair.net.answer(lambda s: s.kind in ours and s.source == OURS, challenger(407, "SHA-256"))
    call_id = pair.call()
    pair.run(3.0)
    pair.ours.hangup(call_id, pair.now)
    pair.run(60.0)

    # The first BYE is challenged like the INVITE was; the second carries credentials for
    # it (next CSeq, new branch) and really ends the call at the far end too.
    first, second = pair.net.sent("BYE")
    assert (str(first.request.cseq), str(second.request.cseq)) == ("3 BYE", "4 BYE")
    assert branch(first) != branch(second)
    (credentials,) = headers(second, "Proxy-Authorization")
    assert check_authorization(
        credentials, method="BYE", password="s3cret", realm=REALM, username="alice"
    )
    far_ended = [e for e in pair.far_events if isinstance(e, CallEnded)]
    assert [(e.cause, e.by) for e in far_ended] == [(200, "remote")]
    ended = only(pair.of(CallEnded))
    assert (ended.call_id, ended.cause, ended.by) == (call_id, 200, "local")


def test_challenged_session_refresh_is_sent_again_with_credentials() -> None:
    trunk = TrunkSettings(
        "main", "sip:192.0.2.2:5070", username="alice", password="s3cret", keepalive_interval=0
    )
    pair = Pair(trunk=trunk)
    pair.net.answer(lambda s: s.kind == "INVITE" and s.source == OURS, challenger(401, "MD5"))
    pair.net.rewrite(kind("200 INVITE"), with_session_expires("90;refresher=uac"))
    pair.call()
    pair.run(50.0)

    invites = pair.net.sent("INVITE", source=OURS)
    assert [(s.at, str(s.request.cseq)) for s in invites] == [
        (0.0, "1 INVITE"),
        (0.0, "2 INVITE"),
        (46.0, "3 INVITE"),
        (46.0, "4 INVITE"),
    ]
    # The refresh that got through is ACKed with its own CSeq, and the call goes on.
    assert [str(s.request.cseq) for s in pair.net.sent("ACK", source=OURS)][-1] == "4 ACK"
    assert pair.of(CallEnded) == []


# -- redirection -------------------------------------------------------------------------------

MOVED = Address("udp", "192.0.2.2", 5072)


def redirect(request: Request) -> list[Response] | None:
    if "moved" in request.uri:
        return None
    contact = f"<sip:moved@{MOVED.host}:{MOVED.port}>"
    return [response_for(request, 302, to_tag="rd", headers=[("Contact", contact)])]


def test_3xx_is_followed_to_its_contact() -> None:
    pair = Pair()
    pair.nodes[(MOVED.host, MOVED.port)] = pair.far  # the callee also listens there
    pair.net.answer(kind("INVITE"), redirect)
    call_id = pair.call()
    pair.run(10.0)

    first, second = pair.net.sent("INVITE")
    # RFC 3261 section 8.1.3.4: the Contact becomes the Request-URI and the destination.
    assert second.request.uri == "sip:moved@192.0.2.2:5072"
    assert second.dest == MOVED
    assert str(second.message.cseq) == "2 INVITE"
    assert branch(second) != branch(first)
    (ack,) = [s for s in pair.net.sent("ACK") if branch(s) == branch(first)]
    assert ack.dest == FAR  # the 302 is ACKed where the first INVITE went
    incoming = [e for e in pair.far_events if isinstance(e, IncomingCall)]
    assert [(e.call_id, e.called) for e in incoming] == [(call_id, "moved")]
    assert [e.call_id for e in pair.of(CallAnswered)] == [call_id]


def test_callee_reached_by_a_3xx_on_a_host_that_is_no_trunk_can_hang_up() -> None:
    elsewhere = Address("udp", "192.0.2.3", 5060)  # not a trunk, not among its sources
    pair = Pair()
    callee = Endpoint(
        EndpointSettings(),
        [TrunkSettings("gw", "sip:192.0.2.1:5060", keepalive_interval=0)],
        rng=random.Random(3),
    )
    pair.add_node(elsewhere, callee)

    def redirect_elsewhere(request: Request) -> list[Response] | None:
        if "moved" in request.uri:
            return None
        contact = "<sip:moved@192.0.2.3:5060>"
        return [response_for(request, 302, to_tag="rd", headers=[("Contact", contact)])]

    pair.net.answer(kind("INVITE"), redirect_elsewhere)
    call_id = pair.call()
    pair.run(5.0)
    callee.hangup(call_id, pair.now)
    pair.run(10.0)

    # Its BYE is in our dialog: answered 200 (not 403 as from a stranger), and the call ends.
    assert [s.dest for s in pair.net.sent("200 INVITE")] == [OURS]
    assert [(s.at, s.source.host, s.kind) for s in pair.net.log[-2:]] == [
        (5.0, "192.0.2.3", "BYE"),
        (5.0, OURS.host, "200 BYE"),
    ]
    ended = only(pair.of(CallEnded))
    assert (ended.call_id, ended.cause, ended.by) == (call_id, 200, "remote")
    # A request outside our dialogs from the same host is still refused.
    pair.inject(raw("OPTIONS", elsewhere._replace(port=5999)), elsewhere)
    pair.run(11.0)
    assert [s.kind for s in answers_to(pair, elsewhere._replace(port=5999))] == ["403 OPTIONS"]


def test_3xx_ends_the_call_when_redirects_are_not_followed() -> None:
    pair = Pair(settings=EndpointSettings(follow_redirects=False))
    pair.net.answer(kind("INVITE"), redirect)
    call_id = pair.call()
    pair.run(60.0)

    assert pair.net.times("INVITE") == [0.0]
    assert pair.net.times("ACK") == [0.0]
    ended = only(pair.of(CallEnded))
    assert (ended.call_id, ended.cause, ended.by) == (call_id, 302, "remote")


# -- mid-call ---------------------------------------------------------------------------------


def answered_pair() -> tuple[Pair, str]:
    pair = Pair()
    call_id = pair.call()
    pair.run(2.0)
    assert [e.call_id for e in pair.of(CallAnswered)] == [call_id]
    return pair, call_id


def test_far_end_puts_us_on_hold_with_a_reinvite() -> None:
    pair, call_id = answered_pair()
    hold = far_answer(OFFER, direction="sendonly", version=2)
    answers = pair.far_request(
        call_id, "INVITE", headers=[("Content-Type", "application/sdp")], body=hold
    )
    pair.run(5.0)

    assert [r.status for r in answers] == [200]
    sdp = SessionDescription.parse(answers[0].body)
    # RFC 3264 section 6.1: a sendonly stream is answered recvonly.
    assert sdp.media[0].direction() == "recvonly"
    # The far end's ACK for our 200 stops its retransmission: exactly one 200 went out.
    assert len(pair.net.sent("200 INVITE", source=OURS)) == 1
    assert len(pair.net.sent("ACK", source=FAR)) == 1
    (updated,) = pair.of(CallUpdated)
    assert (updated.call_id, updated.audio.on_hold, updated.audio.direction) == (
        call_id,
        True,
        "sendonly",
    )
    assert pair.of(CallEnded) == []


def test_our_lost_200_to_a_reinvite_is_resent_until_acked() -> None:
    pair, call_id = answered_pair()
    pair.net.drop(lambda s: s.kind == "200 INVITE" and s.source == OURS)
    hold = far_answer(OFFER, direction="sendonly", version=2)
    answers = pair.far_request(
        call_id, "INVITE", headers=[("Content-Type", "application/sdp")], body=hold
    )
    pair.run(60.0)

    # Section 13.3.1.4 holds for a re-INVITE too: our 2xx comes again after T1, the far end
    # ACKs it, and the call goes on (before, the far end's re-INVITE timed out).
    assert pair.net.times("200 INVITE", source=OURS) == [2.0, 2.0 + T1]
    assert [r.status for r in answers] == [200]
    assert pair.net.times("ACK", source=FAR) == [2.0 + T1]
    assert pair.net.sent("BYE") == []
    assert pair.of(CallEnded) == []


def test_reinvite_after_the_call_ended_gets_481() -> None:
    pair, call_id = answered_pair()
    dialog = pair.far_call(call_id).dialog
    assert dialog is not None
    pair.ours.hangup(call_id, pair.now)
    pair.run(3.0)
    # The far end did not get our BYE's news yet and puts us on hold in the old dialog, while
    # we still keep the call to absorb retransmissions.
    hold = dialog.create_request(
        "INVITE",
        via=pair.far.via("udp"),
        contact=pair.far.contact("udp"),
        headers=[("Content-Type", "application/sdp")],
        body=far_answer(OFFER, direction="sendonly", version=2),
    )
    answers = pair.far_send(dialog, hold)
    pair.run(10.0)

    assert [r.status for r in answers] == [481]
    assert pair.of(CallUpdated) == []
    assert len(pair.of(CallEnded)) == 1


def test_request_with_an_older_cseq_gets_500() -> None:
    pair, call_id = answered_pair()
    dialog = pair.far_call(call_id).dialog
    assert dialog is not None
    dialog.local_seq = 10
    first = pair.far_request(
        call_id, "INFO", headers=[("Content-Type", "application/dtmf")], body=b"1"
    )
    dialog.local_seq = 3
    late = pair.far_request(
        call_id, "INFO", headers=[("Content-Type", "application/dtmf")], body=b"2"
    )
    pair.run(5.0)

    # RFC 3261 section 12.2.2: lower than the last CSeq seen in the dialog -> 500.
    assert [r.status for r in first] == [200]
    assert [r.status for r in late] == [500]
    assert [e.digit for e in pair.of(DtmfReceived)] == ["1"]


def test_record_route_makes_the_route_set_of_our_ack_and_bye() -> None:
    proxy = Address("udp", "192.0.2.9", 5060)
    pair = Pair()
    pair.nodes[(proxy.host, proxy.port)] = pair.far  # the proxy hands everything to the callee

    def record_route(message: Request | Response) -> Request | Response:
        message.headers.add("Record-Route", f"<sip:{proxy.host}:{proxy.port};lr>")
        return message

    pair.net.rewrite(kind("200 INVITE"), record_route)
    call_id = pair.call()
    pair.run(3.0)
    pair.ours.hangup(call_id, pair.now)
    pair.run(10.0)

    # Section 12.2.1.1 with a loose router: the Request-URI is the callee's Contact, the
    # request goes to the proxy with a Route header naming it.
    (ack,) = pair.net.sent("ACK")
    (bye,) = pair.net.sent("BYE")
    for request in (ack, bye):
        assert request.dest == proxy
        assert request.request.uri == "sip:gw@192.0.2.2:5070"
        assert headers(request, "Route") == ["<sip:192.0.2.9:5060;lr>"]
    assert only(pair.of(CallEnded)).cause == 200


def with_session_expires(value: str) -> Callable[[Request | Response], Request | Response]:
    def add(message: Request | Response) -> Request | Response:
        message.headers.add("Require", "timer")
        message.headers.add("Session-Expires", value)
        return message

    return add


def test_session_refreshed_by_us_at_half_the_interval() -> None:
    pair = Pair()
    pair.net.rewrite(kind("200 INVITE"), with_session_expires("90;refresher=uac"))
    call_id = pair.call()
    pair.run(100.0)

    # RFC 4028 section 10: the refresher (we are the UAC) re-INVITEs at half the interval.
    assert pair.net.times("INVITE", source=OURS) == [0.0, 46.0, 91.0]
    reinvites = pair.net.sent("INVITE", source=OURS)[1:]
    assert [str(s.message.cseq) for s in reinvites] == ["2 INVITE", "3 INVITE"]
    assert [headers(s, "Session-Expires") for s in reinvites] == [["90;refresher=uac"]] * 2
    assert pair.net.times("ACK", source=OURS) == [1.0, 46.0, 91.0]
    assert pair.of(CallEnded) == []
    assert [e.call_id for e in pair.of(CallAnswered)] == [call_id]


def test_session_expires_without_the_far_refresh_and_we_send_bye() -> None:
    pair = Pair()
    pair.net.rewrite(kind("200 INVITE"), with_session_expires("90;refresher=uas"))
    call_id = pair.call()
    pair.run(200.0)

    # Section 10: with no refresh, BYE before the expiry (90 s after the 200 at 1 s), leaving
    # the far end min(32, 90/3) = 30 s: at 61 s.
    (bye,) = pair.net.sent("BYE")
    assert (bye.at, bye.source) == (61.0, OURS)
    assert headers(bye, "Reason") == ['SIP;cause=408;text="Session expired"']
    assert pair.net.times("INVITE", source=OURS) == [0.0]
    # The call ended because the session expired, not as a plain hang-up.
    ended = only(pair.of(CallEnded))
    assert (ended.call_id, ended.cause, ended.reason, ended.by, ended.at) == (
        call_id,
        408,
        "Session expired",
        "local",
        61.0,
    )


def test_session_refresh_answered_481_ends_the_call() -> None:
    pair = Pair()
    pair.net.rewrite(kind("200 INVITE"), with_session_expires("90;refresher=uac"))
    call_id = pair.call()
    pair.run(2.0)
    pair.far.forget(call_id)  # the far end lost the dialog (a restart)
    pair.run(100.0)

    # RFC 3261 section 12.2.1.2: a 481 to a request in the dialog terminates it.
    assert pair.net.times("481 INVITE") == [46.0]
    (bye,) = pair.net.sent("BYE")
    assert bye.at == 46.0
    assert headers(bye, "Reason") == ['SIP;cause=408;text="Session refresh failed"']
    ended = only(pair.of(CallEnded))
    assert (ended.call_id, ended.cause, ended.by, ended.at) == (call_id, 408, "local", 46.0)


def test_info_dtmf_relay_is_reported() -> None:
    pair, call_id = answered_pair()
    answers = pair.far_request(
        call_id,
        "INFO",
        headers=[("Content-Type", "application/dtmf-relay")],
        body=b"Signal=5\r\nDuration=160\r\n",
    )
    pair.run(5.0)

    assert [r.status for r in answers] == [200]
    assert [(e.call_id, e.digit, e.duration_ms) for e in pair.of(DtmfReceived)] == [
        (call_id, "5", 160)
    ]


G729_ONLY = (
    b"v=0\r\no=- 7 1 IN IP4 192.0.2.2\r\ns=-\r\nc=IN IP4 192.0.2.2\r\nt=0 0\r\n"
    b"m=audio 30000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n"
)


def test_answer_without_a_common_codec_is_acked_then_byed() -> None:
    pair = Pair(callee=Callee(sdp=G729_ONLY))
    call_id = pair.call()
    pair.run(10.0)

    assert [(s.at, s.kind, s.source) for s in pair.net.log[2:]] == [
        (1.0, "200 INVITE", FAR),
        (1.0, "ACK", OURS),
        (1.0, "BYE", OURS),
        (1.0, "200 BYE", FAR),
    ]
    (bye,) = pair.net.sent("BYE")
    # RFC 3326: the BYE says why.
    assert headers(bye, "Reason") == ['SIP;cause=488;text="No common codec"']
    ended = only(pair.of(CallEnded))
    assert (ended.call_id, ended.cause, ended.by) == (call_id, 488, "local")
    assert pair.of(CallAnswered) == []


# -- calls the far end places to us (the opt-out line) ------------------------------------------


def far_calls_us(pair: Pair, ring_timeout: float | None = None) -> str:
    call_id = pair.far.invite(
        trunk="gw",
        to_user="optout",
        from_user="33612345678",
        sdp=far_answer(OFFER),
        now=pair.now,
        ring_timeout=ring_timeout,
    )
    pair.pump()
    return call_id


def test_incoming_call_cancelled_by_the_caller_ends_with_487() -> None:
    pair = Pair()
    call_id = far_calls_us(pair, ring_timeout=5.0)
    pair.run(60.0)

    (incoming,) = pair.of(IncomingCall)
    assert (incoming.call_id, incoming.trunk, incoming.called) == (call_id, "main", "optout")
    assert incoming.caller == "sip:33612345678@192.0.2.1"
    # Our INVITE server transaction said 100 Trying after 200 ms, then the CANCEL came.
    assert [(s.at, s.kind) for s in pair.net.log if s.source == OURS] == [
        (0.2, "100 INVITE"),
        (5.0, "200 CANCEL"),
        (5.0, "487 INVITE"),
    ]
    ended = only(pair.of(CallEnded))
    assert (ended.call_id, ended.cause, ended.by, ended.answered) == (call_id, 487, "remote", False)


def test_cancel_crossing_our_rejection_gets_200_and_changes_nothing() -> None:
    pair = Pair()
    call_id = far_calls_us(pair)
    pair.run(0.1)
    pair.ours.reject(call_id, 486, pair.now)
    # The caller hung up at the same moment: its CANCEL arrives after our 486 went out.
    outbound = pair.far.calls[call_id]
    assert isinstance(outbound, OutboundCall) and outbound.invite_request is not None
    pair.inject(bytes(build_cancel(outbound.invite_request)), FAR)
    pair.run(5.0)

    # Section 9.2: the CANCEL matches the INVITE's transaction, so 200; the INVITE already
    # has its final answer, so no 487.
    assert [s.kind for s in pair.net.log if s.source == OURS] == ["486 INVITE", "200 CANCEL"]
    ended = only(pair.of(CallEnded))
    assert (ended.call_id, ended.cause, ended.by) == (call_id, 486, "local")


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_our_200_is_resent_until_acked_then_byed_at_64_t1(transport: str) -> None:
    pair = Pair(far_transport=transport)
    call_id = far_calls_us(pair)
    pair.run(1.0)
    pair.net.drop(kind("ACK"), times=None)
    pair.ours.accept(call_id, OFFER, pair.now)
    pair.run(100.0)

    # RFC 3261 section 13.3.1.4: the 2xx is re-sent at T1, 2*T1 ... capped at T2 (4 s),
    # "independent of whatever transport protocol is used"; with no ACK in 64*T1 the session
    # is ended with BYE, at 1 + 32 s.
    resent = [1.0, 1.5, 2.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5, 32.5]
    assert pair.net.times("200 INVITE", source=OURS._replace(transport=transport)) == resent
    (bye,) = pair.net.sent("BYE")
    assert (bye.at, bye.source.host) == (1.0 + 64 * T1, OURS.host)
    assert headers(bye, "Reason") == ['SIP;cause=408;text="No ACK"']
    ended = only(pair.of(CallEnded))
    assert (ended.call_id, ended.cause, ended.reason, ended.by, ended.at) == (
        call_id,
        408,
        "No ACK",
        "local",
        33.0,
    )


def test_our_200_stops_at_the_ack() -> None:
    pair = Pair()
    call_id = far_calls_us(pair)
    pair.run(1.0)
    pair.net.drop(kind("200 INVITE"))  # the first copy is lost
    pair.ours.accept(call_id, OFFER, pair.now)
    pair.run(100.0)

    assert pair.net.times("200 INVITE", source=OURS) == [1.0, 1.5]
    assert pair.net.times("ACK", source=FAR) == [1.5]
    assert pair.of(CallEnded) == []


# -- requests we answer ------------------------------------------------------------------------

PROBE = Address("udp", FAR.host, 5999)  # the trunk's host, at a port where nothing listens
STRANGER = Address("udp", "198.51.100.7", 5060)


def raw(
    method: str,
    source: Address,
    *,
    to_tag: str = "",
    number: int = 1,
    call_id: str = "probe-1",
    cseq_method: str | None = None,
) -> bytes:
    to = f"<sip:gw@{OURS.host}>" + (f";tag={to_tag}" if to_tag else "")
    return (
        f"{method} sip:gw@{OURS.host}:{OURS.port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {source.host}:{source.port};branch=z9hG4bKprobe{number}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@{source.host}>;tag=pr{number}\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {number} {cseq_method or method}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def answers_to(pair: Pair, address: Address) -> list[Sent]:
    return [s for s in pair.net.log if s.dest == address and s.source == OURS]


def test_inbound_options_is_answered_200_with_allow() -> None:
    pair = Pair()
    pair.far.options("gw", pair.now)
    pair.run(1.0)

    (ok,) = pair.net.sent("200 OPTIONS", source=OURS)
    assert headers(ok, "Allow") == [ALLOW]
    assert headers(ok, "Accept") == ["application/sdp, application/dtmf-relay, application/dtmf"]
    options = [e for e in pair.far_events if isinstance(e, OptionsAnswered)]
    assert [(e.trunk, e.status) for e in options] == [("gw", 200)]


@pytest.mark.parametrize("method", ["SUBSCRIBE", "REGISTER"])
def test_method_we_do_not_serve_gets_405_with_allow(method: str) -> None:
    pair = Pair()
    pair.inject(raw(method, PROBE), PROBE)
    pair.run(1.0)

    (answer,) = answers_to(pair, PROBE)
    assert answer.kind == f"405 {method}"
    assert headers(answer, "Allow") == [ALLOW]


def test_request_from_a_stranger_gets_403() -> None:
    pair = Pair()
    pair.inject(raw("OPTIONS", STRANGER), STRANGER)
    pair.run(1.0)

    assert [s.kind for s in answers_to(pair, STRANGER)] == ["403 OPTIONS"]
    assert pair.ours.stats["stranger_answered"] == 1


def test_stranger_flood_is_dropped_but_the_trunk_is_still_answered() -> None:
    pair = Pair()  # stranger_rate = 50 per second
    for n in range(1, 81):
        pair.inject(raw("OPTIONS", STRANGER, number=n, call_id=f"flood-{n}"), STRANGER)
    pair.inject(raw("OPTIONS", PROBE, call_id="trunk-1"), PROBE)
    pair.run(0.0)

    assert len(answers_to(pair, STRANGER)) == 50
    assert pair.ours.stats["stranger_answered"] == 50
    assert pair.ours.stats["stranger_dropped"] == 30
    assert [s.kind for s in answers_to(pair, PROBE)] == ["200 OPTIONS"]

    # The bucket refills at the same rate: one second later the stranger is answered again.
    pair.run(1.0)
    pair.inject(raw("OPTIONS", STRANGER, number=99, call_id="later"), STRANGER)
    pair.run(1.0)
    assert len(answers_to(pair, STRANGER)) == 51


def test_invite_without_contact_gets_400_not_an_incoming_call() -> None:
    pair = Pair()
    pair.inject(raw("INVITE", PROBE), PROBE)  # raw() writes no Contact
    pair.run(0.1)

    # RFC 3261 section 8.1.1.8: no Contact, no dialog to build; refused at once (accepting it
    # later raised ParseError out of Endpoint.accept).
    assert [s.kind for s in answers_to(pair, PROBE)] == ["400 INVITE"]
    assert pair.of(IncomingCall) == []


def test_bye_for_an_unknown_dialog_gets_481() -> None:
    pair = Pair()
    pair.inject(raw("BYE", PROBE, to_tag="nosuch"), PROBE)
    pair.run(1.0)

    assert [s.kind for s in answers_to(pair, PROBE)] == ["481 BYE"]


def test_cancel_for_an_unknown_transaction_gets_481() -> None:
    pair = Pair()
    pair.inject(raw("CANCEL", PROBE), PROBE)
    pair.run(1.0)

    assert [s.kind for s in answers_to(pair, PROBE)] == ["481 CANCEL"]


# -- keep-alive --------------------------------------------------------------------------------


def test_keepalive_marks_the_trunk_up_then_down() -> None:
    trunk = TrunkSettings("main", "sip:192.0.2.2:5070", keepalive_interval=30.0)
    pair = Pair(trunk=trunk)
    pair.ours.start_keepalives(pair.now)
    pair.run(10.0)
    # The far end goes away after its first answer.
    del pair.nodes[(FAR.host, FAR.port)]
    pair.run(100.0)

    assert pair.net.times("OPTIONS", source=OURS)[:2] == [0.0, 30.0]
    changes = pair.of(TrunkStateChanged)
    # Up on the first 200; down when the next OPTIONS gets nothing by Timer F (64*T1).
    assert [(e.trunk, e.up, e.status, e.at) for e in changes] == [
        ("main", True, 200, 0.0),
        ("main", False, 408, 30.0 + 64 * T1),
    ]
    assert changes[0].rtt == 0.0
    assert changes[1].rtt is None


def test_keepalive_any_answer_is_up_and_recovery_is_reported_once() -> None:
    trunk = TrunkSettings("main", "sip:192.0.2.2:5070", keepalive_interval=30.0)
    pair = Pair(trunk=trunk)
    # A trunk that refuses our OPTIONS is still there (it answered).
    pair.net.answer(kind("OPTIONS"), lambda r: [response_for(r, 404, to_tag="k")])
    pair.ours.start_keepalives(pair.now)
    pair.run(40.0)
    pair.net.rules.clear()
    far = pair.nodes.pop((FAR.host, FAR.port))  # unplugged from 40 s ...
    pair.run(100.0)
    pair.nodes[(FAR.host, FAR.port)] = far  # ... and back at 100 s
    pair.run(200.0)

    changes = [(e.up, e.status, e.at) for e in pair.of(TrunkStateChanged)]
    # 0 and 30 s: 404, up (once); 60 s: no answer, down at 60 + 64*T1; the OPTIONS of 90 s
    # is still re-sent (Timer E: 90.5, 91.5, 93.5, 97.5, 101.5) and its copy of 101.5 s is the
    # first the trunk hears when it is back: up again.
    assert changes == [(True, 404, 0.0), (False, 408, 92.0), (True, 200, 101.5)]
    first_sent: dict[str, float] = {}
    for sent in pair.net.sent("OPTIONS", source=OURS):
        first_sent.setdefault(sent.request.call_id, sent.at)
    assert list(first_sent.values()) == [0.0, 30.0, 60.0, 90.0, 120.0, 150.0, 180.0]
