"""Fixtures for the interop tests: real peers on 127.0.0.1 with free ports (see peers.py).

Each peer fixture is a factory: call it in the test to start a peer; everything it started is
stopped at
teardown. Every peer gets a directory of its own under the test's tmp_path (logs, traces, configs).

    def test_answer(sipp_uas, kamailio_trunk):
        callee = sipp_uas("uas_answer", transport="udp")
        trunk = kamailio_trunk(callee=callee.uri(), algorithm="SHA-256")
        ...  # the gateway dials trunk.uri("tls") with trunk.ca_file, user gw / secret
        assert callee.wait(10) == 0 and callee.stats.ok
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal, Protocol, TypeVar

import pytest

from tests.interop.peers import (
    BaresipCallee,
    KamailioTrunk,
    PeerProcess,
    Pjsua2Callee,
    Sipp,
    TlsCertificates,
    Transport,
    make_tls_certificates,
    start_sipp_uas,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.interop)


P = TypeVar("P", bound=PeerProcess)


class SippUasFactory(Protocol):
    def __call__(
        self,
        scenario: str | Path,
        *,
        port: int | None = None,
        transport: Transport = "udp",
        media_port: int | None = None,
        calls: int | None = 1,
        trace_msg: bool = True,
        extra_args: Sequence[str] = (),
    ) -> Sipp: ...


class KamailioFactory(Protocol):
    def __call__(
        self,
        *,
        callee: str,
        transports: Sequence[Transport] = ("udp", "tcp", "tls"),
        algorithm: Literal["MD5", "SHA-256"] = "MD5",
        children: int = 1,
        extra_args: Sequence[str] = (),
    ) -> KamailioTrunk: ...


class BaresipFactory(Protocol):
    def __call__(
        self, *, user: str = "callee", record_dir: Path | None = None
    ) -> BaresipCallee: ...


class Pjsua2Factory(Protocol):
    def __call__(self, *, tcp: bool = False) -> Pjsua2Callee: ...


class _Started:
    """Peers started by one test, stopped in reverse order at teardown."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.peers: list[PeerProcess] = []
        self._n = itertools.count(1)

    def dir(self, name: str) -> Path:
        path = self.base / f"{name}{next(self._n)}"
        path.mkdir(parents=True)
        return path

    def add(self, peer: P) -> P:
        self.peers.append(peer)
        return peer

    def stop_all(self) -> None:
        for peer in reversed(self.peers):
            peer.stop()


@pytest.fixture(scope="session")
def tls_certificates(tmp_path_factory: pytest.TempPathFactory) -> TlsCertificates:
    """CA + server certificate/key for 127.0.0.1 and localhost (PEM files), for clients and
    listeners."""
    return make_tls_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def sipp_uas(tmp_path: Path) -> Iterator[SippUasFactory]:
    """Start SIPp as a callee: sipp_uas("uas_answer", transport="tcp") -> Sipp (port bound on
    return)."""
    started = _Started(tmp_path)

    def start(
        scenario: str | Path,
        *,
        port: int | None = None,
        transport: Transport = "udp",
        media_port: int | None = None,
        calls: int | None = 1,
        trace_msg: bool = True,
        extra_args: Sequence[str] = (),
    ) -> Sipp:
        return started.add(
            start_sipp_uas(
                scenario,
                started.dir("sipp_uas"),
                port=port,
                transport=transport,
                media_port=media_port,
                calls=calls,
                trace_msg=trace_msg,
                extra_args=extra_args,
            )
        )

    yield start
    started.stop_all()


@pytest.fixture
def kamailio_trunk(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[KamailioFactory]:
    """Start the Kamailio trunk: kamailio_trunk(callee=sipp.uri(), algorithm="SHA-256")."""
    started = _Started(tmp_path)

    def start(
        *,
        callee: str,
        transports: Sequence[Transport] = ("udp", "tcp", "tls"),
        algorithm: Literal["MD5", "SHA-256"] = "MD5",
        children: int = 1,
        extra_args: Sequence[str] = (),
    ) -> KamailioTrunk:
        return started.add(
            KamailioTrunk(
                started.dir("kamailio"),
                callee=callee,
                transports=transports,
                algorithm=algorithm,
                # the session's certificates, made (openssl) only when a trunk wants TLS
                certificates=(
                    request.getfixturevalue("tls_certificates") if "tls" in transports else None
                ),
                children=children,
                extra_args=extra_args,
            )
        )

    yield start
    started.stop_all()


@pytest.fixture
def baresip_callee(tmp_path: Path) -> Iterator[BaresipFactory]:
    """Start baresip auto-answering as sip:callee@127.0.0.1:PORT: baresip_callee()."""
    started = _Started(tmp_path)

    def start(*, user: str = "callee", record_dir: Path | None = None) -> BaresipCallee:
        return started.add(BaresipCallee(started.dir("baresip"), user=user, record_dir=record_dir))

    yield start
    started.stop_all()


@pytest.fixture
def pjsua2_callee(tmp_path: Path) -> Iterator[Pjsua2Factory]:
    """Start the pjsua2 auto-answer callee: pjsua2_callee() -> Pjsua2Callee (READY logged on
    return)."""
    started = _Started(tmp_path)

    def start(*, tcp: bool = False) -> Pjsua2Callee:
        return started.add(Pjsua2Callee(started.dir("pjsua2"), tcp=tcp))

    yield start
    started.stop_all()
