"""Real SIP peers for the interop tests: SIPp, Kamailio, baresip and pjsua2, all on 127.0.0.1.

Every peer runs as a child process in a temporary directory of its own, on free ports (never 5060),
and is waited for by observing it (a socket bound in /proc/net, or a line in its log), never by
sleeping. A missing peer binary fails the test (never a skip), naming
the binary and its Debian package. The pytest fixtures built on these classes are in
conftest.py next to this file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

HERE = Path(__file__).resolve().parent
SIPP_DIR = HERE / "sipp"
KAMAILIO_CFG = HERE / "kamailio" / "kamailio-trunk.cfg"
BARESIP_DIR = HERE / "baresip"
PJSUA2_CALLEE = HERE / "pjsua2_callee.py"

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 10.0  # seconds for a peer to bind its sockets / print its READY line
POLL_INTERVAL = 0.02

Transport = Literal["udp", "tcp", "tls"]

# Command-line options a scenario needs to work as described in its header comment.
# uas_lost_200.xml: -nr, or SIPp's own retransmission detection swallows the caller's re-ACK
# (identical to the
# first ACK) and answers it by re-sending the 200 again, ping-pong, instead of passing it to <recv
# request="ACK">.
SCENARIO_ARGS: dict[str, tuple[str, ...]] = {"uas_lost_200.xml": ("-nr",)}


class PeerError(RuntimeError):
    """A peer did not start, exited early or did not finish in time; the message has its log."""


def missing_peer(what: str) -> None:
    """A peer is not installed: the test fails, naming what to install. Never returns.

    Never a skip, in CI or not: a green run must mean the gateway met the real peers.
    """
    pytest.fail(f"interop peer missing: {what}", pytrace=False)


def require_binary(name: str, package: str) -> str:
    """Absolute path of a peer binary, or fail naming it and its Debian package."""
    path = shutil.which(name)
    if path is None:
        missing_peer(f"binary {name!r} not found on PATH (apt-get install {package})")
        raise AssertionError("unreachable")  # pragma: no cover - missing_peer raises
    return path


# ------------------------------------------------------------------------------------------- ports

_handed_out: set[int] = set()
_ports_lock = threading.Lock()


def _bindable(port: int, kinds: Iterable[int]) -> bool:
    socks: list[socket.socket] = []
    try:
        for kind in kinds:
            s = socket.socket(socket.AF_INET, kind)
            socks.append(s)
            s.bind((LOOPBACK, port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def _port_pool() -> list[int]:
    """Ports below the kernel's ephemeral range, minus 26000-26999 (baresip's RTP range).

    The kernel hands ephemeral ports to connect() and bind(0) at any time: one taken from there
    could be grabbed by someone's outgoing socket before our peer binds it.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return [p for p in range(10000, min(low, 65536)) if not 26000 <= p < 27000]


_POOL = _port_pool()
_random = random.Random(os.getpid() ^ time.monotonic_ns())


def free_port(*, udp: bool = True, tcp: bool = True) -> int:
    """A loopback port free for UDP and/or TCP now, never handed out before in this process.

    Drawn at random below the ephemeral range (see _port_pool), so parallel test runs do not collide
    on fixed numbers and no outgoing connection takes it between this call and the peer's bind().
    """
    kinds = ([socket.SOCK_DGRAM] if udp else []) + ([socket.SOCK_STREAM] if tcp else [])
    if not kinds:
        raise ValueError("free_port needs udp or tcp")
    for _ in range(500):
        if len(_POOL) > 1000:
            port = _random.choice(_POOL)
        else:  # odd ip_local_port_range: let the kernel choose
            with socket.socket(socket.AF_INET, kinds[0]) as s:
                s.bind((LOOPBACK, 0))
                port = int(s.getsockname()[1])
        with _ports_lock:
            if port in _handed_out or not _bindable(port, kinds):
                continue
            _handed_out.add(port)
            return port
    raise PeerError("no free loopback port found")


def free_media_port() -> int:
    """An even UDP port P with P..P+3 free (SIPp binds the audio port and audio+2 for video)."""
    for _ in range(200):
        port = free_port(udp=True, tcp=False)
        if port % 2 or port > 65530:
            continue
        if all(_bindable(p, [socket.SOCK_DGRAM]) for p in range(port + 1, port + 4)):
            with _ports_lock:
                _handed_out.update(range(port + 1, port + 4))
            return port
    raise PeerError("no free media port range found")


def bound_ports(proto: Literal["udp", "tcp"]) -> set[int]:
    """Local ports with a bound UDP socket, or a listening TCP socket, from /proc/net (IPv4 and
    IPv6)."""
    ports: set[int] = set()
    for suffix in ("", "6"):
        path = Path(f"/proc/net/{proto}{suffix}")
        try:
            lines = path.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 4:
                continue
            if proto == "tcp" and fields[3] != "0A":  # 0A = LISTEN
                continue
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


# ---------------------------------------------------------------------------------- peer processes


class PeerProcess:
    """A child process with its own work dir and a log file (stdout and stderr together)."""

    name = "peer"

    def __init__(
        self,
        argv: Sequence[str],
        workdir: Path,
        *,
        env: dict[str, str] | None = None,
        name: str | None = None,
    ) -> None:
        if name is not None:
            self.name = name
        self.argv = [str(a) for a in argv]
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"{self.name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.argv,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: stop() can end its children too
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def _fail(self, what: str) -> PeerError:
        return PeerError(
            f"{self.name} {what}\ncommand: {' '.join(self.argv)}\n"
            f"log {self.log_path}:\n{self.log_tail()}"
        )

    def wait_bound(
        self, *, udp: Iterable[int] = (), tcp: Iterable[int] = (), timeout: float = START_TIMEOUT
    ) -> None:
        """Poll /proc/net until the UDP ports are bound and the TCP ports listen (or the process
        died)."""
        want_udp, want_tcp = set(udp), set(tcp)
        deadline = time.monotonic() + timeout
        while True:
            missing_udp = want_udp - bound_ports("udp") if want_udp else set()
            missing_tcp = want_tcp - bound_ports("tcp") if want_tcp else set()
            if not missing_udp and not missing_tcp:
                return
            if self.proc.poll() is not None:
                raise self._fail(f"exited with {self.proc.returncode} before binding its ports")
            if time.monotonic() > deadline:
                raise self._fail(
                    f"did not bind udp {sorted(missing_udp)} tcp {sorted(missing_tcp)} "
                    f"in {timeout} s"
                )
            time.sleep(POLL_INTERVAL)

    def wait_for_log(self, pattern: str, timeout: float = START_TIMEOUT) -> re.Match[str]:
        """Poll the log until the regular expression `pattern` matches a line; returns the match."""
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            m = regex.search(self.log())
            if m:
                return m
            if self.proc.poll() is not None:
                m = regex.search(self.log())
                if m:
                    return m
                raise self._fail(f"exited with {self.proc.returncode} before logging {pattern!r}")
            if time.monotonic() > deadline:
                raise self._fail(f"did not log {pattern!r} in {timeout} s")
            time.sleep(POLL_INTERVAL)

    async def wait_for_log_async(
        self, pattern: str, seconds: float = START_TIMEOUT
    ) -> re.Match[str]:
        """wait_for_log for asyncio tests: does not block the event loop the gateway runs in."""
        return await asyncio.to_thread(self.wait_for_log, pattern, seconds)

    stop_signal = signal.SIGTERM

    def stop(self, timeout: float = 5.0) -> int:
        """Signal the process (stop_signal), then SIGKILL its process group after `timeout`."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(self.stop_signal)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        else:  # leftover children of a group leader that exited (kamailio workers)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()
        return self.proc.returncode


# -------------------------------------------------------------------------------------------- SIPp


@dataclass(frozen=True)
class SippStats:
    """What SIPp says about its calls: exit code, counters from -trace_stat, errors from -trace_err.

    returncode: 0 all calls succeeded, 1 at least one failed, 97 stopped by command, 99 no call
    processed,
    255/254 fatal (e.g. could not bind); None while running.
    """

    returncode: int | None
    successful: int
    failed: int
    errors: str = ""
    counters: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.failed == 0 and self.successful > 0


def resolve_scenario(scenario: str | Path) -> Path:
    """An existing path as is; a bare name ("uas_answer" or "uas_answer.xml") from
    tests/interop/sipp/."""
    path = Path(scenario)
    if path.exists():
        return path.resolve()
    name = path.name if path.suffix == ".xml" else f"{path.name}.xml"
    candidate = SIPP_DIR / name
    if not candidate.exists():
        raise FileNotFoundError(f"SIPp scenario {scenario!r} not found (looked in {SIPP_DIR})")
    return candidate


def _sipp_transport_flag(transport: str) -> str:
    if transport == "udp":
        return "u1"
    if transport == "tcp":
        return "t1"
    if transport == "tls":
        # Debian 12's sip-tester 3.6.1 is built without OpenSSL ("SIPp v3.6.1-SCTP-PCAP-RTPSTREAM"):
        # `sipp -t l1` exits with "To use a TLS transport you must compile SIPp with OpenSSL".
        raise PeerError(
            "SIPp 3.6.1 from Debian 12 has no TLS (-t l1): use Kamailio's TLS port instead"
        )
    raise ValueError(f"unknown transport {transport!r}")


class Sipp(PeerProcess):
    """One SIPp run (callee or caller) with stats, errors, messages and logs traced into its work
    dir."""

    name = "sipp"
    stop_signal = signal.SIGINT  # SIPp quits gracefully and writes its final stats

    def __init__(
        self,
        scenario: str | Path,
        workdir: Path,
        *,
        remote: str | None = None,
        port: int | None = None,
        transport: Transport = "udp",
        media_port: int | None = None,
        calls: int | None = 1,
        service: str | None = None,
        trace_msg: bool = True,
        extra_args: Sequence[str] = (),
        name: str = "sipp",
    ) -> None:
        binary = require_binary("sipp", "sip-tester")
        self.scenario = resolve_scenario(scenario)
        self.transport: Transport = transport
        self.host = LOOPBACK
        self.port = port if port is not None else free_port()
        self.media_port = media_port if media_port is not None else free_media_port()
        self.stat_path = workdir / "sipp_stat.csv"
        self.error_path = workdir / "sipp_errors.log"
        self.msg_path = workdir / "sipp_messages.log"
        self.logs_path = workdir / "sipp_logs.log"
        argv: list[str] = [binary]
        if remote is not None:
            argv.append(remote)
        argv += ["-sf", str(self.scenario), "-t", _sipp_transport_flag(transport)]
        argv += ["-i", LOOPBACK, "-p", str(self.port), "-mi", LOOPBACK, "-mp", str(self.media_port)]
        if calls is not None:  # None: no -m, SIPp runs until stop()
            argv += ["-m", str(calls)]
        argv += ["-nostdin", "-trace_stat", "-stf", str(self.stat_path), "-fd", "1"]
        argv += ["-trace_err", "-error_file", str(self.error_path)]
        argv += ["-trace_logs", "-log_file", str(self.logs_path)]
        if trace_msg:
            argv += ["-trace_msg", "-message_file", str(self.msg_path)]
        if service is not None:
            argv += ["-s", service]
        argv += list(SCENARIO_ARGS.get(self.scenario.name, ()))
        argv += list(extra_args)
        super().__init__(argv, workdir, name=name)

    def uri(self, user: str = "callee") -> str:
        """Where a caller dials this SIPp: sip:user@127.0.0.1:PORT[;transport=tcp]."""
        suffix = "" if self.transport == "udp" else f";transport={self.transport}"
        return f"sip:{user}@{self.host}:{self.port}{suffix}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def wait(self, timeout: float) -> int:
        """Wait for SIPp to exit (after its -m calls) and return its exit code; PeerError on
        timeout."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise self._fail(f"still running after {timeout} s; stats {self.stats}") from None

    def wait_for_calls(self, count: int, timeout: float) -> SippStats:
        """Poll the stats (-fd 1: rewritten each second) until `count` calls ended, good or bad.

        For a SIPp that runs without a call limit (calls=None), e.g. the uas_load farm, whose calls
        only count once their 4 s <timewait> is over.
        """
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats
            if stats.successful + stats.failed >= count:
                return stats
            if self.proc.poll() is not None:
                raise self._fail(f"exited with {self.proc.returncode} after {stats}")
            if time.monotonic() > deadline:
                raise self._fail(f"saw {stats} and not {count} calls in {timeout} s")
            time.sleep(POLL_INTERVAL * 5)

    async def wait_async(self, seconds: float) -> int:
        """wait() for asyncio tests: does not block the event loop the gateway runs in."""
        return await asyncio.to_thread(self.wait, seconds)

    @property
    def stats(self) -> SippStats:
        counters: dict[str, str] = {}
        try:
            rows = [r for r in self.stat_path.read_text().splitlines() if r.strip()]
        except OSError:
            rows = []
        if len(rows) >= 2:
            counters = dict(zip(rows[0].split(";"), rows[-1].split(";"), strict=False))

        def num(key: str) -> int:
            try:
                return int(counters.get(key, "0") or 0)
            except ValueError:
                return 0

        return SippStats(
            returncode=self.proc.poll(),
            successful=num("SuccessfulCall(C)"),
            failed=num("FailedCall(C)"),
            errors=self.errors,
            counters=counters,
        )

    @property
    def errors(self) -> str:
        return _read(self.error_path)

    @property
    def messages(self) -> str:
        """Every SIP message SIPp sent and received (-trace_msg), for assertions on the wire."""
        return _read(self.msg_path)

    @property
    def logs(self) -> str:
        """Lines the scenario wrote with <log message=.../> (-trace_logs)."""
        return _read(self.logs_path)

    def received(self, first_line_prefix: str) -> list[str]:
        """Messages SIPp received whose first line starts with the prefix (e.g. "ACK ", "SIP/2.0
        200")."""
        out: list[str] = []
        for block in re.split(r"^-{20,}[^\n]*\n", self.messages, flags=re.MULTILINE):
            head, _, body = block.partition("\n")
            if "message received" in head:
                msg = body.lstrip("\n")
                if msg.startswith(first_line_prefix):
                    out.append(msg)
        return out


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def start_sipp_uas(
    scenario: str | Path,
    workdir: Path,
    *,
    port: int | None = None,
    transport: Transport = "udp",
    media_port: int | None = None,
    calls: int | None = 1,
    trace_msg: bool = True,
    extra_args: Sequence[str] = (),
) -> Sipp:
    """SIPp as a callee: started, its SIP port bound (UDP, or TCP listening) on return."""
    sipp = Sipp(
        scenario,
        workdir,
        port=port,
        transport=transport,
        media_port=media_port,
        calls=calls,
        trace_msg=trace_msg,
        extra_args=extra_args,
        name="sipp_uas",
    )
    if transport == "tcp":
        sipp.wait_bound(tcp=[sipp.port])
    else:
        sipp.wait_bound(udp=[sipp.port])
    return sipp


def run_sipp_uac(
    scenario: str | Path,
    target: str,
    workdir: Path,
    *,
    service: str = "callee",
    transport: Transport = "udp",
    calls: int | None = 1,
    timeout: float = 30.0,
    extra_args: Sequence[str] = (),
) -> SippStats:
    """Run SIPp's own caller against host:port until it exits (at most `timeout`); its stats."""
    sipp = Sipp(
        scenario,
        workdir,
        remote=target,
        transport=transport,
        calls=calls,
        service=service,
        extra_args=extra_args,
        name="sipp_uac",
    )
    try:
        sipp.wait(timeout)
    finally:
        sipp.stop()
    return sipp.stats


# ------------------------------------------------------------------------------------ certificates


@dataclass(frozen=True)
class TlsCertificates:
    """A throw-away CA and a server certificate for 127.0.0.1 and localhost (EC P-256)."""

    directory: Path
    ca_file: Path  # PEM: give this to a client's verify_locations / cafile
    ca_key: Path
    cert_file: (
        Path  # PEM: server certificate (SAN IP:127.0.0.1, DNS:localhost; serverAuth+clientAuth)
    )
    key_file: Path  # PEM: its private key (unencrypted)

    def client_context(self) -> ssl.SSLContext:
        """Verifies the peer against our CA and checks the host name (as a real client does)."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca_file))
        return ctx

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        return ctx


def make_tls_certificates(directory: Path) -> TlsCertificates:
    """Generate the CA and the server certificate with the openssl command (takes ~50 ms)."""
    openssl = require_binary("openssl", "openssl")
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_file = directory / "ca.key", directory / "ca.pem"
    key_file, csr, cert_file = (
        directory / "server.key",
        directory / "server.csr",
        directory / "server.pem",
    )
    ext = directory / "server.ext"
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    steps: list[list[str]] = [
        [openssl, "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca_file), "-days", "3",
         "-subj", "/CN=gateway interop test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        [openssl, "req", *ec, "-keyout", str(key_file), "-out", str(csr), "-subj", "/CN=127.0.0.1"],
        [openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca_file), "-CAkey", str(ca_key),
         "-CAcreateserial", "-out", str(cert_file), "-days", "3", "-extfile", str(ext)],
    ]  # fmt: skip
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PeerError(f"{' '.join(argv)} failed:\n{done.stderr}")
    return TlsCertificates(directory, ca_file, ca_key, cert_file, key_file)


# ---------------------------------------------------------------------------------------- Kamailio


class KamailioTrunk(PeerProcess):
    """The test trunk (tests/interop/kamailio/kamailio-trunk.cfg): digest auth, Record-Route,
    UDP/TCP/TLS."""

    name = "kamailio"
    username = "gw"
    password = "secret"
    realm = "trunk.test"

    def __init__(
        self,
        workdir: Path,
        *,
        callee: str,
        transports: Sequence[Transport] = ("udp", "tcp", "tls"),
        algorithm: Literal["MD5", "SHA-256"] = "MD5",
        certificates: TlsCertificates | None = None,
        children: int = 1,
        extra_args: Sequence[str] = (),
    ) -> None:
        binary = require_binary("kamailio", "kamailio")
        if algorithm not in ("MD5", "SHA-256"):
            raise ValueError(f"algorithm must be MD5 or SHA-256, not {algorithm!r}")
        unknown = set(transports) - {"udp", "tcp", "tls"}
        if unknown or not transports:
            raise ValueError(f"transports must be among udp, tcp, tls: {transports!r}")
        self.host = LOOPBACK
        self.callee = callee
        self.algorithm = algorithm
        self.transports = tuple(transports)
        self.udp_port: int | None = None
        self.tcp_port: int | None = None
        self.tls_port: int | None = None
        self.ca_file: Path | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        self.ctl_socket = workdir / "ctl.sock"
        if "udp" in transports or "tcp" in transports:
            # one number for UDP and TCP, as a SIP server usually has
            port = free_port()
            self.udp_port = port if "udp" in transports else None
            self.tcp_port = port if "tcp" in transports else None
        defines = {
            "CALLEE_ADDR": f'"{callee}"',
            "AUTH_ALGO": f'"{algorithm}"',
            "CTL_SOCK": f'"unix:{self.ctl_socket}"',
            # UDP workers: 1 keeps a callee's back-to-back 180 and 200 in order (see the cfg)
            "TRUNK_CHILDREN": str(children),
        }
        listen: list[str] = []
        if self.udp_port is not None:
            listen += ["-l", f"udp:{LOOPBACK}:{self.udp_port}"]
        if self.tcp_port is not None:
            listen += ["-l", f"tcp:{LOOPBACK}:{self.tcp_port}"]
        if "tls" in transports:
            if certificates is None:
                raise ValueError(
                    "TLS needs certificates (make_tls_certificates / tls_certificates fixture)"
                )
            require_kamailio_module("tls.so", "kamailio-tls-modules")
            self.tls_port = free_port(udp=False, tcp=True)
            self.ca_file = certificates.ca_file
            listen += ["-l", f"tls:{LOOPBACK}:{self.tls_port}"]
            defines["TLS_CERT"] = f'"{certificates.cert_file}"'
            defines["TLS_KEY"] = f'"{certificates.key_file}"'
            defines["TLS_CA"] = f'"{certificates.ca_file}"'
        argv: list[str] = [binary, "-f", str(KAMAILIO_CFG), "-DD", "-E", "-m", "64", "-M", "8"]
        argv += ["-Y", str(workdir), "-P", str(workdir / "kamailio.pid"), "-w", str(workdir)]
        argv += listen
        if "tls" in transports:
            argv += ["-A", "WITH_TLS"]
        for key, value in defines.items():
            argv += ["-A", f"{key}={value}"]
        argv += list(extra_args)
        super().__init__(argv, workdir)
        self.wait_bound(
            udp=[p for p in [self.udp_port] if p is not None],
            tcp=[p for p in [self.tcp_port, self.tls_port] if p is not None],
        )

    def port(self, transport: Transport) -> int:
        port = {"udp": self.udp_port, "tcp": self.tcp_port, "tls": self.tls_port}[transport]
        if port is None:
            raise PeerError(
                f"this Kamailio does not listen on {transport} (transports={self.transports})"
            )
        return port

    def uri(self, transport: Transport = "udp", user: str | None = None) -> str:
        """The trunk as a SIP URI: sip:[user@]127.0.0.1:PORT[;transport=tcp|tls]."""
        port = self.port(transport)
        userpart = f"{user}@" if user else ""
        suffix = "" if transport == "udp" else f";transport={transport}"
        return f"sip:{userpart}{self.host}:{port}{suffix}"

    def address(self, transport: Transport = "udp") -> str:
        return f"{self.host}:{self.port(transport)}"

    def kamcmd(self, *args: str, timeout: float = 5.0) -> str:
        """Run kamcmd against this instance's ctl socket (e.g. kamcmd("ul.dump"))."""
        binary = require_binary("kamcmd", "kamailio")
        done = subprocess.run(
            [binary, "-s", f"unix:{self.ctl_socket}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise PeerError(f"kamcmd {' '.join(args)} failed: {done.stderr or done.stdout}")
        return done.stdout


def require_kamailio_module(module: str, package: str) -> None:
    for base in ("/usr/lib/x86_64-linux-gnu/kamailio/modules", "/usr/lib/kamailio/modules"):
        if Path(base, module).exists():
            return
    hits = list(Path("/usr/lib").glob(f"*/kamailio/modules/{module}"))
    if not hits:
        missing_peer(f"Kamailio module {module} not found (apt-get install {package})")


# ----------------------------------------------------------------------------------------- baresip


class BaresipCallee(PeerProcess):
    """baresip 1.0 as an auto-answering callee (user "callee"), tone as audio, DTMF on command.

    Runs from a tmp copy of tests/interop/baresip/ with
    sip_listen, ctrl_tcp_listen and the account line rewritten to free ports.
    """

    name = "baresip"

    def __init__(
        self,
        workdir: Path,
        *,
        sip_port: int | None = None,
        ctrl_port: int | None = None,
        user: str = "callee",
        record_dir: Path | None = None,
    ) -> None:
        binary = require_binary("baresip", "baresip-core")
        self.host = LOOPBACK
        self.user = user
        self.sip_port = sip_port if sip_port is not None else free_port()
        self.ctrl_port = ctrl_port if ctrl_port is not None else free_port(udp=False, tcp=True)
        confdir = workdir / "baresip"
        shutil.copytree(BARESIP_DIR, confdir, dirs_exist_ok=True)
        config = (confdir / "config").read_text()
        config = re.sub(
            r"(?m)^sip_listen\s.*$", f"sip_listen\t\t{LOOPBACK}:{self.sip_port}", config
        )
        config = re.sub(
            r"(?m)^ctrl_tcp_listen\s.*$", f"ctrl_tcp_listen\t\t{LOOPBACK}:{self.ctrl_port}", config
        )
        if record_dir is not None:
            # baresip's sndfile module writes what it hears (decoded) to dump-*-dec.wav there.
            record_dir.mkdir(parents=True, exist_ok=True)
            config += f"\nmodule\t\t\tsndfile.so\nsnd_path\t\t{record_dir}\n"
        self.record_dir = record_dir
        (confdir / "config").write_text(config)
        accounts = (confdir / "accounts").read_text()
        accounts = re.sub(
            r"<sip:callee@[^>]*>", f"<sip:{user}@{LOOPBACK}:{self.sip_port}>", accounts
        )
        (confdir / "accounts").write_text(accounts)
        super().__init__([binary, "-f", str(confdir)], workdir)
        self.wait_bound(udp=[self.sip_port], tcp=[self.sip_port, self.ctrl_port])

    @property
    def uri(self) -> str:
        """sip:USER@127.0.0.1:PORT -- baresip answers 404 for any other user part."""
        return f"sip:{self.user}@{self.host}:{self.sip_port}"

    def uri_for(self, transport: Literal["udp", "tcp"]) -> str:
        return self.uri if transport == "udp" else f"{self.uri};transport=tcp"

    def command(self, command: str, params: str = "", timeout: float = 3.0) -> dict[str, Any]:
        """One ctrl_tcp command (netstring-framed JSON, as ctl.py); baresip's response object."""
        body = json.dumps({"command": command, "params": params, "token": "t1"}).encode()
        buf = b""
        with socket.create_connection((self.host, self.ctrl_port), timeout=timeout) as s:
            s.sendall(b"%d:%s," % (len(body), body))
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while b":" in buf:
                    size_text, _, rest = buf.partition(b":")
                    size = int(size_text)
                    if len(rest) < size + 1:
                        break
                    msg: dict[str, Any] = json.loads(rest[:size])
                    buf = rest[size + 1 :]
                    if msg.get("response"):
                        return msg
        raise PeerError(f"baresip gave no response to {command!r} {params!r}")

    async def command_async(self, command: str, params: str = "") -> dict[str, Any]:
        """command() for asyncio tests: does not block the event loop the gateway runs in."""
        return await asyncio.to_thread(self.command, command, params)

    def sndcode(self, digit: str) -> dict[str, Any]:
        """Press a key on the current call (RFC 4733 telephone-event, the PT the caller offered)."""
        return self.command("sndcode", digit)

    def hangup(self) -> dict[str, Any]:
        return self.command("hangup")

    def listcalls(self) -> dict[str, Any]:
        return self.command("listcalls")

    def active_calls(self) -> int:
        """How many calls baresip has now ("--- Active calls (N) ---" from listcalls)."""
        m = re.search(r"Active calls \((\d+)\)", str(self.listcalls().get("data", "")))
        if m is None:
            raise PeerError(f"unexpected listcalls answer: {self.listcalls()}")
        return int(m.group(1))


# ------------------------------------------------------------------------------------------ pjsua2


class Pjsua2Callee(PeerProcess):
    """tests/interop/pjsua2_callee.py in a subprocess: PJSIP's stack answering every INVITE with
    200.

    Its log has one line per call state change: "CALL <n> state=<STATE> ... last_status=<code>".
    """

    name = "pjsua2"

    def __init__(self, workdir: Path, *, port: int | None = None, tcp: bool = False) -> None:
        try:
            import pjsua2  # noqa: F401  (checks the wheel is installed in this interpreter)
        except ImportError:
            missing_peer("Python module pjsua2 (pip install pjsua2-python)")
        self.host = LOOPBACK
        self.tcp = tcp
        self.sip_port = port if port is not None else free_port()
        argv = [sys.executable, "-u", str(PJSUA2_CALLEE), "--port", str(self.sip_port)]
        if tcp:
            argv.append("--tcp")
        super().__init__(argv, workdir)
        self.wait_for_log(r"^READY port=(\d+)")

    @property
    def uri(self) -> str:
        return f"sip:callee@{self.host}:{self.sip_port}"

    def uri_for(self, transport: Literal["udp", "tcp"]) -> str:
        return self.uri if transport == "udp" else f"{self.uri};transport=tcp"

    def call_states(self) -> list[str]:
        """The call state changes logged so far, e.g. ["INCOMING", "EARLY", "CONNECTING", ...]."""
        return re.findall(r"^CALL \S+ state=(\S+)", self.log(), flags=re.MULTILINE)
