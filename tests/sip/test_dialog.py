"""Dialog state and the requests built from it (RFC 3261 sections 9.1 and 12)."""

from __future__ import annotations

from gateway.sip.dialog import Dialog, build_cancel
from gateway.sip.message import Request, Response, parse

INVITE = (
    b"INVITE sip:bob@192.0.2.2:5070 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKaaa;rport\r\n"
    b"Route: <sip:edge.example.net;lr>\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:gw@example.net>;tag=ours\r\n"
    b"To: <sip:bob@example.com>\r\n"
    b"Call-ID: c1@192.0.2.1\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"Contact: <sip:gw@192.0.2.1:5060>\r\n"
    b"Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n"
    b"Content-Length: 0\r\n\r\n"
)

OK = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKaaa;rport=5060\r\n"
    b"Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n"
    b"From: <sip:gw@example.net>;tag=ours\r\n"
    b"To: <sip:bob@example.com>;tag=theirs\r\n"
    b"Call-ID: c1@192.0.2.1\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"Contact: <sip:bob@192.0.2.2:5070>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def invite() -> Request:
    message = parse(INVITE)
    assert isinstance(message, Request)
    return message


def ok(data: bytes = OK) -> Response:
    message = parse(data)
    assert isinstance(message, Response)
    return message


def test_uac_dialog_from_a_2xx() -> None:
    dialog = Dialog.from_uac(invite(), ok())

    assert dialog.key == ("c1@192.0.2.1", "ours", "theirs")
    assert dialog.remote_target == "sip:bob@192.0.2.2:5070"
    # Section 12.1.2: the Record-Route of the response, in reverse order.
    assert dialog.route_set == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    assert dialog.local_seq == 7
    assert dialog.remote_seq is None


def test_uas_dialog_keeps_the_record_route_order() -> None:
    dialog = Dialog.from_uas(invite(), "mine")

    assert dialog.key == ("c1@192.0.2.1", "mine", "ours")
    assert dialog.route_set == ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
    assert dialog.remote_target == "sip:gw@192.0.2.1:5060"
    assert dialog.remote_seq == 7


def test_requests_in_the_dialog_count_cseq_but_ack_reuses_the_invites() -> None:
    dialog = Dialog.from_uac(invite(), ok())
    ack = dialog.create_request("ACK", via="SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKack", cseq=7)
    bye = dialog.create_request("BYE", via="SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKbye")
    info = dialog.create_request("INFO", via="SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKinf")

    assert [str(r.cseq) for r in (ack, bye, info)] == ["7 ACK", "8 BYE", "9 INFO"]
    # Loose routing: the remote target is the Request-URI, the route set goes in Route.
    assert bye.uri == "sip:bob@192.0.2.2:5070"
    assert bye.headers.get_lines("Route") == [
        "<sip:p1.example.com;lr>",
        "<sip:p2.example.com;lr>",
    ]
    assert bye.headers.get("From") == "<sip:gw@example.net>;tag=ours"
    assert bye.headers.get("To") == "<sip:bob@example.com>;tag=theirs"
    assert str(dialog.next_hop()) == "sip:p1.example.com;lr"


def test_strict_router_takes_the_request_uri() -> None:
    strict = OK.replace(
        b"Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>",
        b"Record-Route: <sip:p1.example.com>",
    )
    dialog = Dialog.from_uac(invite(), ok(strict))
    bye = dialog.create_request("BYE", via="SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKbye")

    # Section 12.2.1.1, last paragraph: the first route becomes the Request-URI and the remote
    # target ends the Route list.
    assert bye.uri == "sip:p1.example.com"
    assert bye.headers.get_lines("Route") == ["<sip:bob@192.0.2.2:5070>"]


def test_out_of_order_cseq_is_refused_and_reinvite_refreshes_the_target() -> None:
    dialog = Dialog.from_uas(invite(), "mine")
    lower = parse(INVITE.replace(b"CSeq: 7 INVITE", b"CSeq: 6 INVITE"))
    refresh = parse(
        INVITE.replace(b"CSeq: 7 INVITE", b"CSeq: 8 INVITE").replace(
            b"Contact: <sip:gw@192.0.2.1:5060>", b"Contact: <sip:gw@192.0.2.77:5062>"
        )
    )
    assert isinstance(lower, Request) and isinstance(refresh, Request)

    assert dialog.receive_request(lower) is False
    assert dialog.receive_request(refresh) is True
    assert dialog.remote_seq == 8
    assert dialog.remote_target == "sip:gw@192.0.2.77:5062"


def test_cancel_copies_what_section_9_1_requires() -> None:
    request = invite()
    cancel = build_cancel(request)

    assert cancel.method == "CANCEL"
    assert cancel.uri == request.uri
    assert cancel.headers.get_lines("Via") == ["SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKaaa;rport"]
    assert cancel.headers.get_lines("Route") == ["<sip:edge.example.net;lr>"]
    for name in ("From", "To", "Call-ID"):
        assert cancel.headers.get(name) == request.headers.get(name)
    assert str(cancel.cseq) == "7 CANCEL"
