"""Benchmark: SIP messages parsed per second on one core (``gateway.sip.message.parse``).

The messages are what a Kamailio edge proxy hands to the gateway: an INVITE with an SDP offer,
two Via values and a Record-Route, and the 200 OK that answers it.
Run: ``python -m bench.sip_parse`` (prints JSON).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from gateway.sip.message import parse

_SDP = (
    b"v=0\r\n"
    b"o=- 3905473127 3905473127 IN IP4 203.0.113.10\r\n"
    b"s=-\r\n"
    b"c=IN IP4 203.0.113.10\r\n"
    b"t=0 0\r\n"
    b"m=audio 30000 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)

INVITE = (
    b"INVITE sip:+33612345678@gw.example.net:5060;transport=udp SIP/2.0\r\n"
    b"Record-Route: <sip:198.51.100.1;lr;ftag=as5f2c1a9e;did=1a3.b1c2>\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bK8a7c.5e6f7d1b2c3d4e5f6a7b8c9d0e1f2a3b.0\r\n"
    b"Via: SIP/2.0/UDP 203.0.113.10:5060;received=203.0.113.10;rport=5060;"
    b"branch=z9hG4bK-524287-1---3c4b5a6d7e8f9a0b\r\n"
    b"Max-Forwards: 69\r\n"
    b"Contact: <sip:+33198765432@203.0.113.10:5060;transport=udp>\r\n"
    b'To: "Callee" <sip:+33612345678@sip.example.net>\r\n'
    b'From: "Caller" <sip:+33198765432@sip.example.net>;tag=4f3c2b1a\r\n'
    b"Call-ID: 7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f@203.0.113.10\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY, REFER, UPDATE\r\n"
    b"Supported: replaces, timer\r\n"
    b"User-Agent: Kamailio (5.7.4 (x86_64/linux))\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(_SDP)).encode() + b"\r\n"
    b"\r\n" + _SDP
)

OK_200 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bK776asdhds;rport=5060;received=192.0.2.20\r\n"
    b"Record-Route: <sip:198.51.100.1;lr;ftag=4f3c2b1a>\r\n"
    b'From: "Gateway" <sip:+33198765432@gw.example.net>;tag=4f3c2b1a\r\n'
    b"To: <sip:+33612345678@sip.example.net>;tag=as5f2c1a9e\r\n"
    b"Call-ID: a84b4c76e66710@192.0.2.20\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:+33612345678@198.51.100.7:5060>\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def _rate(func: Callable[[bytes], object], data: bytes, seconds: float) -> float:
    """Calls per second of ``func(data)``, measured in batches for ``seconds``."""
    func(data)  # warm caches (header-name table)
    batch = 1000
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            func(data)
        count += batch
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def _parse_and_read(data: bytes) -> object:
    """What the transaction layer does with each message: parse, then the matching headers."""
    message = parse(data)
    return (
        message.top_via.branch,
        message.cseq,
        message.call_id,
        message.from_.tag,
        message.to.tag,
    )


def run(seconds: float = 2.0) -> dict[str, float]:
    """Messages parsed per second: a typical INVITE with SDP, and a typical 200 OK.

    The ``*_views_per_s`` rates add reading Via, CSeq, Call-ID, From and To, as a transaction
    layer does to match a message.
    """
    share = seconds / 4
    return {
        "parse_invite_per_s": _rate(parse, INVITE, share),
        "parse_200_per_s": _rate(parse, OK_200, share),
        "parse_invite_views_per_s": _rate(_parse_and_read, INVITE, share),
        "parse_200_views_per_s": _rate(_parse_and_read, OK_200, share),
    }


if __name__ == "__main__":
    print(json.dumps(run()))
