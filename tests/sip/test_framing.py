"""StreamFramer: Content-Length framing over TCP/TLS, keep-alives, bounded buffers."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.sip.errors import MessageTooLarge, ParseError, SipError
from gateway.sip.framing import StreamFramer
from gateway.sip.message import parse

BODY = b"v=0\r\n\r\nnot a header end\r\n"


def _message(cseq: int, body: bytes = b"", length: bytes | None = None) -> bytes:
    length = str(len(body)).encode() if length is None else length
    return (
        b"OPTIONS sip:bob@biloxi.com SIP/2.0\r\n"
        b"Via: SIP/2.0/TCP pc33.atlanta.com;branch=z9hG4bK" + str(cseq).encode() + b"\r\n"
        b"From: <sip:alice@atlanta.com>;tag=1\r\nTo: <sip:bob@biloxi.com>\r\nCall-ID: c1\r\n"
        b"CSeq: " + str(cseq).encode() + b" OPTIONS\r\n"
        b"Content-Length: " + length + b"\r\n\r\n" + body
    )


A = _message(1, BODY)
B = _message(2)
C = _message(3, b"x" * 100)


def _feed_all(framer: StreamFramer, chunks: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for chunk in chunks:
        out += framer.feed(chunk)
    return out


def test_one_message_whole() -> None:
    assert StreamFramer().feed(A) == [A]


def test_several_messages_in_one_read() -> None:
    assert StreamFramer().feed(A + B + C) == [A, B, C]


def test_one_byte_at_a_time() -> None:
    data = A + B + C
    framer = StreamFramer()
    assert _feed_all(framer, [data[i : i + 1] for i in range(len(data))]) == [A, B, C]


def test_a_body_holding_crlfcrlf_is_cut_by_content_length() -> None:
    framer = StreamFramer()
    assert framer.feed(A[:-5]) == []
    [message] = framer.feed(A[-5:])
    assert parse(message).body == BODY


def test_compact_and_folded_content_length() -> None:
    compact = A.replace(b"Content-Length: ", b"l :")
    assert StreamFramer().feed(compact) == [compact]
    folded = A.replace(b"Content-Length: ", b"content-LENGTH:\r\n   ")
    assert StreamFramer().feed(folded) == [folded]
    assert parse(folded).body == BODY


def test_repeated_identical_content_length_is_accepted() -> None:
    doubled = A.replace(b"Content-Length", b"l: 25\r\nContent-Length")
    assert StreamFramer().feed(doubled) == [doubled]


@given(st.lists(st.integers(0, len(A + B + C)), max_size=8))
def test_any_chunking_gives_the_same_messages(cuts: list[int]) -> None:
    data = A + B + C
    bounds = [0, *sorted(cuts), len(data)]
    chunks = [data[i:j] for i, j in itertools.pairwise(bounds)]
    assert _feed_all(StreamFramer(), chunks) == [A, B, C]


def test_double_crlf_pings_are_counted_and_bare_crlfs_skipped() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n") == []
    assert framer.pings == 1
    assert framer.feed(b"\r\n" + A + b"\r\n\r\n\r\n\r\n" + B) == [A, B]
    assert framer.pings == 3
    assert framer.take_pings() == 3
    assert framer.take_pings() == 0
    assert framer.pings == 3


def test_a_ping_split_over_reads_is_one_ping() -> None:
    framer = StreamFramer()
    for byte in b"\r\n\r\n":
        assert framer.feed(bytes([byte])) == []
    assert framer.take_pings() == 1
    assert framer.feed(b"\r\n") == []  # could start a ping: wait
    assert framer.feed(A) == [A]
    assert framer.pings == 1


def test_missing_content_length_is_400_on_a_stream() -> None:
    framer = StreamFramer()
    with pytest.raises(ParseError, match="Content-Length"):
        framer.feed(A.replace(b"Content-Length: 25\r\n", b""))


@pytest.mark.parametrize("length", [b"-1", b"abc", b"1 2", b"", b"12345678901"])
def test_malformed_content_length_is_400(length: bytes) -> None:
    with pytest.raises(ParseError):
        StreamFramer().feed(_message(1, b"", length))


def test_conflicting_content_lengths_are_400() -> None:
    conflicting = A.replace(b"Content-Length", b"l: 3\r\nContent-Length")
    with pytest.raises(ParseError, match="Conflicting"):
        StreamFramer().feed(conflicting)


def test_header_section_without_end_is_bounded() -> None:
    framer = StreamFramer(max_size=1000)
    assert framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\n" + b"X: y\r\n" * 100) == []
    with pytest.raises(MessageTooLarge) as info:
        framer.feed(b"X: y\r\n" * 100)
    assert info.value.status == 513


def test_a_message_over_the_bound_is_refused_before_its_body_arrives() -> None:
    framer = StreamFramer(max_size=500)
    big = _message(1, b"x" * 1000)
    head = big[: big.index(b"\r\n\r\n") + 4]
    with pytest.raises(MessageTooLarge):
        framer.feed(head)


def test_a_message_at_the_bound_is_accepted() -> None:
    assert StreamFramer(max_size=len(C)).feed(C) == [C]
    with pytest.raises(MessageTooLarge):
        StreamFramer(max_size=len(C) - 1).feed(C)


def test_the_framer_is_unusable_after_an_error() -> None:
    framer = StreamFramer()
    with pytest.raises(ParseError):
        framer.feed(_message(1, b"", b"-1"))
    with pytest.raises(ParseError, match="unusable"):
        framer.feed(A)


@given(st.binary(max_size=400), st.integers(1, 50))
def test_arbitrary_bytes_only_raise_sip_errors(data: bytes, step: int) -> None:
    framer = StreamFramer(max_size=200)
    try:
        for i in range(0, len(data), step):
            for message in framer.feed(data[i : i + step]):
                assert len(message) <= 200
    except SipError:
        pass
