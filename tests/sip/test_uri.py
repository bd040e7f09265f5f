"""SIP URIs: RFC 3261 section 19.1 examples, IPv6, escapes, and what is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.sip.errors import ParseError, SipError, UnsupportedURIScheme
from gateway.sip.uri import SipURI, uri_scheme


def test_full_uri_fields() -> None:
    uri = SipURI.parse("sips:alice:secretword@atlanta.com:5061;transport=TCP;lr?subject=project")
    assert uri.scheme == "sips"
    assert uri.user == "alice"
    assert uri.password == "secretword"
    assert uri.host == "atlanta.com"
    assert uri.port == 5061
    assert uri.params == {"transport": "TCP", "lr": None}
    assert uri.headers == {"subject": "project"}
    assert uri.transport == "tcp"


def test_host_only() -> None:
    uri = SipURI.parse("sip:atlanta.com")
    assert (uri.user, uri.password, uri.host, uri.port) == (None, None, "atlanta.com", None)
    assert uri.params == {}
    assert uri.transport is None
    assert uri.default_port == 5060
    assert SipURI.parse("sips:atlanta.com").default_port == 5061


def test_scheme_and_param_names_are_case_insensitive_values_keep_case() -> None:
    uri = SipURI.parse("SIP:Bob@Biloxi.com;Maddr=239.255.255.1;User=Phone;Tag=AbC")
    assert uri.scheme == "sip"
    assert uri.user == "Bob"
    assert uri.host == "Biloxi.com"
    assert uri.params == {"maddr": "239.255.255.1", "user": "Phone", "tag": "AbC"}


def test_ipv6_reference_keeps_brackets() -> None:
    uri = SipURI.parse("sip:[2001:db8::10]:5070;transport=udp")
    assert uri.host == "[2001:db8::10]"
    assert uri.host_address == "2001:db8::10"
    assert uri.port == 5070
    assert str(uri) == "sip:[2001:db8::10]:5070;transport=udp"
    assert SipURI.parse("sip:user@[::1]").host == "[::1]"


def test_telephone_subscriber_and_escapes_are_kept_as_written() -> None:
    uri = SipURI.parse("sip:+1-212-555-1212:1234@gateway.com;user=phone")
    assert uri.user == "+1-212-555-1212"
    assert uri.password == "1234"
    escaped = SipURI.parse("sip:sips%3Auser%40example.com@example.net")
    assert escaped.user == "sips%3Auser%40example.com"
    assert str(escaped) == "sip:sips%3Auser%40example.com@example.net"


def test_user_part_may_hold_semicolons_and_question_marks() -> None:
    # RFC 4475 section 3.1.1.9 and 3.1.1.2: user-unreserved includes ";" "?" "/" ...
    uri = SipURI.parse("sip:user;par=u%40example.net@example.com")
    assert uri.user == "user;par=u%40example.net"
    assert uri.host == "example.com"
    assert uri.params == {}
    weird = SipURI.parse(
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too."
        "(doesn't-it)@example.com"
    )
    assert weird.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert weird.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"


@pytest.mark.parametrize(
    "text",
    [
        "sip:alice@atlanta.com",
        "sip:alice:secretword@atlanta.com;transport=tcp",
        "sips:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:+1-212-555-1212:1234@gateway.com;user=phone",
        "sip:alice@192.0.2.4:5060;lr;maddr=239.255.255.1;ttl=15",
        "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
        "sip:[2001:db8::10]",
        "sip:user@example.com?Route=%3Csip:example.com%3E",
        "sip:host.example.com.",
    ],
)
def test_format_gives_back_the_text(text: str) -> None:
    assert str(SipURI.parse(text)) == text


@pytest.mark.parametrize(
    "text", ["tel:+358-555-1234567", "http://www.example.com", "soap.beep://x"]
)
def test_other_schemes_are_416(text: str) -> None:
    with pytest.raises(UnsupportedURIScheme) as info:
        SipURI.parse(text)
    assert info.value.status == 416


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sip",
        "sip:",
        "sip:user@",
        "sip:user@host:port",
        "sip:host:99999",
        "sip:host:123456",
        "sip:us er@host",
        "sip:host;;lr",
        "sip:host;=x",
        "sip:host?a",
        "sip:[2001:db8::1",
        "sip:host name",
        "sip:user@host>",
        "<sip:user@host>",
        "1sip:host",
    ],
)
def test_malformed_uris_are_400(text: str) -> None:
    with pytest.raises(ParseError) as info:
        SipURI.parse(text)
    assert info.value.status == 400


def test_uri_scheme_of_any_absolute_uri() -> None:
    assert uri_scheme("SIPS:a@b") == "sips"
    assert uri_scheme("soap.beep://192.0.2.103:3002") == "soap.beep"
    assert uri_scheme("not a uri") is None


_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_paramchar = st.from_regex(r"[A-Za-z0-9\-_.!~*'()\[\]/:&+$]{1,8}", fullmatch=True)


@given(
    scheme=st.sampled_from(["sip", "sips"]),
    user=st.none() | st.from_regex(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/]{1,12}", fullmatch=True),
    host=st.lists(_label, min_size=1, max_size=4).map(".".join),
    port=st.none() | st.integers(0, 65535),
    params=st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True), st.none() | _paramchar
    ),
)
def test_round_trip_of_generated_uris(
    scheme: str, user: str | None, host: str, port: int | None, params: dict[str, str | None]
) -> None:
    uri = SipURI(scheme, user, None, host, port, params)
    assert SipURI.parse(str(uri)) == uri


@given(st.text(max_size=60))
def test_parse_only_raises_sip_errors_and_what_parses_formats_back(text: str) -> None:
    try:
        uri = SipURI.parse(text)
    except SipError:
        return
    assert SipURI.parse(str(uri)) == uri


def test_underscore_in_host_labels_is_tolerated() -> None:
    assert SipURI.parse("sip:gw@media_1.internal:5070").host == "media_1.internal"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
        ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
        (
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
        ),
        (
            "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
        ),
        ("sip:[2001:db8::1]", "sip:[2001:DB8:0::1]"),
        ("sip:a%3bx@b", "sip:a%3Bx@b"),
    ],
)
def test_equivalent_uris_of_rfc3261_section_19_1_4(a: str, b: str) -> None:
    assert SipURI.parse(a).equivalent(SipURI.parse(b))
    assert SipURI.parse(b).equivalent(SipURI.parse(a))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
        ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
        ("sip:a@b;maddr=1.2.3.4", "sip:a@b"),
        ("sip:a@b;lr", "sip:a@b;lr=on"),
        ("sip:a%3Bx@b", "sip:a;x@b"),  # an escaped reserved character is not the character
        ("sips:a@b", "sip:a@b"),
    ],
)
def test_different_uris_of_rfc3261_section_19_1_4(a: str, b: str) -> None:
    assert not SipURI.parse(a).equivalent(SipURI.parse(b))
    assert not SipURI.parse(b).equivalent(SipURI.parse(a))
