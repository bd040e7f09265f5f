"""Self-tests of the interop harness: every peer starts, every callee scenario does what it says.

SIPp's own caller stands in for the gateway here, directly and through the Kamailio trunk; the
gateway's
interop tests then replace it. These tests fail (in CI) if a peer is missing.
"""

from __future__ import annotations

import hashlib
import re
import socket
import ssl
import threading
import uuid
from pathlib import Path

import pytest

from tests.interop.conftest import (
    BaresipFactory,
    KamailioFactory,
    Pjsua2Factory,
    SippUasFactory,
)
from tests.interop.peers import (
    KamailioTrunk,
    PeerError,
    Sipp,
    TlsCertificates,
    Transport,
    free_port,
    require_binary,
    run_sipp_uac,
)

# (callee scenario, caller scenario, caller's extra args, what else to check)
DIRECT = [
    ("uas_answer", "uac_offer_te", ["-d", "300"]),
    ("uas_busy", "uac_reject", []),
    ("uas_decline", "uac_reject", []),
    ("uas_noanswer", "uac_cancel", ["-d", "300"]),
    ("uas_far_bye", "uac_passive", []),
    ("uas_reinvite", "uac_passive", []),
    ("uas_lost_200", "uac_offer_te", ["-d", "1200"]),
    ("uas_load", "uac_offer_te", ["-d", "100"]),
]


def _check_scenario_specifics(uas_name: str, uas: Sipp) -> None:
    received = [m.split(" ", 1)[0] for m in uas.received("") if not m.startswith("SIP/2.0")]
    if uas_name == "uas_lost_200":
        # the 200 went out twice, and the caller ACKed each copy
        sent_200 = uas.messages.count("\nSIP/2.0 200 OK")
        assert sent_200 >= 3, uas.messages  # 200 (INVITE) x2 + 200 (BYE)
        assert received.count("ACK") == 2, received
    elif uas_name == "uas_reinvite":
        assert "re-INVITE answered: a=recvonly" in uas.logs, uas.logs
    elif uas_name == "uas_noanswer":
        assert received == ["INVITE", "CANCEL", "ACK"], received
    elif uas_name in ("uas_busy", "uas_decline"):
        assert received == ["INVITE", "ACK"], received
    elif uas_name == "uas_far_bye":
        assert received == ["INVITE", "ACK"], received  # the BYE went the other way


# uas_load.xml keeps each call 4 s in <timewait> to absorb UDP retransmissions; a caller closing
# its TCP connection meanwhile makes SIPp count the call as failed: load runs use UDP only.
CASES = [
    pytest.param(*case, transport, id=f"{case[0]}-{transport}")
    for case in DIRECT
    for transport in ("udp", "tcp")
    if not (case[0] == "uas_load" and transport == "tcp")
]


@pytest.mark.parametrize(("uas_name", "uac_name", "uac_args", "transport"), CASES)
def test_sipp_callee_scenario_direct(  # noqa: PLR0917 (pytest passes fixtures by name)
    sipp_uas: SippUasFactory,
    tmp_path: Path,
    uas_name: str,
    uac_name: str,
    uac_args: list[str],
    transport: Transport,
) -> None:
    uas = sipp_uas(uas_name, transport=transport)
    uac = run_sipp_uac(
        uac_name,
        uas.address,
        tmp_path / "uac",
        transport=transport,
        extra_args=uac_args,
        timeout=30,
    )
    assert uas.wait(10) == 0, uas.stats
    assert uas.stats.ok and uas.stats.successful == 1, uas.stats
    assert uac.ok and uac.successful == 1, uac
    _check_scenario_specifics(uas_name, uas)


THROUGH_TRUNK = [
    ("uas_answer", "uac_auth_via_trunk", ["-d", "300"]),
    ("uas_far_bye", "uac_auth_passive", []),
    ("uas_reinvite", "uac_auth_passive", []),
    ("uas_lost_200", "uac_auth_via_trunk", ["-d", "1200"]),
]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize(
    ("uas_name", "uac_name", "uac_args"), THROUGH_TRUNK, ids=[d[0] for d in THROUGH_TRUNK]
)
def test_sipp_callee_scenario_through_trunk(  # noqa: PLR0917
    sipp_uas: SippUasFactory,
    kamailio_trunk: KamailioFactory,
    tmp_path: Path,
    uas_name: str,
    uac_name: str,
    uac_args: list[str],
    transport: Transport,
) -> None:
    """Caller -> Kamailio (407, digest, Record-Route) -> SIPp callee over UDP; ACK/BYE follow the
    routes.

    Over TCP Kamailio changes transport and so puts two Record-Route entries (r2=on) in the INVITE.
    """
    uas = sipp_uas(uas_name)
    trunk = kamailio_trunk(callee=f"sip:{uas.address}", transports=("udp", "tcp"))
    uac = run_sipp_uac(
        uac_name,
        trunk.address(transport),
        tmp_path / "uac",
        service="15551234567",
        transport=transport,
        extra_args=["-au", "gw", "-ap", "secret", *uac_args],
    )
    assert uas.wait(10) == 0, uas.stats
    assert uac.ok and uac.successful == 1, uac
    invite = uas.received("INVITE ")[0]
    rr = [
        entry.strip()
        for line in re.findall(r"^Record-Route: (.*)$", invite, flags=re.MULTILINE)
        for entry in line.split(",")
    ]
    assert rr and all(";lr" in entry for entry in rr), invite
    if (
        transport == "tcp"
    ):  # double Record-Route: UDP side first (toward the callee), then the TCP side
        assert len(rr) == 2 and "transport=tcp" in rr[1] and "r2=on" in rr[0], rr
    else:
        assert len(rr) == 1, rr
    assert re.search(r"challenge INVITE from 127\.0\.0\.1:\d+", trunk.log()), trunk.log_tail()
    _check_scenario_specifics(uas_name, uas)


def test_trunk_to_tcp_callee(
    sipp_uas: SippUasFactory, kamailio_trunk: KamailioFactory, tmp_path: Path
) -> None:
    uas = sipp_uas("uas_answer", transport="tcp")
    # Kamailio needs a TCP socket of its own to reach a TCP callee, hence "tcp" in its transports
    trunk = kamailio_trunk(callee=f"sip:{uas.address};transport=tcp", transports=("udp", "tcp"))
    uac = run_sipp_uac(
        "uac_auth_via_trunk",
        trunk.address("udp"),
        tmp_path / "uac",
        service="15551234567",
        extra_args=["-au", "gw", "-ap", "secret", "-d", "300"],
    )
    assert uas.wait(10) == 0 and uac.ok, (uas.stats, uac)


def test_wrong_password_is_not_let_through(
    sipp_uas: SippUasFactory, kamailio_trunk: KamailioFactory, tmp_path: Path
) -> None:
    uas = sipp_uas("uas_answer")
    trunk = kamailio_trunk(callee=f"sip:{uas.address}", transports=("udp",))
    uac = run_sipp_uac(
        "uac_auth_via_trunk",
        trunk.address("udp"),
        tmp_path / "uac",
        service="15551234567",
        extra_args=["-au", "gw", "-ap", "wrong", "-d", "100", "-timeout", "3", "-timeout_error"],
        timeout=15,
    )
    assert not uac.ok
    assert uas.stats.successful == 0 and not uas.received("INVITE")


# --------------------------------------------------------------------- digest with a stdlib client


def _sip_request(
    method: str,
    ruri: str,
    *,
    transport: str = "UDP",
    auth: str | None = None,
    cseq: int = 1,
    call_id: str = "harness-1",
    local: str = "127.0.0.1:9",
) -> bytes:
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/{transport} {local};rport;branch=z9hG4bK{uuid.uuid4().hex}",
        "From: <sip:gw@trunk.test>;tag=harness",
        "To: <sip:gw@trunk.test>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:gw@{local}>",
        "Max-Forwards: 70",
    ]
    if auth:
        lines.append(auth)
    lines += ["Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


def _udp_exchange(trunk: KamailioTrunk, data: bytes) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(data, (trunk.host, trunk.port("udp")))
        return s.recv(65535).decode()


def _digest_authorization(
    challenge_response: str, header: str, method: str, uri: str, password: str
) -> tuple[str, str]:
    """(algorithm, Authorization header) answering the challenge (RFC 8760, qop=auth)."""
    m = re.search(rf"^{header}: Digest (.*)$", challenge_response, flags=re.MULTILINE)
    assert m, challenge_response
    params = dict(re.findall(r'(\w+)="?([^",\r]+)"?', m.group(1)))
    algorithm = params.get("algorithm", "MD5")
    hash_name = {"MD5": "md5", "SHA-256": "sha256"}[algorithm]

    def h(text: str) -> str:
        return hashlib.new(hash_name, text.encode()).hexdigest()

    ha1 = h(f"gw:{params['realm']}:{password}")
    ha2 = h(f"{method}:{uri}")
    cnonce, nc = "0a4f113b", "00000001"
    response = h(f"{ha1}:{params['nonce']}:{nc}:{cnonce}:auth:{ha2}")
    name = "Authorization" if header == "WWW-Authenticate" else "Proxy-Authorization"
    value = (
        f'Digest username="gw", realm="{params["realm"]}", nonce="{params["nonce"]}", uri="{uri}", '
        f'response="{response}", algorithm={algorithm}, cnonce="{cnonce}", qop=auth, nc={nc}'
    )
    return algorithm, f"{name}: {value}"


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_trunk_digest_algorithm(kamailio_trunk: KamailioFactory, algorithm: str) -> None:
    """The trunk challenges with the chosen algorithm, accepts a right answer and refuses a wrong
    one."""
    trunk = kamailio_trunk(callee="sip:127.0.0.1:9", transports=("udp",), algorithm=algorithm)  # type: ignore[arg-type]
    challenge = _udp_exchange(trunk, _sip_request("REGISTER", "sip:trunk.test"))
    assert challenge.startswith("SIP/2.0 401"), challenge
    assert f"algorithm={algorithm}" in challenge and 'qop="auth"' in challenge, challenge
    used, auth = _digest_authorization(
        challenge, "WWW-Authenticate", "REGISTER", "sip:trunk.test", "secret"
    )
    assert used == algorithm
    ok = _udp_exchange(trunk, _sip_request("REGISTER", "sip:trunk.test", auth=auth, cseq=2))
    assert ok.startswith("SIP/2.0 200"), ok
    assert "AoR: gw" in trunk.kamcmd("ul.dump")

    challenge = _udp_exchange(
        trunk, _sip_request("REGISTER", "sip:trunk.test", call_id="harness-2")
    )
    _, bad = _digest_authorization(
        challenge, "WWW-Authenticate", "REGISTER", "sip:trunk.test", "wrong"
    )
    refused = _udp_exchange(
        trunk, _sip_request("REGISTER", "sip:trunk.test", auth=bad, cseq=2, call_id="harness-2")
    )
    assert refused.startswith("SIP/2.0 401"), refused

    invite_challenge = _udp_exchange(trunk, _sip_request("INVITE", "sip:15551234567@trunk.test"))
    assert invite_challenge.startswith("SIP/2.0 407"), invite_challenge
    assert re.search(
        rf"^Proxy-Authenticate: Digest .*algorithm={algorithm}", invite_challenge, re.M
    )


# --------------------------------------------------------------------------------------------- TLS


def test_tls_certificates_handshake(tls_certificates: TlsCertificates) -> None:
    """A client verifying against the CA accepts the server cert for 127.0.0.1 and localhost."""
    server_ctx = tls_certificates.server_context()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            for _ in range(2):
                conn, _ = listener.accept()
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(tls.recv(100))

        thread = threading.Thread(target=serve)
        thread.start()
        for name in ("127.0.0.1", "localhost"):
            ctx = tls_certificates.client_context()
            with (
                socket.create_connection(("127.0.0.1", port), timeout=3) as raw,
                ctx.wrap_socket(raw, server_hostname=name) as tls,
            ):
                tls.sendall(b"ping")
                assert tls.recv(100) == b"ping"
        thread.join(5)


def _tls_exchange(trunk: KamailioTrunk, ctx: ssl.SSLContext, data: bytes) -> str:
    with (
        socket.create_connection((trunk.host, trunk.port("tls")), timeout=3) as raw,
        ctx.wrap_socket(raw, server_hostname=trunk.host) as tls,
    ):
        tls.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = tls.recv(65535)
            assert chunk, buf
            buf += chunk
        return buf.decode()


def test_kamailio_tls_options_and_register(
    kamailio_trunk: KamailioFactory, tls_certificates: TlsCertificates
) -> None:
    """SIP over TLS to the trunk: certificate verified with our CA, OPTIONS -> 200, REGISTER w/
    digest."""
    trunk = kamailio_trunk(callee="sip:127.0.0.1:9", algorithm="SHA-256")
    assert trunk.ca_file == tls_certificates.ca_file
    assert trunk.uri("tls") == f"sip:127.0.0.1:{trunk.tls_port};transport=tls"
    ctx = ssl.create_default_context(cafile=str(trunk.ca_file))
    local = "127.0.0.1:9;transport=tls"
    reply = _tls_exchange(trunk, ctx, _sip_request("OPTIONS", trunk.uri("tls"), transport="TLS"))
    assert reply.startswith("SIP/2.0 200"), reply

    # the same over a connection we keep: REGISTER, 401 (SHA-256), REGISTER with credentials, 200
    with (
        socket.create_connection((trunk.host, trunk.port("tls")), timeout=3) as raw,
        ctx.wrap_socket(raw, server_hostname=trunk.host) as tls,
    ):
        tls.sendall(_sip_request("REGISTER", "sip:trunk.test", transport="TLS", local=local))
        challenge = tls.recv(65535).decode()
        assert challenge.startswith("SIP/2.0 401") and "algorithm=SHA-256" in challenge, challenge
        _, auth = _digest_authorization(
            challenge, "WWW-Authenticate", "REGISTER", "sip:trunk.test", "secret"
        )
        tls.sendall(
            _sip_request(
                "REGISTER", "sip:trunk.test", transport="TLS", auth=auth, cseq=2, local=local
            )
        )
        ok = tls.recv(65535).decode()
        assert ok.startswith("SIP/2.0 200"), ok

    # and a client that does not trust our CA is refused by its own verification
    with pytest.raises(ssl.SSLCertVerificationError):
        _tls_exchange(trunk, ssl.create_default_context(), b"")


def test_sipp_has_no_tls(tmp_path: Path) -> None:
    """Debian 12's SIPp 3.6.1 is built without OpenSSL; the harness says so instead of hanging."""
    with pytest.raises(PeerError, match="no TLS"):
        Sipp("uas_answer", tmp_path, transport="tls")


# -------------------------------------------------------------------------------- other SIP stacks


def test_baresip_answers_and_presses_a_key(baresip_callee: BaresipFactory, tmp_path: Path) -> None:
    callee = baresip_callee()
    assert callee.uri == f"sip:callee@127.0.0.1:{callee.sip_port}"
    caller = Sipp(
        "uac_offer_te",
        tmp_path / "uac",
        remote=f"{callee.host}:{callee.sip_port}",
        service="callee",
        extra_args=["-d", "1500"],
    )
    try:
        callee.wait_for_log(r"Call established", timeout=10)
        calls = callee.listcalls()
        assert calls["ok"] and "ESTABLISHED" in calls["data"], calls
        assert callee.active_calls() == 1
        assert callee.sndcode("9")["ok"]
        callee.wait_for_log(r"send DTMF digit end: '9'")
        assert caller.wait(15) == 0, caller.stats
        assert callee.active_calls() == 0
    finally:
        caller.stop()
    assert caller.stats.ok


def test_baresip_behind_trunk(
    baresip_callee: BaresipFactory, kamailio_trunk: KamailioFactory, tmp_path: Path
) -> None:
    callee = baresip_callee()
    trunk = kamailio_trunk(callee=f"sip:127.0.0.1:{callee.sip_port}", transports=("udp", "tcp"))
    uac = run_sipp_uac(
        "uac_auth_via_trunk",
        trunk.address("tcp"),
        tmp_path / "uac",
        service="callee",  # baresip answers only its own user part
        transport="tcp",
        extra_args=["-au", "gw", "-ap", "secret", "-d", "500"],
    )
    assert uac.ok, uac


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_pjsua2_answers(pjsua2_callee: Pjsua2Factory, tmp_path: Path, transport: Transport) -> None:
    callee = pjsua2_callee(tcp=transport == "tcp")
    uac = run_sipp_uac(
        "uac_offer_te",
        f"{callee.host}:{callee.sip_port}",
        tmp_path / "uac",
        transport=transport,
        extra_args=["-d", "300"],
    )
    assert uac.ok, uac
    callee.wait_for_log(r"state=DISCONNECTED")
    assert callee.call_states()[-2:] == ["CONFIRMED", "DISCONNECTED"], callee.log_tail()


# ----------------------------------------------------------------------------------- harness rules


def test_missing_binary_fails_in_ci_and_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    for ci in ("true", ""):
        monkeypatch.setenv("CI", ci)
        with pytest.raises(pytest.fail.Exception, match=r"'sipp' not found.*sip-tester"):
            require_binary("sipp", "sip-tester")


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = {free_port() for _ in range(20)}
    assert len(ports) == 20 and 5060 not in ports
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket() as t:
            u.bind(("127.0.0.1", port))
            t.bind(("127.0.0.1", port))


def test_load_callee_runs_until_stopped(sipp_uas: SippUasFactory, tmp_path: Path) -> None:
    """uas_load as the benchmark's callee farm: no call limit, SIPp's own caller at a rate."""
    uas = sipp_uas("uas_load", calls=None, trace_msg=False, extra_args=["-buff_size", "4194304"])
    uac = run_sipp_uac(
        "uac_offer_te",
        uas.address,
        tmp_path / "uac",
        calls=200,
        extra_args=["-r", "200", "-d", "0", "-buff_size", "4194304"],
    )
    assert uac.ok and uac.successful == 200, uac
    assert uas.returncode is None  # still serving
    stats = uas.wait_for_calls(200, timeout=15)
    assert (stats.successful, stats.failed) == (200, 0), stats
