"""Header names and typed views: Via, NameAddr, CSeq, parameter and list splitting."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.sip.errors import ParseError, SipError
from gateway.sip.headers import (
    COMPACT_FORMS,
    CSeq,
    NameAddr,
    Via,
    canonical_name,
    parse_params,
    parse_via_list,
    quote,
    split_header_list,
    unquote,
)


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("call-id", "Call-ID"),
        ("i", "Call-ID"),
        ("I", "Call-ID"),
        ("CSEQ", "CSeq"),
        ("WWW-authenticate", "WWW-Authenticate"),
        ("www-authenticate", "WWW-Authenticate"),
        ("v", "Via"),
        ("max-FORWARDS", "Max-Forwards"),
        ("x-my-header", "X-My-Header"),
        ("mime-version", "MIME-Version"),
        ("rack", "RAck"),
        ("k", "Supported"),
        ("l", "Content-Length"),
    ],
)
def test_canonical_name(name: str, canonical: str) -> None:
    assert canonical_name(name) == canonical


def test_every_compact_form_expands_to_a_long_name() -> None:
    assert len(COMPACT_FORMS) == 20
    for short, long_name in COMPACT_FORMS.items():
        assert canonical_name(short) == long_name
        assert canonical_name(short.upper()) == long_name
        assert canonical_name(long_name.lower()) == long_name


def test_split_header_list_respects_quotes_and_angle_brackets() -> None:
    value = '"Doe, John" <sip:a@b;x=1,2>;tag=1 , <sip:c@d>,sip:e@f'
    assert split_header_list(value) == [
        '"Doe, John" <sip:a@b;x=1,2>;tag=1',
        "<sip:c@d>",
        "sip:e@f",
    ]
    assert split_header_list('"a \\", b" <sip:x@y>') == ['"a \\", b" <sip:x@y>']
    assert split_header_list("INVITE,ACK , BYE,,") == ["INVITE", "ACK", "BYE"]
    assert split_header_list("  ") == []


@pytest.mark.parametrize("value", ['"unterminated, <sip:a@b>', "<sip:a@b, c"])
def test_split_header_list_refuses_unbalanced(value: str) -> None:
    with pytest.raises(ParseError):
        split_header_list(value)


def test_parse_params() -> None:
    assert parse_params(";lr;Transport=TCP ; q = 0.5") == {
        "lr": None,
        "transport": "TCP",
        "q": "0.5",
    }
    assert parse_params("tag=abc") == {"tag": "abc"}
    assert parse_params("") == {}
    assert parse_params(';x="a;b \\" c"') == {"x": '"a;b \\" c"'}
    assert unquote('"a;b \\" c"') == 'a;b " c'
    assert parse_params(";received=2001:db8::9;maddr=[::1]") == {
        "received": "2001:db8::9",
        "maddr": "[::1]",
    }


@pytest.mark.parametrize("text", [";;", ";a;;b", ";=x", ";a=", ';a="open', ";a b", ";a=b c"])
def test_parse_params_refuses_malformed(text: str) -> None:
    with pytest.raises(ParseError):
        parse_params(text)


def test_quote_escapes_what_qdtext_cannot_hold() -> None:
    assert quote('say "hi" \\ now') == '"say \\"hi\\" \\\\ now"'
    assert quote("a\x00b\tc") == '"a\\\x00b\tc"'
    assert quote("line\r\nbreak") == '"line  break"'
    assert unquote(quote('x "y" \\ z')) == 'x "y" \\ z'


def test_via_fields() -> None:
    via = Via.parse(
        "SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK776asdhds;rport;received=1.2.3.4"
    )
    assert via.transport == "UDP"
    assert via.host == "pc33.atlanta.com"
    assert via.port == 5066
    assert via.branch == "z9hG4bK776asdhds"
    assert via.received == "1.2.3.4"
    assert via.rport is True
    assert via.sent_by == "pc33.atlanta.com:5066"


def test_via_rport_value_and_absence() -> None:
    assert Via.parse("SIP/2.0/TCP h;rport=5070").rport == 5070
    assert Via.parse("SIP/2.0/TCP h").rport is None
    with pytest.raises(ParseError):
        _ = Via.parse("SIP/2.0/TCP h;rport=x").rport


def test_via_with_lws_everywhere_and_lowercase_transport() -> None:
    via = Via.parse("SIP  /   2.0 /udp    192.0.2.2 : 5060 ;  branch  =   z9hG4bK1")
    assert (via.transport, via.host, via.port, via.branch) == ("UDP", "192.0.2.2", 5060, "z9hG4bK1")


def test_via_ipv6_and_unknown_transport() -> None:
    via = Via.parse("SIP/2.0/UNKNOWN [2001:db8::9]:5061;branch=z9hG4bKx")
    assert via.transport == "UNKNOWN"
    assert via.host == "[2001:db8::9]"
    assert via.port == 5061
    assert str(via) == "SIP/2.0/UNKNOWN [2001:db8::9]:5061;branch=z9hG4bKx"


def test_via_list() -> None:
    vias = parse_via_list("SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/TCP b:5070")
    assert [(v.transport, v.host, v.port) for v in vias] == [
        ("UDP", "a.example.com", None),
        ("TCP", "b", 5070),
    ]


@pytest.mark.parametrize(
    "value",
    [
        "",
        "SIP/2.0/UDP",
        "SIP/2.0 UDP host",
        "SIP/3.0/UDP host",
        "HTTP/2.0/UDP host",
        "SIP/2.0/UDP host:99999",
        "SIP/2.0/UDP host;;",
        "SIP/2.0/UDP 192.0.2.15;;,;,,",
        "SIP/2.0/UDP host junk",
    ],
)
def test_malformed_via_is_400(value: str) -> None:
    with pytest.raises(ParseError):
        Via.parse(value)


def test_name_addr_with_quoted_display_and_escapes() -> None:
    addr = NameAddr.parse('"J Rosenberg \\\\\\""       <sip:jdrosen@example.com>  ;  tag = 98asjd8')
    assert addr.display == 'J Rosenberg \\"'
    assert addr.uri == "sip:jdrosen@example.com"
    assert addr.tag == "98asjd8"
    assert NameAddr.parse(str(addr)) == addr


def test_name_addr_token_display_without_space_before_bracket() -> None:
    addr = NameAddr.parse("caller<sip:caller@example.com>;tag=323")
    assert addr.display == "caller"
    assert addr.tag == "323"
    multi = NameAddr.parse("Bob  Smith <sip:bob@b.com>")
    assert multi.display == "Bob Smith"


def test_name_addr_without_display() -> None:
    addr = NameAddr.parse("<sip:bob@biloxi.com;transport=tcp>;tag=a6c85cf")
    assert addr.display is None
    assert addr.uri == "sip:bob@biloxi.com;transport=tcp"
    assert addr.params == {"tag": "a6c85cf"}
    assert str(addr) == "<sip:bob@biloxi.com;transport=tcp>;tag=a6c85cf"


def test_addr_spec_parameters_belong_to_the_header() -> None:
    # RFC 3261 section 20.10: in the addr-spec form, ";" parameters are header parameters.
    addr = NameAddr.parse("sip:+16505552222@ss1.example.net;user=phone;tag=9")
    assert addr.display is None
    assert addr.uri == "sip:+16505552222@ss1.example.net"
    assert addr.params == {"user": "phone", "tag": "9"}
    assert str(addr) == "<sip:+16505552222@ss1.example.net>;user=phone;tag=9"


def test_name_addr_keeps_other_schemes() -> None:
    assert NameAddr.parse("isbn:2983792873").uri == "isbn:2983792873"
    assert NameAddr.parse("<tel:+331234>;tag=x").uri == "tel:+331234"
    assert NameAddr.parse("<sip:a@[2001:db8::1]:5060>").sip_uri().host == "[2001:db8::1]"


@pytest.mark.parametrize(
    "value",
    [
        '"Mr. J. User <sip:j.user@example.com>',  # unterminated quote (RFC 4475 3.1.2.6)
        "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",  # non-token display (3.1.2.15)
        '"Watson, Thomas" < sip:t.watson@example.org >',  # spaces inside <> (3.1.2.14)
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",  # "?" needs <> (3.1.2.13)
        "<sip:a@b",
        "<>",
        "",
        "no-scheme",
        '"quoted" sip:a@b',
        "<sip:a@b> junk",
        "<sip:a@b>;;",
    ],
)
def test_malformed_name_addr_is_400(value: str) -> None:
    with pytest.raises(ParseError):
        NameAddr.parse(value)


def test_cseq() -> None:
    assert CSeq.parse("4711 INVITE") == CSeq(4711, "INVITE")
    assert CSeq.parse("0009\t  INVITE") == CSeq(9, "INVITE")
    assert str(CSeq(1, "BYE")) == "1 BYE"
    assert CSeq.parse(str(CSeq(4294967295, "ACK"))).seq == 4294967295


@pytest.mark.parametrize(
    "value", ["", "1", "INVITE", "1 INV ITE", "-1 INVITE", "4294967296 INVITE", "1.0 BYE"]
)
def test_malformed_cseq_is_400(value: str) -> None:
    with pytest.raises(ParseError):
        CSeq.parse(value)


@given(st.text(max_size=80))
def test_views_only_raise_sip_errors(text: str) -> None:
    for parse in (Via.parse, NameAddr.parse, CSeq.parse, parse_params, split_header_list):
        with contextlib.suppress(SipError):
            parse(text)


_token = st.from_regex(r"[A-Za-z0-9\-.!%*_+`'~]{1,10}", fullmatch=True)


@given(
    display=st.none()
    | st.text(min_size=1, max_size=20).filter(lambda s: "\r" not in s and "\n" not in s),
    user=st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True),
    params=st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), st.none() | _token),
)
def test_name_addr_round_trip(
    display: str | None, user: str, params: dict[str, str | None]
) -> None:
    addr = NameAddr(display, f"sip:{user}@example.com", params)
    assert NameAddr.parse(str(addr)) == addr


def test_lenient_where_real_peers_stray() -> None:
    assert NameAddr.parse("José Núñez <sip:jn@example.es>").display == "José Núñez"
    assert Via.parse("SIP/2.0/TCP media_1.internal:5060").host == "media_1.internal"


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "text",
    [
        (";a" + " " * 5) * 5000 + "x",  # took hours with overlapping whitespace quantifiers
        (";a = b ") * 5000 + "x",
        ";a" + " " * 30000 + "x",
        ';a="' + "\\\\" * 30000,
    ],
)
def test_parameter_parsing_cannot_be_made_to_backtrack(text: str) -> None:
    with pytest.raises(ParseError):
        parse_params(text)
    with pytest.raises(ParseError):
        Via.parse("SIP/2.0/UDP host" + text)
