"""``gateway run`` and ``gateway trunk check`` as an operator runs them: real processes, UDP.

The gateway runs as a subprocess (``python -m gateway run --config FILE``) on free loopback
ports, with 127.0.0.1 listed as a trunk so that it processes what the tests send instead of
answering 403. Every RFC 4475 torture message is sent from a socket bound where its answer is
due (RFC 3261 section 18.2.2: the source address, at the top Via's sent-by port, 5060 when it
has none, unless ``rport``), and the answer is judged against MANIFEST.tsv. After each file an
OPTIONS from the same socket serves as a barrier: the gateway handles datagrams in order, so
whatever arrives before the OPTIONS' 200 is the answer to the file, and nothing means it was
dropped. The same 200 proves the gateway is still alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import errno
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.sip.endpoint import Endpoint, EndpointSettings
from gateway.sip.message import parse
from gateway.sip.transport import ListenSpec, SipTransport
from tests.paths import RFC4475

FIXTURES = RFC4475
ROOT = Path(__file__).resolve().parents[1]

# Loopback hosts the gateway accepts as its trunk. The torture messages are sent from the first
# whose port is free (another test on this machine may hold 127.0.0.1:5060).
TRUNK_HOSTS = ("127.0.0.1", "127.0.0.9")


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Gateway:
    process: subprocess.Popen[bytes]
    port: int
    config: Path

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def options(self, sock: socket.socket, tag: str, timeout: float = 5.0) -> bytes:
        """Send OPTIONS from ``sock`` and return every datagram up to and including its answer."""
        sock.sendto(options_request(sock, self.port, tag), ("127.0.0.1", self.port))
        return b"".join(receive_until(sock, f"Call-ID: {tag}@test".encode(), timeout))


def options_request(sock: socket.socket, port: int, tag: str) -> bytes:
    host, source_port = sock.getsockname()
    return (
        f"OPTIONS sip:gw@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:{source_port};branch=z9hG4bK{tag};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@{host}>;tag={tag}\r\n"
        "To: <sip:gw@127.0.0.1>\r\n"
        f"Call-ID: {tag}@test\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def options_request_bytes(port: int, tag: str, extra: bytes) -> bytes:
    """An OPTIONS from nowhere in particular (no rport), with ``extra`` header lines."""
    head, _, _ = (
        (
            f"OPTIONS sip:gw@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{tag}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@127.0.0.1>;tag={tag}\r\n"
            "To: <sip:gw@127.0.0.1>\r\n"
            f"Call-ID: {tag}@test\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        .encode()
        .partition(b"\r\n\r\n")
    )
    return head + b"\r\n" + extra + b"\r\n"


def receive_until(sock: socket.socket, marker: bytes, timeout: float) -> list[bytes]:
    """Datagrams received on ``sock`` until one containing ``marker`` (included)."""
    sock.settimeout(timeout)
    out = []
    while True:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            raise AssertionError(f"no answer carrying {marker!r} within {timeout} s") from None
        out.append(data)
        if marker in data:
            return out


def free_udp_and_tcp_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    while True:
        port = free_port(socket.SOCK_STREAM)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def write_config(
    path: Path,
    port: int,
    trunk_port: int,
    *extra: str,
    tcp: bool = False,
    trunk_host: str = "127.0.0.1",
) -> Path:
    sources = ", ".join(f'"{h}"' for h in TRUNK_HOSTS)
    listen = f'"udp:127.0.0.1:{port}"' + (f', "tcp:127.0.0.1:{port}"' if tcp else "")
    path.write_text(
        "[sip]\n"
        f"listen = [{listen}]\n"
        "[trunks.main]\n"
        f'uri = "sip:{trunk_host}:{trunk_port}"\n'
        f"allowed_sources = [{sources}]\n"
        "keepalive_interval = 0\n" + "".join(f"{line}\n" for line in extra),
        encoding="utf-8",
    )
    return path


def start_gateway(config: Path, port: int) -> Gateway:
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "--config", str(config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    gateway = Gateway(process, port, config)
    # Ready when it answers OPTIONS: poll, since the process gives no other signal we can read
    # without blocking on its log.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        deadline = time.monotonic() + 15.0
        n = 0
        while True:
            n += 1
            try:
                gateway.options(sock, f"ready{n}", timeout=0.2)
                return gateway
            except AssertionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    stop(gateway)
                    raise AssertionError(
                        f"gateway did not start: {process.stderr.read().decode()[-2000:]}"
                        if process.stderr
                        else "gateway did not start"
                    ) from None


def stop(gateway: Gateway) -> tuple[int, str]:
    process = gateway.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return process.returncode, err.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    port = free_udp_and_tcp_port()
    config = write_config(
        tmp_path_factory.mktemp("run") / "gateway.toml", port, free_port(), tcp=True
    )
    gw = start_gateway(config, port)
    yield gw
    code, err = stop(gw)
    # Whatever the tests sent, nothing may have reached the process as an exception.
    assert "Traceback" not in err, err[-3000:]
    assert code == 0, err[-3000:]


# -- RFC 4475 ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    file: str
    answer: str

    @property
    def data(self) -> bytes:
        return (FIXTURES / self.file).read_bytes()

    def accepts(self, status: int | None) -> bool:
        allowed = self.answer.split("|")
        if status is None:
            return "drop" in allowed
        return str(status) in allowed or ("any-final" in allowed and status >= 200)


def cases() -> list[Case]:
    with (FIXTURES / "MANIFEST.tsv").open(encoding="utf-8", newline="") as f:
        return [Case(r["file"], r["user_agent_answer"]) for r in csv.DictReader(f, delimiter="\t")]


def answer_port(data: bytes) -> tuple[int, bool]:
    """(sent-by port of the top Via, whether it asks for rport); (5060, False) without a Via.

    Read leniently with a regular expression, since many files are broken on purpose.
    """
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    head = re.sub(r"\r\n[ \t]+", " ", head)  # unfold continuation lines
    for line in head.split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if not sep or name.strip().lower() not in ("via", "v"):
            continue
        first = value.split(",")[0]
        m = re.match(r"\s*SIP\s*/\s*[\d.]+\s*/\s*[A-Za-z]+\s+([^;\s]+)", first, re.IGNORECASE)
        if m is None:
            break
        host_port = m.group(1)
        port = 5060
        if not host_port.endswith("]") and ":" in host_port:
            port = int(host_port.rsplit(":", 1)[1])
        return port, re.search(r";\s*rport\b", first, re.IGNORECASE) is not None
    return 5060, False


class Sockets:
    """UDP sockets bound at the ports where answers are due, on a trunk host."""

    def __init__(self) -> None:
        self.bound: dict[int, socket.socket] = {}

    def at(self, port: int) -> socket.socket:
        if port not in self.bound:
            self.bound[port] = self._bind(port)
        return self.bound[port]

    def _bind(self, port: int) -> socket.socket:
        for host in TRUNK_HOSTS:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((host, port))
            except OSError as exc:
                sock.close()
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue
            return sock
        raise AssertionError(f"port {port} is busy on every trunk host {TRUNK_HOSTS}")

    def close(self) -> None:
        for sock in self.bound.values():
            sock.close()


def status_of(data: bytes) -> int:
    m = re.match(rb"SIP/2\.0 (\d{3}) ", data)
    assert m is not None, data[:200]
    return int(m.group(1))


def test_rfc4475_files_get_the_manifest_answer_and_the_gateway_lives(gateway: Gateway) -> None:
    sockets = Sockets()
    seen: set[bytes] = set()
    verdicts: dict[str, str] = {}
    try:
        for n, case in enumerate(cases()):
            port, _ = answer_port(case.data)
            # With rport the answer comes back to the source port: the same socket.
            sock = sockets.at(port)
            sock.sendto(case.data, ("127.0.0.1", gateway.port))
            received = gateway_answers(gateway, sock, f"barrier{n}")
            # A 4xx to an INVITE is re-sent until ACKed (Timer G): a repeat of an earlier
            # answer is not a new one.
            fresh = [d for d in received if d not in seen]
            seen.update(received)
            statuses = [status_of(d) for d in fresh]
            status = statuses[0] if statuses else None
            ok = len(statuses) <= 1 and case.accepts(status)
            if ok and status is not None:
                ok = well_formed_answer(fresh[0], status)
            verdicts[case.file] = f"{'ok ' if ok else 'BAD'} {statuses} (manifest {case.answer})"
        # And once more after every file, from a fresh socket.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            assert status_of(gateway.options(sock, "after-all")) == 200
    finally:
        sockets.close()
    bad = {f: v for f, v in verdicts.items() if v.startswith("BAD")}
    assert bad == {}, "\n".join(f"{f}: {v}" for f, v in bad.items())
    assert len(verdicts) == len(list(FIXTURES.glob("*.dat")))
    assert gateway.process.poll() is None


def gateway_answers(gateway: Gateway, sock: socket.socket, tag: str) -> list[bytes]:
    """What the gateway sent to ``sock`` before answering the barrier OPTIONS (which must be
    200: the gateway still serves after the file)."""
    datagrams = receive_until_options(gateway, sock, tag)
    *answers, barrier = datagrams
    assert status_of(barrier) == 200, barrier[:200]
    return answers


def receive_until_options(gateway: Gateway, sock: socket.socket, tag: str) -> list[bytes]:
    sock.sendto(options_request(sock, gateway.port, tag), ("127.0.0.1", gateway.port))
    return receive_until(sock, f"Call-ID: {tag}@test".encode(), 5.0)


def well_formed_answer(data: bytes, status: int) -> bool:
    """The answer parses, and carries what its status requires (RFC 3261 section 21)."""
    try:
        response = parse(data)
    except ValueError:
        return False
    required = {405: "Allow", 415: "Accept", 420: "Unsupported"}.get(status)
    return required is None or required in response.headers


def test_options_over_tcp_are_framed_and_answered_on_the_same_connection(
    gateway: Gateway,
) -> None:
    with socket.create_connection(gateway.address, timeout=5) as conn:
        host, port = conn.getsockname()
        first, second = (
            (
                f"OPTIONS sip:gw@127.0.0.1:{gateway.port} SIP/2.0\r\n"
                f"Via: SIP/2.0/TCP {host}:{port};branch=z9hG4bKtcp{n}\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:probe@{host}>;tag=t{n}\r\n"
                "To: <sip:gw@127.0.0.1>\r\n"
                f"Call-ID: tcp{n}@test\r\n"
                "CSeq: 1 OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n"
            ).encode()
            for n in (1, 2)
        )
        # Split inside the first message, the second glued to its end: Content-Length framing.
        conn.sendall(first[:40])
        conn.sendall(first[40:] + second)
        received = b""
        while received.count(b"\r\n\r\n") < 2:
            chunk = conn.recv(65536)
            assert chunk, f"connection closed after {received!r}"
            received += chunk
    answers = [a for a in received.split(b"\r\n\r\n") if a]
    assert [status_of(a) for a in answers] == [200, 200]
    assert [parse(a + b"\r\n\r\n").call_id for a in answers] == ["tcp1@test", "tcp2@test"]


# -- the door --------------------------------------------------------------------------------


def test_request_from_an_address_that_is_no_trunk_gets_403(gateway: Gateway) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.2", 0))
        answer = gateway.options(sock, "stranger")
    assert status_of(answer) == 403


def test_stranger_flood_is_dropped_and_the_trunk_still_answered(gateway: Gateway) -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as trunk,
    ):
        # Not 127.0.0.2: another test spends one of that address's answers.
        stranger.bind(("127.0.0.3", 0))
        trunk.bind(("127.0.0.1", 0))
        started = time.monotonic()
        for n in range(2000):
            stranger.sendto(options_request(stranger, gateway.port, f"flood{n}"), gateway.address)
        # The trunk's OPTIONS, sent after the whole flood, is answered; the gateway handles
        # datagrams in order, so the flood has been dealt with when it is.
        assert status_of(gateway.options(trunk, "amid-flood")) == 200
        elapsed = time.monotonic() - started
        stranger.setblocking(False)
        answers = []
        with contextlib.suppress(BlockingIOError):
            while True:
                answers.append(stranger.recv(65536))
    # stranger_rate = 50 answers a second (a burst of 50), the rest dropped unread.
    assert {status_of(a) for a in answers} == {403}
    assert 50 <= len(answers) <= 50 + 50 * elapsed + 1


def test_garbage_and_oversized_datagrams_do_not_stop_the_gateway(gateway: Gateway) -> None:
    big = options_request_bytes(gateway.port, "big", b"X-Padding: " + b"a" * 60000 + b"\r\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        for data in (b"", b"\r\n\r\n", b"\x00" * 1000, bytes(range(256)) * 200, big):
            sock.sendto(data, gateway.address)
        assert status_of(gateway.options(sock, "after-garbage")) == 200
    assert gateway.process.poll() is None


# -- trunk check -----------------------------------------------------------------------------


def trunk_check(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "trunk", "check", "main", "--config", str(config), *args],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_trunk_check_reports_a_reachable_trunk(gateway: Gateway, tmp_path: Path) -> None:
    # A trunk pointing at the running gateway, which answers OPTIONS from 127.0.0.1 with 200.
    config = write_config(tmp_path / "check.toml", free_port(), gateway.port)
    result = trunk_check(config)

    assert result.returncode == 0, result.stderr
    m = re.fullmatch(r"trunk main: reachable, status 200 OK, rtt (\d+\.\d) ms\n", result.stdout)
    assert m is not None, result.stdout
    assert 0.0 < float(m.group(1)) < 5000.0


def test_trunk_check_reaches_a_trunk_named_by_host_name(gateway: Gateway, tmp_path: Path) -> None:
    # Carriers are configured by name; the transport resolves it (it used to crash on sendto).
    config = write_config(
        tmp_path / "named.toml", free_port(), gateway.port, trunk_host="localhost"
    )
    result = trunk_check(config, "--timeout", "5")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("trunk main: reachable, status 200 OK, rtt "), result.stdout
    assert "Traceback" not in result.stderr


def test_trunk_check_reports_a_dead_port_unreachable(tmp_path: Path) -> None:
    config = write_config(tmp_path / "dead.toml", free_port(), free_port())
    started = time.monotonic()
    result = trunk_check(config, "--timeout", "1")

    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("trunk main: unreachable, status 408"), result.stdout
    assert "rtt -" in result.stdout
    assert time.monotonic() - started < 15.0


# -- stopping ----------------------------------------------------------------------------------


def test_sigterm_stops_the_gateway_cleanly(tmp_path: Path) -> None:
    port = free_port()
    gw = start_gateway(write_config(tmp_path / "stop.toml", port, free_port()), port)
    try:
        gw.process.send_signal(signal.SIGTERM)
        code = gw.process.wait(timeout=3)
    finally:
        with contextlib.suppress(ProcessLookupError):
            gw.process.kill()
        _, err = gw.process.communicate()
    assert code == 0, err.decode()
    assert b"gateway stopped" in err
    assert b"Traceback" not in err
    # The port is free again: the process closed its socket.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", port))


# -- the one timer -----------------------------------------------------------------------------


async def test_one_timer_survives_an_internal_error_in_a_timer() -> None:
    # What `gateway run` runs: an Endpoint inside a SipTransport on a real loop. A bug that
    # raises in one timer callback must not leave the endpoint's single timer unarmed, or every
    # transaction of every call would freeze.
    loop = asyncio.get_running_loop()
    endpoint = Endpoint(EndpointSettings(), [], rng=random.Random(1))
    transport = SipTransport(endpoint, lambda event: None)
    await transport.listen(ListenSpec("udp", "127.0.0.1", 0))
    later: asyncio.Future[float] = loop.create_future()

    def bug(now: float) -> None:
        raise RuntimeError("a bug in a timer callback")

    try:
        endpoint.schedule(loop.time() + 0.01, bug)
        endpoint.schedule(loop.time() + 0.05, later.set_result)
        transport.pump()
        await asyncio.wait_for(later, 5.0)
    finally:
        await transport.close()
    assert endpoint.stats["internal_errors"] == 1
