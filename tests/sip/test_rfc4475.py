"""RFC 4475 torture messages: every file of the shared fixtures, judged against MANIFEST.tsv.

A user agent's verdict on a file is what it would answer over UDP: ``parse`` then, for a
request, ``check_request`` with the methods this gateway serves. ``valid`` and ``semantic``
files must parse (whole, then one byte at a time through ``StreamFramer``); ``invalid`` ones must
be refused with a status the manifest allows; responses are never answered ("drop").
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

import pytest

from gateway.sip.errors import ParseError, SipError
from gateway.sip.framing import StreamFramer
from gateway.sip.message import (
    Request,
    Response,
    check_request,
    check_response,
    parse,
    response_for,
)
from tests.paths import RFC4475

FIXTURES = RFC4475

# The methods this gateway's user agent serves (REGISTER and MESSAGE are not among them).
UA_METHODS = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "PRACK", "UPDATE", "NOTIFY")

# Files a stream cannot frame whole, and why:
# - inv2543.dat has no Content-Length: RFC 3261 section 18.3 makes it mandatory on streams
#   (the RFC 2543 sender relied on the end of the UDP datagram), so the framer refuses it;
# - mcl01.dat has two different Content-Length values: no safe place to cut the stream
#   (taking either would let the rest be read as a smuggled message).
UNFRAMEABLE = {"inv2543.dat", "mcl01.dat"}


@dataclass(frozen=True)
class Case:
    file: str
    section: str
    klass: str
    answer: str
    note: str

    @property
    def data(self) -> bytes:
        return (FIXTURES / self.file).read_bytes()

    @property
    def codes(self) -> set[int]:
        return {int(code) for code in self.answer.split("|") if code.isdigit()}

    @property
    def any_final(self) -> bool:
        return "any-final" in self.answer.split("|")

    @property
    def drop(self) -> bool:
        return "drop" in self.answer.split("|")


def _cases() -> list[Case]:
    with (FIXTURES / "MANIFEST.tsv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [
        Case(r["file"], r["rfc4475_section"], r["class"], r["user_agent_answer"], r["note"])
        for r in rows
    ]


CASES = _cases()
IDS = [case.file for case in CASES]


def verdict(data: bytes) -> int | str:
    """What a user agent does with a datagram: a status code, "process", or "drop"."""
    try:
        message = parse(data)
    except SipError as exc:
        # A request readable beyond its fault is answered; anything else is dropped.
        return exc.status if exc.request is not None else "drop"
    if isinstance(message, Response):
        return "drop"  # never answered; and no client transaction sent anything to match
    try:
        check_request(message, methods=UA_METHODS)
    except SipError as exc:
        return exc.status
    return "process"


def test_manifest_lists_every_file() -> None:
    on_disk = {path.name for path in FIXTURES.glob("*.dat")}
    assert on_disk == set(IDS)
    assert len(CASES) == 50


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_user_agent_answer_matches_manifest(case: Case) -> None:
    outcome = verdict(case.data)
    if outcome == "process":
        assert case.any_final, f"{case.file} accepted; manifest says {case.answer}"
    elif outcome == "drop":
        assert case.drop, f"{case.file} dropped; manifest says {case.answer}"
    else:
        assert outcome in case.codes, f"{case.file}: {outcome}, manifest says {case.answer}"


@pytest.mark.parametrize("case", [c for c in CASES if c.klass != "invalid"], ids=lambda c: c.file)
def test_valid_and_semantic_messages_parse(case: Case) -> None:
    message = parse(case.data)
    assert isinstance(message, Request | Response)
    # Serialising and parsing again gives the same message.
    assert parse(bytes(message)) == message
    if case.file not in UNFRAMEABLE:
        # With one Content-Length, octets after the body are ignored (RFC 4475 3.1.1.8).
        assert parse(case.data + b"\r\ntrailing junk") == message


@pytest.mark.parametrize("case", [c for c in CASES if c.klass != "invalid"], ids=lambda c: c.file)
def test_valid_and_semantic_messages_frame_one_byte_at_a_time(case: Case) -> None:
    data = case.data
    framer = StreamFramer()
    frames: list[bytes] = []
    if case.file in UNFRAMEABLE:
        with pytest.raises(ParseError):
            for i in range(len(data)):
                frames += framer.feed(data[i : i + 1])
        # The same message with a correct Content-Length (as bytes() writes it) does frame.
        data = bytes(parse(data))
        framer = StreamFramer()
        frames = []
    try:
        for i in range(len(data)):
            frames += framer.feed(data[i : i + 1])
    except ParseError:
        # dblreq.dat: two requests then stray octets in one datagram; on a stream the stray
        # octets would start a third message, which has no Content-Length.
        assert case.file == "dblreq.dat"
    assert frames
    assert parse(frames[0]) == parse(case.data)


@pytest.mark.parametrize("case", [c for c in CASES if c.klass == "invalid"], ids=lambda c: c.file)
def test_invalid_messages_are_refused(case: Case) -> None:
    outcome = verdict(case.data)
    assert outcome != "process" or case.any_final
    # Through a stream the verdict is the same, or the stream is refused as unframeable, or
    # (clerr.dat: Content-Length beyond the data) the framer is still waiting for the body.
    framer = StreamFramer()
    frames: list[bytes] = []
    try:
        for i in range(len(case.data)):
            frames += framer.feed(case.data[i : i + 1])
    except SipError as exc:
        assert exc.status == 400
        return
    if case.file == "clerr.dat":
        assert frames == []
    else:
        assert [verdict(frame) for frame in frames] == [outcome]


RESPONSES = [c for c in CASES if c.data.startswith(b"SIP/")]


@pytest.mark.parametrize("case", RESPONSES, ids=lambda c: c.file)
def test_responses_are_checked_before_matching(case: Case) -> None:
    # A client drops a malformed response (RFC 3261 section 18.1.2) before it reaches a
    # transaction: bigcode.dat (status 4294967301) and scalarlg.dat (CSeq beyond 32 bits).
    try:
        message = parse(case.data)
        assert isinstance(message, Response)
        check_response(message)
    except SipError:
        assert case.klass == "invalid"
    else:
        assert case.klass != "invalid"


def _refusal(data: bytes) -> tuple[Request, SipError] | None:
    """The request and the error that refuses it, if a user agent answers it with an error."""
    try:
        message = parse(data)
    except SipError as exc:
        return None if exc.request is None else (exc.request, exc)
    if isinstance(message, Response):
        return None
    try:
        check_request(message, methods=UA_METHODS)
    except SipError as exc:
        return message, exc
    return None


REFUSED = [c for c in CASES if _refusal(c.data) is not None]


def test_most_torture_requests_are_refused() -> None:
    assert len(REFUSED) >= 30


@pytest.mark.parametrize("case", REFUSED, ids=lambda c: c.file)
def test_every_refused_request_can_be_answered(case: Case) -> None:
    refusal = _refusal(case.data)
    assert refusal is not None
    request, exc = refusal
    answer = response_for(request, exc.status, to_tag="gw1", headers=exc.headers)
    assert answer.status == exc.status
    assert parse(bytes(answer)) == answer
    assert answer.headers.get_lines("Via") == request.headers.get_lines("Via")
    assert answer.headers.get("Call-ID") == request.headers.get("Call-ID")
    for name, value in exc.headers:
        assert answer.headers.get(name) == value


def test_parse_error_keeps_the_request_so_it_can_be_answered() -> None:
    data = (FIXTURES / "badvers.dat").read_bytes()
    with pytest.raises(SipError) as info:
        parse(data)
    assert info.value.status == 505
    request = info.value.request
    assert request is not None
    answer = response_for(request, info.value.status, to_tag="gw1")
    assert answer.status == 505
    assert answer.reason == "Version Not Supported"
    assert answer.headers.get_all("Via") == request.headers.get_all("Via")
    assert answer.to.tag == "gw1"


@pytest.mark.parametrize("name", ["ltgtruri.dat", "lwsruri.dat", "lwsstart.dat", "trws.dat"])
def test_malformed_request_line_is_answered_400(name: str) -> None:
    with pytest.raises(ParseError) as info:
        parse((FIXTURES / name).read_bytes())
    assert info.value.request is not None
    assert info.value.request.call_id.startswith(name.removesuffix(".dat"))


def test_bext01_answer_lists_both_unsupported_extensions() -> None:
    request = parse((FIXTURES / "bext01.dat").read_bytes())
    assert isinstance(request, Request)
    with pytest.raises(SipError) as info:
        check_request(request, methods=UA_METHODS)
    assert info.value.status == 420
    assert info.value.headers == [("Unsupported", "nothingSupportsThis, nothingSupportsThisEither")]


def test_bext01_passes_when_the_extensions_are_supported() -> None:
    request = parse((FIXTURES / "bext01.dat").read_bytes())
    assert isinstance(request, Request)
    # Proxy-Require is for proxies: a user agent ignores it.
    check_request(request, supported=["nothingsupportsthis", "NothingSupportsThisEither"])


def test_invut_answer_carries_accept() -> None:
    request = parse((FIXTURES / "invut.dat").read_bytes())
    assert isinstance(request, Request)
    with pytest.raises(SipError) as info:
        check_request(request)
    assert info.value.status == 415
    assert info.value.headers == [("Accept", "application/sdp")]


def test_unkscm_is_416_and_novelsc_too() -> None:
    for name in ("unkscm.dat", "novelsc.dat"):
        request = parse((FIXTURES / name).read_bytes())
        assert isinstance(request, Request)
        with pytest.raises(SipError) as info:
            check_request(request)
        assert info.value.status == 416


def test_register_is_405_with_allow() -> None:
    request = parse((FIXTURES / "cparam01.dat").read_bytes())
    assert isinstance(request, Request)
    with pytest.raises(SipError) as info:
        check_request(request, methods=UA_METHODS)
    assert info.value.status == 405
    assert info.value.headers == [("Allow", ", ".join(UA_METHODS))]


def test_dblreq_takes_the_first_message_only() -> None:
    request = parse((FIXTURES / "dblreq.dat").read_bytes())
    assert isinstance(request, Request)
    assert request.method == "REGISTER"
    assert request.body == b""


def test_wsinv_reads_through_folding_and_compact_forms() -> None:
    request = parse((FIXTURES / "wsinv.dat").read_bytes())
    assert isinstance(request, Request)
    assert request.to.tag == "1918181833n"
    assert request.from_.display == 'J Rosenberg \\"'
    assert request.from_.tag == "98asjd8"
    assert request.max_forwards == 68
    assert request.cseq.seq == 9
    assert request.cseq.method == "INVITE"
    assert [(v.transport, v.host, v.branch) for v in request.via] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert request.headers.get("Subject") == ""
    assert request.headers.get("NewFangledHeader") == (
        "newfangled value continued newfangled value"
    )
    contact = request.contact[0]
    assert contact.display == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert len(request.body) == 150


def test_intmeth_keeps_unusual_characters() -> None:
    request = parse((FIXTURES / "intmeth.dat").read_bytes())
    assert isinstance(request, Request)
    assert request.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert request.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert request.from_.display == "token1~` token2'+_ token3*%!.-"
    assert request.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert request.cseq.method == request.method


def test_esc02_percent_in_method_and_header_name_is_not_an_escape() -> None:
    request = parse((FIXTURES / "esc02.dat").read_bytes())
    assert isinstance(request, Request)
    assert request.method == "RE%47IST%45R"
    assert len(request.contact) == 2
    assert request.headers.get("C%6fntact") == "<sip:alias2@host2.example.com>"
