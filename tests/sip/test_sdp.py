"""SDP parsing and serialising (RFC 8866) and audio offer/answer (RFC 3264).

The samples are written by hand after what common peers send: Kamailio passes the far end's
SDP through, so the answers below are FreeSWITCH, Asterisk, baresip and SIPp bodies.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.sip.errors import ParseError, SipError
from gateway.sip.sdp import (
    AudioSession,
    MediaDescription,
    NoCommonCodec,
    Origin,
    SessionDescription,
    make_answer,
    make_offer,
    negotiate,
)


def sdp(*lines: str, eol: str = "\r\n") -> bytes:
    return "".join(line + eol for line in lines).encode()


FREESWITCH_ANSWER = sdp(
    "v=0",
    "o=FreeSWITCH 1700000000 1700000001 IN IP4 203.0.113.10",
    "s=FreeSWITCH",
    "c=IN IP4 203.0.113.10",
    "t=0 0",
    "m=audio 23456 RTP/AVP 8 101",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=sendrecv",
    "a=rtcp:23457 IN IP4 203.0.113.10",
)

ASTERISK_ANSWER = sdp(
    "v=0",
    "o=- 1234 1235 IN IP4 198.51.100.7",
    "s=Asterisk",
    "c=IN IP4 198.51.100.7",
    "t=0 0",
    "m=audio 10000 RTP/AVP 0 100",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:100 telephone-event/8000",
    "a=fmtp:100 0-16",
    "a=ptime:20",
    "a=maxptime:150",
    "a=sendrecv",
)

# baresip: IPv6, dynamic telephone-event 96 listed first, ICE and rtcp-mux attributes.
BARESIP_OFFER = sdp(
    "v=0",
    "o=- 3905473155 1 IN IP6 2001:db8::5",
    "s=-",
    "c=IN IP6 2001:db8::5",
    "t=0 0",
    "a=tool:baresip 3.10.1",
    "m=audio 42000 RTP/AVP 96 9 0 8",
    "b=AS:64",
    "a=rtpmap:96 telephone-event/8000",
    "a=fmtp:96 0-15",
    "a=rtpmap:9 G722/8000",
    "a=rtcp-mux",
    "a=ice-ufrag:Xo3k",
    "a=ice-pwd:2aGx9bmd0rJ4qPIuAr3Eso",
    "a=candidate:1 1 UDP 2130706431 2001:db8::5 42000 typ host",
    "a=sendrecv",
    "a=label:1",
    eol="\n",
)

# SIPp's uac_pcap-style offer: PCMU only, telephone-event 101, no rtpmap for 0.
SIPP_OFFER = sdp(
    "v=0",
    "o=user1 53655765 2353687637 IN IP4 192.0.2.20",
    "s=-",
    "c=IN IP4 192.0.2.20",
    "t=0 0",
    "m=audio 6000 RTP/AVP 0 101",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-11,16",
)

VIDEO_OFFER = sdp(
    "v=0",
    "o=alice 2890844526 2890844526 IN IP4 192.0.2.30",
    "s=-",
    "c=IN IP4 192.0.2.30",
    "t=0 0",
    "m=video 51372 RTP/AVP 31 97",
    "a=rtpmap:31 H261/90000",
    "a=rtpmap:97 H264/90000",
    "m=audio 49170 RTP/AVP 8 0 97",
    "a=rtpmap:97 telephone-event/8000",
    "m=audio 49180 RTP/AVP 0",
)


# --- parsing ----------------------------------------------------------------------------------


def test_parse_freeswitch_answer() -> None:
    desc = SessionDescription.parse(FREESWITCH_ANSWER)
    assert desc.origin == Origin("FreeSWITCH", 1700000000, 1700000001, "IN", "IP4", "203.0.113.10")
    assert (desc.origin.session_id, desc.origin.version) == (1700000000, 1700000001)
    assert desc.name == "FreeSWITCH"
    assert desc.connection == "203.0.113.10"
    assert desc.timing == [(0, 0)]
    [audio] = desc.media
    assert (audio.media, audio.port, audio.proto, audio.formats) == (
        "audio",
        23456,
        "RTP/AVP",
        ["8", "101"],
    )
    assert audio.rtpmap()["101"] == ("telephone-event", 8000)
    assert audio.attribute("rtcp") == "23457 IN IP4 203.0.113.10"
    assert audio.attribute("sendrecv") == ""
    assert audio.attribute("rtcp-mux") is None


def test_parse_lf_only_ipv6_and_unknown_attributes_kept() -> None:
    desc = SessionDescription.parse(BARESIP_OFFER)
    assert desc.origin.addrtype == "IP6"
    assert desc.connection == "2001:db8::5"
    assert desc.attribute("tool") == "baresip 3.10.1"
    [audio] = desc.media
    assert audio.bandwidth == [("AS", 64)]
    assert ("rtcp-mux", None) in audio.attributes
    assert ("ice-ufrag", "Xo3k") in audio.attributes
    assert audio.direction() == "sendrecv"


def test_parse_str_and_bytes_alike() -> None:
    assert SessionDescription.parse(ASTERISK_ANSWER.decode()) == SessionDescription.parse(
        ASTERISK_ANSWER
    )


def test_parse_keeps_unknown_lines_and_ignores_garbage() -> None:
    desc = SessionDescription.parse(
        sdp(
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.1",
            "s=-",
            "i=A call",
            "e=noc@example.com",
            "c=IN IP4 192.0.2.1",
            "t=0 0",
            "r=604800 3600 0 90000",
            "y=1234567890",
            "this is not an sdp line",
            "",
            "m=audio 4000 RTP/AVP 0",
            "i=voice",
            "k=prompt",
            "x-custom=1",
        )
    )
    assert desc.other == [
        ("i", "A call"),
        ("e", "noc@example.com"),
        ("r", "604800 3600 0 90000"),
        ("y", "1234567890"),
    ]
    assert desc.media[0].other == [("i", "voice"), ("k", "prompt")]
    again = SessionDescription.parse(bytes(desc))
    assert again == desc


def test_parse_tolerates_missing_t_and_empty_s() -> None:
    desc = SessionDescription.parse(
        sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=", "m=audio 1 RTP/AVP 0")
    )
    assert desc.name == ""
    assert desc.timing == [(0, 0)]


def test_media_level_connection_and_port_count() -> None:
    desc = SessionDescription.parse(
        sdp(
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.1",
            "s=-",
            "t=0 0",
            "m=audio 4000/2 RTP/AVP 0",
            "c=IN IP4 192.0.2.99",
        )
    )
    audio = desc.media[0]
    assert desc.connection is None
    assert audio.connection == "192.0.2.99"
    assert audio.port_count == 2
    assert b"m=audio 4000/2 RTP/AVP 0\r\nc=IN IP4 192.0.2.99\r\n" in bytes(desc)


@pytest.mark.parametrize(
    "body",
    [
        FREESWITCH_ANSWER,
        ASTERISK_ANSWER,
        BARESIP_OFFER,
        SIPP_OFFER,
        VIDEO_OFFER,
    ],
)
def test_round_trip(body: bytes) -> None:
    desc = SessionDescription.parse(body)
    text = bytes(desc)
    assert text.endswith(b"\r\n")
    assert b"\n" not in text.replace(b"\r\n", b"")
    assert SessionDescription.parse(text) == desc
    if b"\r\n" in body:
        # These samples are written in RFC 8866 order, so serialising gives them back exactly.
        assert text == body


@pytest.mark.parametrize(
    ("body", "what", "status"),
    [
        (b"", "v=0", 400),
        (sdp("v=1", "o=- 1 1 IN IP4 a", "s=-"), "v=0", 400),
        (sdp("o=- 1 1 IN IP4 a", "v=0", "s=-"), "v=0", 400),
        (sdp("v=0", "s=-", "t=0 0"), "o=", 400),
        (sdp("v=0", "o=- 1 IN IP4 a", "s=-"), "six fields", 400),
        (sdp("v=0", "o=- x 1 IN IP4 a", "s=-"), "sess-id", 400),
        (sdp("v=0", "o=- 1 -1 IN IP4 a", "s=-"), "sess-version", 400),
        (sdp("v=0", "o=- 1 1 IN IP4 a", "s=-", "c=IN IP4"), "three fields", 400),
        (sdp("v=0", "o=- 1 1 IN IP4 a", "s=-", "c=ATM NSAP 47.0005"), "IN IP4/IP6", 488),
        (sdp("v=0", "o=- 1 1 IN IP4 a", "s=-", "t=now"), "t= line", 400),
        (sdp("v=0", "o=- 1 1 IN IP4 a", "s=-", "m=audio"), "m= line", 400),
        (sdp("v=0", "o=- 1 1 IN IP4 a", "s=-", "m=audio 70000 RTP/AVP 0"), "bad port", 400),
        (sdp("v=0", "o=- 1 1 IN IP4 a", "s=-", "m=audio x RTP/AVP 0"), "bad port", 400),
    ],
)
def test_malformed_mandatory_lines(body: bytes, what: str, status: int) -> None:
    with pytest.raises(ParseError, match=what) as info:
        SessionDescription.parse(body)
    assert info.value.status == status


def test_malformed_bandwidth_is_kept_verbatim_not_fatal() -> None:
    desc = SessionDescription.parse(
        sdp(
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.1",
            "s=-",
            "b=AS:lots",
            "t=0 0",
            "m=audio 1 RTP/AVP 0",
            "b=TIAS",
        )
    )
    assert desc.bandwidth == []
    assert desc.other == [("b", "AS:lots")]
    assert desc.media[0].other == [("b", "TIAS")]


LINE = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.1",
            "o=- x y IN IP4",
            "c=IN IP4 192.0.2.1",
            "c=IN IP6 ::1",
            "c=IN",
            "t=0 0",
            "t=\u0661 0",
            "m=audio 4000 RTP/AVP 0 8 101",
            "m=audio 0 RTP/AVP",
            "m=audio \u0664\u0660\u0660\u0660 RTP/AVP 0",
            "m=video 5000/2 RTP/AVP 31",
            "a=rtpmap:101 telephone-event/8000",
            "a=rtpmap:0 PCMU/\u00b2",
            "a=rtpmap:",
            "a=ptime:nan",
            "a=ptime:1e400",
            "a=sendonly",
            "b=AS:",
            "b=:12",
        ]
    ),
)


@given(st.text())
def test_parse_arbitrary_text_raises_only_parse_error(text: str) -> None:
    with contextlib.suppress(ParseError):
        SessionDescription.parse(text)


@given(st.lists(LINE, max_size=12), st.sampled_from(["\r\n", "\n"]))
def test_parse_and_negotiate_plausible_lines_raise_only_sip_errors(
    lines: list[str], eol: str
) -> None:
    text = eol.join(["v=0", "o=- 1 1 IN IP4 192.0.2.1", *lines])
    try:
        desc = SessionDescription.parse(text)
    except ParseError:
        return
    # Serialising is idempotent: what we write, we read back to the same bytes.
    assert bytes(SessionDescription.parse(bytes(desc))) == bytes(desc)
    with contextlib.suppress(SipError):
        negotiate(desc)
    with contextlib.suppress(SipError):
        make_answer(desc, address="192.0.2.9", port=4000, session_id=1, version=1)


@given(st.binary())
def test_parse_arbitrary_bytes_raises_only_parse_error(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        SessionDescription.parse(data)


# --- offers -----------------------------------------------------------------------------------


def test_make_offer_default() -> None:
    offer = make_offer(address="192.0.2.5", port=30000, session_id=42, version=1)
    assert bytes(offer) == sdp(
        "v=0",
        "o=gateway 42 1 IN IP4 192.0.2.5",
        "s=-",
        "c=IN IP4 192.0.2.5",
        "t=0 0",
        "m=audio 30000 RTP/AVP 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendrecv",
    )


def test_make_offer_ipv6_pcma_only_other_event_pt_and_hold() -> None:
    offer = make_offer(
        address="2001:db8::1",
        port=30002,
        session_id=7,
        version=3,
        codecs=("PCMA",),
        telephone_event_pt=96,
        direction="sendonly",
        username="robo",
    )
    text = bytes(offer)
    assert b"o=robo 7 3 IN IP6 2001:db8::1\r\n" in text
    assert b"c=IN IP6 2001:db8::1\r\n" in text
    assert b"m=audio 30002 RTP/AVP 8 96\r\n" in text
    assert b"a=fmtp:96 0-16\r\n" in text
    assert b"a=sendonly\r\n" in text
    assert b"PCMU" not in text


def test_make_offer_without_telephone_event() -> None:
    offer = make_offer(
        address="192.0.2.5", port=1, session_id=1, version=1, telephone_event_pt=None
    )
    assert offer.media[0].formats == ["0", "8"]
    assert b"telephone-event" not in bytes(offer)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"codecs": ("G729",)},
        {"codecs": ()},
        {"direction": "both"},
        {"telephone_event_pt": 8},
    ],
)
def test_make_offer_rejects_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        make_offer(address="192.0.2.5", port=1, session_id=1, version=1, **kwargs)  # type: ignore[arg-type]


# --- negotiating the answer to our offer ------------------------------------------------------


def test_negotiate_freeswitch_pcma_only() -> None:
    assert negotiate(SessionDescription.parse(FREESWITCH_ANSWER)) == AudioSession(
        remote_address="203.0.113.10",
        remote_port=23456,
        codec="PCMA",
        payload_type=8,
        clock_rate=8000,
        telephone_event_pt=101,
        direction="sendrecv",
        on_hold=False,
        ptime=20,
    )


def test_negotiate_asterisk_static_pt_and_event_100() -> None:
    session = negotiate(SessionDescription.parse(ASTERISK_ANSWER))
    assert (session.codec, session.payload_type, session.telephone_event_pt) == ("PCMU", 0, 100)


def test_negotiate_dynamic_pcmu_without_event_and_media_level_connection() -> None:
    answer = sdp(
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "t=0 0",
        "m=audio 5004 RTP/AVP 98",
        "c=IN IP4 192.0.2.77",
        "a=rtpmap:98 pcmu/8000",
        "a=ptime:30",
    )
    session = negotiate(SessionDescription.parse(answer))
    assert session.remote_address == "192.0.2.77"
    assert (session.codec, session.payload_type, session.telephone_event_pt) == ("PCMU", 98, None)
    assert session.ptime == 30


def test_negotiate_picks_the_answers_first_supported_codec() -> None:
    answer = SessionDescription.parse(BARESIP_OFFER)
    session = negotiate(answer)
    assert (session.codec, session.telephone_event_pt) == ("PCMU", 96)
    assert session.remote_address == "2001:db8::5"
    assert negotiate(answer, codecs=("PCMA",)).codec == "PCMA"


def test_negotiate_ignores_telephone_event_at_another_rate() -> None:
    answer = sdp(
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "t=0 0",
        "m=audio 5004 RTP/AVP 0 110 101",
        "a=rtpmap:110 telephone-event/48000",
        "a=rtpmap:101 telephone-event/8000",
    )
    assert negotiate(SessionDescription.parse(answer)).telephone_event_pt == 101


@pytest.mark.parametrize(
    ("direction_line", "connection", "direction", "on_hold"),
    [
        ("a=sendonly", "192.0.2.1", "sendonly", True),
        ("a=inactive", "192.0.2.1", "inactive", True),
        ("a=recvonly", "192.0.2.1", "recvonly", False),
        ("a=sendrecv", "0.0.0.0", "sendrecv", True),
    ],
)
def test_negotiate_hold(
    direction_line: str, connection: str, direction: str, on_hold: bool
) -> None:
    answer = sdp(
        "v=0",
        "o=- 1 2 IN IP4 192.0.2.1",
        "s=-",
        f"c=IN IP4 {connection}",
        "t=0 0",
        "m=audio 5004 RTP/AVP 0",
        direction_line,
    )
    session = negotiate(SessionDescription.parse(answer))
    assert (session.direction, session.on_hold) == (direction, on_hold)


def test_negotiate_session_level_direction_is_inherited() -> None:
    answer = sdp(
        "v=0",
        "o=- 1 2 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "t=0 0",
        "a=inactive",
        "m=audio 5004 RTP/AVP 0",
    )
    assert negotiate(SessionDescription.parse(answer)).direction == "inactive"


@pytest.mark.parametrize(
    "media_lines",
    [
        ("m=audio 0 RTP/AVP 0",),
        ("m=video 5000 RTP/AVP 31",),
        ("m=audio 5004 RTP/AVP 18 9", "a=rtpmap:18 G729/8000"),
        ("m=audio 5004 RTP/SAVP 0",),
        ("m=audio 5004 RTP/AVP 97", "a=rtpmap:97 PCMU/16000"),
    ],
)
def test_negotiate_no_common_codec_is_488(media_lines: tuple[str, ...]) -> None:
    answer = sdp(
        "v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0", *media_lines
    )
    with pytest.raises(NoCommonCodec) as info:
        negotiate(SessionDescription.parse(answer))
    error = info.value
    assert isinstance(error, SipError)
    assert error.status == 488
    assert error.reason == "Not Acceptable Here"
    assert error.reason_header == 'SIP;cause=488;text="Not Acceptable Here"'
    assert error.headers[0][0] == "Warning"


def test_negotiate_without_connection_is_a_parse_error() -> None:
    answer = sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "t=0 0", "m=audio 5004 RTP/AVP 0")
    with pytest.raises(ParseError, match="c= line"):
        negotiate(SessionDescription.parse(answer))


def test_offer_answer_with_ourselves() -> None:
    offer = make_offer(address="192.0.2.5", port=30000, session_id=1, version=1)
    answer, inbound = make_answer(
        SessionDescription.parse(bytes(offer)),
        address="192.0.2.6",
        port=40000,
        session_id=2,
        version=1,
    )
    assert inbound.remote_address == "192.0.2.5"
    assert inbound.codec == "PCMU"
    outbound = negotiate(SessionDescription.parse(bytes(answer)))
    assert (outbound.remote_address, outbound.remote_port) == ("192.0.2.6", 40000)
    assert (outbound.codec, outbound.telephone_event_pt, outbound.on_hold) == ("PCMU", 101, False)


# --- answering a remote offer -----------------------------------------------------------------


def test_make_answer_to_sipp_offer() -> None:
    answer, session = make_answer(
        SessionDescription.parse(SIPP_OFFER),
        address="192.0.2.9",
        port=4000,
        session_id=5,
        version=1,
    )
    assert bytes(answer) == sdp(
        "v=0",
        "o=gateway 5 1 IN IP4 192.0.2.9",
        "s=-",
        "c=IN IP4 192.0.2.9",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-11,16",
        "a=ptime:20",
        "a=sendrecv",
    )
    assert session == AudioSession("192.0.2.20", 6000, "PCMU", 0, 8000, 101, "sendrecv", False, 20)


def test_make_answer_keeps_offer_order_and_rejects_other_streams() -> None:
    answer, session = make_answer(
        SessionDescription.parse(VIDEO_OFFER),
        address="192.0.2.9",
        port=4000,
        session_id=5,
        version=1,
    )
    assert [(m.media, m.port) for m in answer.media] == [
        ("video", 0),
        ("audio", 4000),
        ("audio", 0),
    ]
    assert answer.media[0].formats == ["31"]
    audio = answer.media[1]
    # The offer's order of preference: PCMA before PCMU; telephone-event at the offer's 97.
    assert audio.formats == ["8", "97"]
    assert (session.codec, session.telephone_event_pt) == ("PCMA", 97)
    assert ("fmtp", "97 0-16") in audio.attributes


def test_make_answer_with_our_codec_subset() -> None:
    _, session = make_answer(
        SessionDescription.parse(VIDEO_OFFER),
        address="192.0.2.9",
        port=4000,
        session_id=5,
        version=1,
        codecs=("PCMU",),
    )
    assert (session.codec, session.payload_type) == ("PCMU", 0)


def test_make_answer_ipv6_dynamic_event() -> None:
    answer, session = make_answer(
        SessionDescription.parse(BARESIP_OFFER),
        address="2001:db8::9",
        port=4000,
        session_id=1,
        version=1,
    )
    assert b"c=IN IP6 2001:db8::9\r\n" in bytes(answer)
    assert answer.media[0].formats == ["0", "96"]
    assert ("fmtp", "96 0-15") in answer.media[0].attributes
    assert session.remote_address == "2001:db8::5"


@pytest.mark.parametrize(
    ("offered", "ours", "answered", "on_hold"),
    [
        ("sendrecv", None, "sendrecv", False),
        ("sendonly", None, "recvonly", True),
        ("recvonly", None, "sendonly", False),
        ("inactive", None, "inactive", True),
        ("sendrecv", "sendonly", "sendonly", False),
        ("sendonly", "sendonly", "inactive", True),
        ("recvonly", "inactive", "inactive", False),
    ],
)
def test_make_answer_mirrors_direction(
    offered: str, ours: str | None, answered: str, on_hold: bool
) -> None:
    """RFC 3264 section 6.1, and a re-INVITE putting us on hold (section 8.4)."""
    offer = sdp(
        "v=0",
        "o=- 1 2 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "t=0 0",
        "m=audio 5004 RTP/AVP 8",
        f"a={offered}",
    )
    answer, session = make_answer(
        SessionDescription.parse(offer),
        address="192.0.2.9",
        port=4000,
        session_id=1,
        version=2,
        direction=ours,
    )
    assert answer.media[0].direction() == answered
    assert (session.direction, session.on_hold) == (offered, on_hold)


def test_make_answer_to_rfc2543_hold() -> None:
    offer = sdp(
        "v=0",
        "o=- 1 3 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 0.0.0.0",
        "t=0 0",
        "m=audio 5004 RTP/AVP 0",
    )
    _, session = make_answer(
        SessionDescription.parse(offer), address="192.0.2.9", port=1, session_id=1, version=3
    )
    assert session.on_hold
    assert session.remote_address == "0.0.0.0"


@pytest.mark.parametrize(
    "media_lines",
    [
        ("m=video 5000 RTP/AVP 31",),
        ("m=audio 5004 RTP/AVP 18", "a=rtpmap:18 G729/8000"),
        ("m=audio 0 RTP/AVP 0",),
        ("m=audio 5004 RTP/SAVP 0", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x"),
    ],
)
def test_make_answer_without_usable_audio_is_488(media_lines: tuple[str, ...]) -> None:
    offer = sdp(
        "v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0", *media_lines
    )
    with pytest.raises(NoCommonCodec) as info:
        make_answer(
            SessionDescription.parse(offer), address="192.0.2.9", port=1, session_id=1, version=1
        )
    assert info.value.status == 488


def test_make_answer_accepts_a_later_audio_stream_after_an_unusable_one() -> None:
    offer = sdp(
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "t=0 0",
        "m=audio 5004 RTP/SAVP 0",
        "m=audio 5006 RTP/AVP 0",
    )
    answer, session = make_answer(
        SessionDescription.parse(offer), address="192.0.2.9", port=4000, session_id=1, version=1
    )
    assert [(m.proto, m.port) for m in answer.media] == [("RTP/SAVP", 0), ("RTP/AVP", 4000)]
    assert session.remote_port == 5006


def test_media_description_defaults() -> None:
    media = MediaDescription("audio", 4000, "RTP/AVP", ["0"])
    assert media.rtpmap()["0"] == ("PCMU", 8000)
    assert media.direction("inactive") == "inactive"
    assert media.lines() == ["m=audio 4000 RTP/AVP 0"]


def test_rtpmap_with_tab_and_channels() -> None:
    answer = sdp(
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "t=0 0",
        "m=audio 5004 RTP/AVP 97 120",
        "a=rtpmap:97\tPCMA/8000/1",
        "a=rtpmap:120 TELEPHONE-EVENT/8000",
    )
    session = negotiate(SessionDescription.parse(answer))
    assert (session.codec, session.payload_type, session.telephone_event_pt) == ("PCMA", 97, 120)


def test_make_answer_states_our_ptime_and_reports_theirs() -> None:
    offer = sdp(
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "t=0 0",
        "m=audio 5004 RTP/AVP 0",
        "a=ptime:30",
    )
    answer, session = make_answer(
        SessionDescription.parse(offer), address="192.0.2.9", port=1, session_id=1, version=1
    )
    assert answer.media[0].attribute("ptime") == "20"
    assert session.ptime == 30


@pytest.mark.parametrize("value", ["nan", "1e400", "5", "abc", ""])
def test_unusable_ptime_falls_back_to_20(value: str) -> None:
    answer = sdp(
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "t=0 0",
        "m=audio 5004 RTP/AVP 0",
        f"a=ptime:{value}",
    )
    assert negotiate(SessionDescription.parse(answer)).ptime == 20
