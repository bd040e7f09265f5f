"""Where the tests' own files are: everything they read lives in this checkout."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
FIXTURES = TESTS / "fixtures"
#: RFC 4475's torture messages and the manifest of what a user agent answers to each.
RFC4475 = FIXTURES / "sip" / "rfc4475"
#: RTP captures made for this project (tests/fixtures/pcap/make_dtmf_pcap.py).
PEER_PCAPS = FIXTURES / "pcap"
#: SIPp's own captures, recorded by people outside this project.
SIPP_PCAPS = FIXTURES / "pcap" / "sipp"
#: The SIPp scenarios of the interop tests.
SIPP_SCENARIOS = TESTS / "interop" / "sipp"
