"""Messages: parse, bytes(), Headers, typed views, response_for, check_request."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sip.errors import ParseError, SipError, VersionNotSupported
from gateway.sip.message import (
    Headers,
    Request,
    Response,
    check_request,
    check_response,
    parse,
    response_for,
)

SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"

INVITE = (
    b"INVITE sip:bob@biloxi.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.com>\r\n"
    b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.com>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)

OK = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP server10.biloxi.com;branch=z9hG4bKnashds8;received=192.0.2.3\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds;received=192.0.2.1\r\n"
    b"To: Bob <sip:bob@biloxi.com>;tag=a6c85cf\r\n"
    b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def _request(data: bytes = INVITE) -> Request:
    message = parse(data)
    assert isinstance(message, Request)
    return message


def _replace(old: bytes, new: bytes, data: bytes = INVITE) -> bytes:
    assert old in data
    return data.replace(old, new)


# parse: start lines


def test_parse_request_fields() -> None:
    request = _request()
    assert request.method == "INVITE"
    assert request.uri == "sip:bob@biloxi.com"
    assert request.version == "SIP/2.0"
    assert request.body == SDP
    assert request.call_id == "a84b4c76e66710@pc33.atlanta.com"
    assert request.cseq.seq == 314159
    assert request.from_.tag == "1928301774"
    assert request.to.tag is None
    assert request.to.display == "Bob"
    assert request.top_via.branch == "z9hG4bK776asdhds"
    assert request.max_forwards == 70
    assert request.content_type == "application/sdp"
    assert request.contact[0].uri == "sip:alice@pc33.atlanta.com"


def test_parse_response_fields() -> None:
    response = parse(OK)
    assert isinstance(response, Response)
    assert (response.status, response.reason) == (200, "OK")
    assert [v.host for v in response.via] == ["server10.biloxi.com", "pc33.atlanta.com"]
    assert response.top_via.received == "192.0.2.3"
    assert response.to.tag == "a6c85cf"
    assert response.body == b""
    check_response(response)


def test_reason_phrase_may_be_empty_or_utf8() -> None:
    assert parse(_replace(b"200 OK", b"100 ", OK)).reason == ""  # type: ignore[union-attr]
    assert parse(_replace(b"200 OK", b"100", OK)).reason == ""  # type: ignore[union-attr]
    phrase = "Très bien, 良い"
    response = parse(_replace(b"200 OK", b"200 " + phrase.encode(), OK))
    assert isinstance(response, Response)
    assert response.reason == phrase
    assert bytes(response).startswith(b"SIP/2.0 200 " + phrase.encode() + b"\r\n")


@pytest.mark.parametrize(
    "line",
    [
        b"SIP/2.0 099 Low",
        b"SIP/2.0 700 High",
        b"SIP/2.0 20 OK",
        b"SIP/2.0 2000 OK",
        b"SIP/2.0  200 OK",
        b"SIP/2.0 abc OK",
    ],
)
def test_bad_status_lines(line: bytes) -> None:
    with pytest.raises(ParseError):
        parse(_replace(b"SIP/2.0 200 OK", line, OK))


@pytest.mark.parametrize(
    "line",
    [
        b"INVITE  sip:bob@biloxi.com SIP/2.0",
        b"INVITE sip:bob@biloxi.com  SIP/2.0",
        b"INVITE sip:bob@biloxi.com SIP/2.0 ",
        b"INVITE <sip:bob@biloxi.com> SIP/2.0",
        b"INVITE sip:bob@biloxi.com;\tlr SIP/2.0",
        b"INV(ITE sip:bob@biloxi.com SIP/2.0",
        b"INVITE sip:bob@biloxi.com",
        b"INVITE SIP/2.0",
        b"",
    ],
)
def test_bad_request_lines_are_400(line: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse(_replace(b"INVITE sip:bob@biloxi.com SIP/2.0", line))
    assert info.value.status == 400


def test_version_is_case_insensitive_and_other_versions_are_505() -> None:
    assert _request(_replace(b" SIP/2.0\r\n", b" sip/2.0\r\n")).version == "SIP/2.0"
    with pytest.raises(VersionNotSupported) as info:
        parse(_replace(b" SIP/2.0\r\n", b" SIP/3.0\r\n"))
    assert info.value.status == 505
    assert info.value.request is not None
    assert info.value.request.call_id == "a84b4c76e66710@pc33.atlanta.com"
    with pytest.raises(VersionNotSupported):
        parse(_replace(b"SIP/2.0 200", b"SIP/1.0 200", OK))


def test_leading_crlfs_are_ignored() -> None:
    assert _request(b"\r\n\r\n" + INVITE) == _request()


# parse: header section


def test_compact_forms_are_expanded() -> None:
    data = (
        b"OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:x@y>;tag=1\r\n"
        b"t: <sip:a@b>\r\ni: cid\r\nCSeq: 1 OPTIONS\r\nk: timer\r\nm: <sip:x@h>\r\n"
        b"c: text/plain\r\ne: identity\r\ns: hi\r\nl: 2\r\n\r\nhi"
    )
    request = _request(data)
    assert [name for name, _ in request.headers] == [
        "Via", "From", "To", "Call-ID", "CSeq", "Supported", "Contact", "Content-Type",
        "Content-Encoding", "Subject", "Content-Length",
    ]  # fmt: skip
    assert request.body == b"hi"
    assert b"\r\nCall-ID: cid\r\n" in bytes(request)


def test_header_names_are_case_insensitive_and_values_stripped() -> None:
    request = _request(_replace(b"Call-ID: a84b", b"cALL-iD   :  \t a84b"))
    assert request.call_id == "a84b4c76e66710@pc33.atlanta.com"
    assert request.headers.get("CALL-ID") == request.headers.get("i")


def test_folded_lines_are_unfolded() -> None:
    folded = b"CSeq: 314159\r\n\t INVITE\r\nSubject: first  \r\n  second\r\nX-Empty:\r\n x"
    request = _request(_replace(b"CSeq: 314159 INVITE", folded))
    assert request.cseq.method == "INVITE"
    assert request.headers.get("Subject") == "first second"
    assert request.headers.get("X-Empty") == "x"
    assert b"\r\nSubject: first second\r\n" in bytes(request)


def test_a_continuation_right_after_the_start_line_is_malformed() -> None:
    with pytest.raises(ParseError):
        parse(_replace(b"SIP/2.0\r\n", b"SIP/2.0\r\n lr\r\n"))


def test_lf_only_line_ends_are_accepted_bare_cr_is_not() -> None:
    head, _, body = INVITE.partition(b"\r\n\r\n")
    lf = _request(head.replace(b"\r\n", b"\n") + b"\n\n" + body)
    assert lf == _request()
    with pytest.raises(ParseError):
        # An empty LF line inside a CRLF header section: another parser would end it there.
        parse(_replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\n\nX: y\r\n"))
    with pytest.raises(ParseError):
        parse(_replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\rX: y\r\n"))


@pytest.mark.parametrize(
    "line", [b"No colon here", b"Bad Name: x", b": empty name", b"\xc3\xa9t\xc3\xa9: x"]
)
def test_malformed_header_lines_are_400(line: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse(_replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\n" + line + b"\r\n"))
    assert info.value.request is not None  # still answerable


def test_multiple_values_across_lines_and_in_one_line() -> None:
    data = _replace(
        b"Max-Forwards: 70\r\n",
        b"Max-Forwards: 70\r\nRoute: <sip:p1@a;lr>, <sip:p2@b;lr>\r\nRoute: <sip:p3@c;lr>\r\n"
        b"Supported: timer,100rel\r\nSupported: replaces\r\n"
        b'WWW-Authenticate: Digest realm="a, b", nonce="x"\r\n'
        b"Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n",
    )
    request = _request(data)
    assert [r.uri for r in request.route] == ["sip:p1@a;lr", "sip:p2@b;lr", "sip:p3@c;lr"]
    assert request.headers.get_all("Supported") == ["timer", "100rel", "replaces"]
    assert request.headers.get_lines("Supported") == ["timer,100rel", "replaces"]
    assert request.headers.get("Supported") == "timer,100rel"
    assert request.headers.get_all("WWW-Authenticate") == ['Digest realm="a, b", nonce="x"']
    assert request.headers.get_all("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]


def test_via_values_in_one_line_and_several() -> None:
    response = parse(
        _replace(
            b"Via: SIP/2.0/UDP server10",
            b"Via: SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bKa, SIP/2.0/UDP server10",
            OK,
        )
    )
    assert [(v.transport, v.host, v.port) for v in response.via] == [
        ("TCP", "[2001:db8::1]", 5070),
        ("UDP", "server10.biloxi.com", None),
        ("UDP", "pc33.atlanta.com", None),
    ]


# parse: body


def test_extra_octets_after_the_body_are_ignored() -> None:
    assert _request(INVITE + b"garbage").body == SDP


def test_without_content_length_a_datagram_body_is_the_rest() -> None:
    data = INVITE.replace(b"Content-Length: " + str(len(SDP)).encode() + b"\r\n", b"")
    assert _request(data).body == SDP


def test_content_length_larger_than_the_data_is_400() -> None:
    with pytest.raises(ParseError) as info:
        parse(INVITE[:-1])
    assert info.value.request is not None


@pytest.mark.parametrize("value", [b"-1", b"abc", b"1 2", b"", b"\xd9\xa3", b"99999999999"])
def test_malformed_content_length_is_400(value: bytes) -> None:
    with pytest.raises(ParseError):
        parse(_replace(b"Content-Length: " + str(len(SDP)).encode(), b"Content-Length: " + value))


def test_a_header_section_without_its_empty_line_is_read_as_headers() -> None:
    data = OK.removesuffix(b"\r\n")
    assert parse(data) == parse(OK)


# bytes() and round trips


def test_round_trip_of_parsed_messages_is_byte_exact() -> None:
    assert bytes(parse(INVITE)) == INVITE
    assert bytes(parse(OK)) == OK


def test_content_length_is_recomputed_and_written_once() -> None:
    request = _request()
    request.body = b"new body"
    request.headers.add("l", "999")
    data = bytes(request)
    assert data.count(b"Content-Length") == 1
    assert b"Content-Length: 8\r\n" in data
    assert parse(data).body == b"new body"


def test_constructed_request_round_trips() -> None:
    request = Request(
        "OPTIONS",
        "sip:[2001:db8::5]:5070",
        [("v", "SIP/2.0/UDP h;branch=z9hG4bK1"), ("From", '"A \\"q\\"" <sip:a@x>;tag=1')],
        b"body",
    )
    data = bytes(request)
    assert data.startswith(b"OPTIONS sip:[2001:db8::5]:5070 SIP/2.0\r\nVia: ")
    assert data.endswith(b"Content-Length: 4\r\n\r\nbody")
    assert parse(data) == request
    assert request.from_.display == 'A "q"'


def test_octets_that_are_not_utf8_come_back_unchanged() -> None:
    data = _replace(b"From: Alice", b'From: "Ren\xe9"')
    message = parse(data)
    assert bytes(message) == data
    assert message.from_.tag == "1928301774"


def test_response_default_reason_and_range() -> None:
    assert Response(486).reason == "Busy Here"
    assert Response(499).reason == "Client Error"
    assert Response(200, "Fine").reason == "Fine"
    with pytest.raises(ValueError):
        Response(700)
    with pytest.raises(ValueError):
        Response(200, "OK\r\nX: injected")


@pytest.mark.parametrize(
    ("method", "uri"),
    [("IN VITE", "sip:a@b"), ("INVITE", "sip:a b"), ("INVITE", "<sip:a@b>"), ("", "sip:a@b")],
)
def test_request_constructor_refuses_what_would_not_parse(method: str, uri: str) -> None:
    with pytest.raises(ValueError):
        Request(method, uri)


# Headers


def test_headers_multidict_operations() -> None:
    headers = Headers([("v", "a"), ("To", "t"), ("Via", "b")])
    assert len(headers) == 3
    assert "VIA" in headers and "x" not in headers and 3 not in headers
    assert headers.get("Via") == "a"
    assert headers.get("Missing") is None
    assert headers.get("Missing", "d") == "d"
    headers.set("via", "c")
    assert list(headers) == [("Via", "c"), ("To", "t")]
    headers.set("Subject", "s")
    assert list(headers)[-1] == ("Subject", "s")
    copy = headers.copy()
    copy.add("Via", "d")
    assert headers.get_all("Via") == ["c"]
    assert copy.get_all("Via") == ["c", "d"]
    copy.remove("v")
    assert "Via" not in copy
    assert "Via" in headers
    assert headers == Headers([("Via", "c"), ("To", "t"), ("s", "s")])
    headers.insert(0, "v", "top")
    assert headers.get_all("Via") == ["top", "c"]
    assert next(iter(headers)) == ("Via", "top")


@pytest.mark.parametrize(
    ("name", "value"), [("X-Evil", "a\r\nVia: x"), ("X-Evil", "a\nb"), ("Bad Name", "x"), ("", "x")]
)
def test_headers_refuse_injection(name: str, value: str) -> None:
    with pytest.raises(ValueError):
        Headers().add(name, value)


def test_views_name_the_missing_or_malformed_header_and_follow_changes() -> None:
    request = _request()
    request.headers.remove("CSeq")
    with pytest.raises(ParseError, match="CSeq"):
        _ = request.cseq
    request.headers.set("CSeq", "2 INVITE")
    assert request.cseq.seq == 2
    request.headers.set("Via", "nonsense")
    with pytest.raises(ParseError, match="Via"):
        _ = request.top_via
    request.headers.set("Content-Type", "Application/SDP ; charset=utf-8")
    assert request.content_type == "application/sdp"
    request.headers.remove("Content-Type")
    assert request.content_type is None
    request.headers.set("Max-Forwards", "256")
    with pytest.raises(ParseError, match="Max-Forwards"):
        _ = request.max_forwards
    for name in ("From", "To", "Call-ID"):
        request.headers.remove(name)
    for view in ("from_", "to", "call_id"):
        with pytest.raises(ParseError, match="Missing"):
            getattr(request, view)


# response_for


def test_response_for_copies_the_dialog_headers() -> None:
    request = _request(_replace(b"Via: ", b"Via: SIP/2.0/UDP proxy;branch=z9hG4bKp\r\nVia: "))
    response = response_for(request, 180, to_tag="a6c85cf", headers=[("Contact", "<sip:gw@h>")])
    assert response.status == 180 and response.reason == "Ringing"
    assert response.headers.get_all("Via") == request.headers.get_all("Via")
    assert len(response.via) == 2
    assert response.headers.get("From") == request.headers.get("From")
    assert response.headers.get("To") == "Bob <sip:bob@biloxi.com>;tag=a6c85cf"
    assert response.call_id == request.call_id
    assert response.cseq == request.cseq
    assert response.headers.get("Contact") == "<sip:gw@h>"
    assert "Max-Forwards" not in response.headers
    assert "Content-Type" not in response.headers
    assert response.body == b""


def test_response_for_never_tags_a_100_nor_replaces_a_tag() -> None:
    request = _request(_replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nTimestamp: 54\r\n"))
    trying = response_for(request, 100, to_tag="x")
    assert trying.to.tag is None
    assert trying.headers.get("Timestamp") == "54"  # RFC 3261 section 8.2.6.1
    assert "Timestamp" not in response_for(request, 200, to_tag="x").headers
    in_dialog = _request(_replace(b"To: Bob <sip:bob@biloxi.com>", b"To: <sip:bob@b>;tag=old"))
    assert response_for(in_dialog, 200, to_tag="new").to.tag == "old"


# check_request


def _status(data: bytes, **kwargs: object) -> int | None:
    try:
        check_request(_request(data), **kwargs)  # type: ignore[arg-type]
    except SipError as exc:
        return exc.status
    return None


def test_a_good_request_passes() -> None:
    assert _status(INVITE) is None
    assert _status(INVITE.replace(b"Max-Forwards: 70\r\n", b"")) is None  # tolerated
    assert _status(_replace(b"Max-Forwards: 70", b"Max-Forwards: 0")) is None


@pytest.mark.parametrize("name", [b"Via", b"From", b"To", b"Call-ID", b"CSeq"])
def test_missing_mandatory_header_is_400(name: bytes) -> None:
    lines = [line for line in INVITE.split(b"\r\n") if not line.startswith(name + b":")]
    assert _status(b"\r\n".join(lines)) == 400


@pytest.mark.parametrize(
    "extra",
    [
        b"From: <sip:x@y>;tag=2",
        b"Call-ID: other",
        b"CSeq: 2 INVITE",
        b"Max-Forwards: 1",
        b"To: <sip:c@d>",
        b"Content-Type: text/plain",
    ],
)
def test_repeated_single_valued_header_is_400(extra: bytes) -> None:
    assert _status(_replace(b"Contact:", extra + b"\r\nContact:")) == 400


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"CSeq: 314159 INVITE", b"CSeq: 314159 OPTIONS"),
        (b"CSeq: 314159 INVITE", b"CSeq: 2147483648 INVITE"),
        (b"sip:bob@biloxi.com SIP", b"sip:bob@biloxi.com?Route=x SIP"),
        (b"Call-ID: a84b4c76e66710@pc33.atlanta.com", b"Call-ID: a b"),
        (b"Content-Type: application/sdp\r\n", b""),
    ],
)
def test_inconsistent_request_is_400(old: bytes, new: bytes) -> None:
    assert _status(_replace(old, new)) == 400


def test_request_uri_scheme_other_than_sip_is_416() -> None:
    assert _status(_replace(b"INVITE sip:bob@biloxi.com", b"INVITE tel:+15551234")) == 416
    assert _status(_replace(b"INVITE sip:bob@biloxi.com", b"INVITE sips:bob@biloxi.com")) is None


def test_unknown_require_is_420_with_unsupported() -> None:
    data = _replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nRequire: 100rel, foo\r\n")
    with pytest.raises(SipError) as info:
        check_request(_request(data), supported=["100rel"])
    assert info.value.status == 420
    assert info.value.headers == [("Unsupported", "foo")]
    assert _status(data, supported=["100rel", "FOO"]) is None
    ack = data.replace(b"INVITE", b"ACK")
    assert _status(ack) is None  # an ACK cannot be refused


def test_unaccepted_body_is_415_with_accept() -> None:
    data = _replace(b"Content-Type: application/sdp", b"Content-Type: text/plain")
    with pytest.raises(SipError) as info:
        check_request(_request(data), accepted_content_types=["application/sdp", "text/html"])
    assert info.value.status == 415
    assert info.value.headers == [("Accept", "application/sdp, text/html")]
    assert _status(data, accepted_content_types=["Text/Plain"]) is None
    gzip = _replace(b"Contact:", b"Content-Encoding: gzip\r\nContact:")
    with pytest.raises(SipError) as info:
        check_request(_request(gzip))
    assert info.value.headers == [("Accept-Encoding", "identity")]


def test_methods_not_served_are_405_with_allow_or_501() -> None:
    served = ["INVITE", "BYE"]
    register = INVITE.replace(b"INVITE", b"REGISTER")
    with pytest.raises(SipError) as info:
        check_request(_request(register), methods=served)
    assert info.value.status == 405
    assert info.value.headers == [("Allow", "INVITE, BYE")]
    assert _status(INVITE.replace(b"INVITE", b"FROBNICATE"), methods=served) == 501
    assert _status(INVITE, methods=served) is None


# properties


@given(st.binary(max_size=300))
def test_parse_only_raises_sip_errors_on_arbitrary_bytes(data: bytes) -> None:
    try:
        message = parse(data)
    except SipError:
        return
    assert parse(bytes(message)) == message


@settings(max_examples=300)
@given(st.data())
def test_mutated_messages_only_raise_sip_errors_and_round_trip(data: st.DataObject) -> None:
    base = data.draw(st.sampled_from([INVITE, OK]))
    mutated = bytearray(base)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(mutated)))
        chunk = data.draw(
            st.sampled_from(
                [
                    b"",
                    b":",
                    b";",
                    b",",
                    b'"',
                    b"<",
                    b">",
                    b" ",
                    b"\r\n",
                    b"\r\n ",
                    b"\x00",
                    b"\xff",
                    b"\\",
                    b"=",
                    b"9",
                    b"@",
                    b"[",
                    b"/",
                ]
            )
        )
        cut = data.draw(st.integers(0, 3))
        mutated[pos : pos + cut] = chunk
    try:
        message = parse(bytes(mutated))
    except SipError:
        return
    assert parse(bytes(message)) == message
    try:
        if isinstance(message, Request):
            check_request(message)
        else:
            check_response(message)
        _ = (message.via, message.cseq, message.from_, message.to, message.call_id,
             message.contact, message.content_type)  # fmt: skip
    except SipError:
        pass


@pytest.mark.parametrize(
    ("value", "media_type"),
    [
        ("application/SDP", "application/sdp"),
        ("multipart/mixed ; boundary=x", "multipart/mixed"),
        ("text / plain", "text/plain"),
    ],
)
def test_content_type_media_type(value: str, media_type: str) -> None:
    request = _request()
    request.headers.set("c", value)
    assert request.content_type == media_type


@pytest.mark.parametrize("value", ["", "sdp", "a/b/c", "a/", "text/plain junk", "a b/c"])
def test_malformed_content_type_is_400(value: str) -> None:
    request = _request()
    request.headers.set("Content-Type", value)
    with pytest.raises(ParseError, match="Content-Type"):
        _ = request.content_type


def test_top_via_is_the_first_value_of_the_first_line() -> None:
    request = _request()
    request.headers.set("Via", "SIP/2.0/TLS a;branch=z9hG4bKa , SIP/2.0/UDP b;branch=z9hG4bKb")
    request.headers.add("Via", "SIP/2.0/UDP c")
    assert request.top_via.host == "a"
    assert [via.host for via in request.via] == ["a", "b", "c"]


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "data",
    [
        b"INVITE sip:a@b SIP/2.0\r\nX: " + b" \r\n " * 15000 + b"\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\r\nX: a\r\n b" + b" " * 60000 + b"\r\n\r\n",
        b"INVITE a" + b" a" * 30000 + b"\r\n\r\n",
    ],
)
def test_hostile_folding_and_spacing_parse_in_linear_time(data: bytes) -> None:
    try:
        parse(data)
    except SipError as exc:
        assert exc.status == 400


def test_response_for_answers_a_request_with_a_broken_to() -> None:
    broken = _request(_replace(b"To: Bob <sip:bob@biloxi.com>", b'To: "Mr. J. User <sip:j@x>'))
    with pytest.raises(ParseError):
        check_request(broken)
    answer = response_for(broken, 400, to_tag="t1")
    assert answer.headers.get("To") == '"Mr. J. User <sip:j@x>'
    assert parse(bytes(answer)) == answer
