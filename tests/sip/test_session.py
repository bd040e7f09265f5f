"""What a call does once its dialog exists: re-INVITEs, RFC 4028 and INFO (gateway.sip.session).

The behaviour is driven through an endpoint pair (tests/sip/pair.py): the far end sends
requests in the dialog of a call we placed and answered.
"""

from __future__ import annotations

import pytest

from gateway.sip.events import CallEnded, CallUpdated, DtmfReceived
from gateway.sip.message import Request, Response, response_for
from gateway.sip.sdp import SessionDescription
from gateway.sip.session import parse_dtmf_info
from tests.sip.pair import FAR, OFFER, OURS, Pair, far_answer, kind


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", ("5", 160)),
        ("application/dtmf-relay", b"signal = #\nduration = 100\n", ("#", 100)),
        ("application/dtmf-relay", b"Signal=10\r\nDuration=250\r\n", ("*", 250)),
        ("application/dtmf-relay", b"Signal=11\r\n", ("#", None)),
        ("application/dtmf-relay", b"Signal=d\r\n", ("D", None)),
        ("application/dtmf", b"7", ("7", None)),
        ("application/dtmf", b"*\r\n", ("*", None)),
        ("application/dtmf-relay", b"Signal=X\r\n", (None, None)),
        ("application/dtmf-relay", b"Duration=160\r\n", (None, None)),
        ("application/dtmf", b"", (None, None)),
        ("text/plain", b"Signal=5", (None, None)),
        (None, b"Signal=5", (None, None)),
    ],
)
def test_dtmf_info_bodies(
    content_type: str | None, body: bytes, expected: tuple[str | None, int | None]
) -> None:
    assert parse_dtmf_info(content_type, body) == expected


def answered() -> tuple[Pair, str]:
    pair = Pair()
    call_id = pair.call()
    pair.run(2.0)
    return pair, call_id


def test_info_application_dtmf_is_reported() -> None:
    pair, call_id = answered()
    answers = pair.far_request(
        call_id, "INFO", headers=[("Content-Type", "application/dtmf")], body=b"9"
    )
    pair.run(3.0)

    assert [r.status for r in answers] == [200]
    assert [(e.call_id, e.digit, e.duration_ms) for e in pair.of(DtmfReceived)] == [
        (call_id, "9", None)
    ]


def test_reinvite_with_a_session_interval_below_min_se_gets_422() -> None:
    pair, call_id = answered()
    answers = pair.far_request(
        call_id,
        "INVITE",
        headers=[("Supported", "timer"), ("Session-Expires", "60;refresher=uac")],
    )
    pair.run(3.0)

    # RFC 4028 section 8.1: too small an interval -> 422 with our Min-SE (90 s by default).
    assert [(r.status, r.headers.get_lines("Min-SE")) for r in answers] == [(422, ["90"])]
    assert pair.of(CallEnded) == []


def test_offerless_reinvite_gets_our_sdp_as_the_offer() -> None:
    pair, call_id = answered()
    answers = pair.far_request(call_id, "INVITE")
    pair.run(3.0)

    # Section 13.2.1 / RFC 3264: a re-INVITE without a body asks for our offer in the 2xx.
    assert [r.status for r in answers] == [200]
    assert answers[0].headers.get("Content-Type") == "application/sdp"
    sdp = SessionDescription.parse(answers[0].body)
    assert sdp.media[0].port == 20000
    assert sdp.origin.address == "192.0.2.1"
    assert pair.of(CallUpdated) == []


def test_reinvite_without_a_common_codec_gets_488_and_the_call_goes_on() -> None:
    pair, call_id = answered()
    g729 = (
        b"v=0\r\no=- 7 2 IN IP4 192.0.2.2\r\ns=-\r\nc=IN IP4 192.0.2.2\r\nt=0 0\r\n"
        b"m=audio 30000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n"
    )
    answers = pair.far_request(
        call_id, "INVITE", headers=[("Content-Type", "application/sdp")], body=g729
    )
    pair.run(10.0)

    # RFC 3261 section 14.2: a refused re-INVITE leaves the session as it was.
    assert [r.status for r in answers] == [488]
    assert pair.of(CallUpdated) == []
    assert pair.of(CallEnded) == []


def test_resume_after_hold_is_reported() -> None:
    pair, call_id = answered()
    for version, direction in ((2, "sendonly"), (3, "sendrecv")):
        pair.far_request(
            call_id,
            "INVITE",
            headers=[("Content-Type", "application/sdp")],
            body=far_answer(OFFER, direction=direction, version=version),
        )
        pair.run(pair.now + 1.0)

    assert [(e.audio.direction, e.audio.on_hold) for e in pair.of(CallUpdated)] == [
        ("sendonly", True),
        ("sendrecv", False),
    ]


@pytest.mark.parametrize(
    ("supported", "refresher", "require", "our_refreshes"),
    [
        # The far end supports timers and names no refresher: it refreshes, as we answer.
        ([("Supported", "timer")], "uac", ["timer"], [0.0]),
        # Session-Expires added by a proxy for a UAC without timers: we must refresh
        # (RFC 4028 section 9), at half the interval after the re-INVITE of 2 s.
        ([], "uas", [], [0.0, 47.0, 92.0]),
    ],
)
def test_refresher_chosen_by_us_when_the_reinvite_names_none(
    supported: list[tuple[str, str]],
    refresher: str,
    require: list[str],
    our_refreshes: list[float],
) -> None:
    pair, call_id = answered()
    answers = pair.far_request(
        call_id,
        "INVITE",
        headers=[*supported, ("Session-Expires", "90"), ("Content-Type", "application/sdp")],
        body=far_answer(OFFER, version=2),
    )
    pair.run(50.0)

    assert [r.headers.get_lines("Session-Expires") for r in answers] == [
        [f"90;refresher={refresher}"]
    ]
    assert answers[0].headers.get_lines("Require") == require
    pair.run(100.0)
    assert pair.net.times("INVITE", source=OURS) == our_refreshes


def test_refresh_refused_491_for_glare_is_retried_after_2_1_to_4_s() -> None:
    pair = Pair()

    def with_timer(message: Request | Response) -> Request | Response:
        message.headers.add("Session-Expires", "90;refresher=uac")
        return message

    def glare(request: Request) -> list[Response] | None:
        # The far end has a re-INVITE of its own in progress when our first refresh comes.
        if str(request.cseq) == "2 INVITE":
            return [response_for(request, 491, to_tag=request.to.tag)]
        return None

    pair.net.rewrite(kind("200 INVITE"), with_timer)
    pair.net.answer(lambda s: s.kind == "INVITE" and s.source == OURS, glare)
    pair.call()
    pair.run(100.0)

    refreshes = [s.at for s in pair.net.sent("INVITE", source=OURS)][1:]
    assert pair.net.times("491 INVITE") == [46.0]
    # RFC 3261 section 14.1: we own the Call-ID, so 2.1 to 4 s later; then every 45 s again.
    first, retry, following = refreshes
    assert first == 46.0
    assert 46.0 + 2.1 <= retry <= 46.0 + 4.0
    assert following == pytest.approx(retry + 45.0)
    assert pair.of(CallEnded) == []


def test_far_reinvite_while_our_refresh_is_pending_gets_491() -> None:
    pair = Pair()

    def with_timer(message: Request | Response) -> Request | Response:
        message.headers.add("Session-Expires", "90;refresher=uac")
        return message

    pair.net.rewrite(kind("200 INVITE"), with_timer)
    # The far end's answer to our refresh of 46 s is slow: it arrives at 47 s.
    pair.net.delay(
        lambda s: s.kind == "200 INVITE" and s.source == FAR and s.message.cseq.seq == 2, 1.0
    )
    call_id = pair.call()
    pair.run(46.2)
    hold = far_answer(OFFER, direction="sendonly", version=2)
    answers = pair.far_request(
        call_id, "INVITE", headers=[("Content-Type", "application/sdp")], body=hold
    )
    pair.run(60.0)

    # RFC 3261 section 14.2: glare; the far end will try again later.
    assert [r.status for r in answers] == [491]
    assert pair.of(CallUpdated) == []
    assert pair.of(CallEnded) == []
