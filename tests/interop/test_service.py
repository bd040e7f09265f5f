"""``gateway run``, the whole service: dialing, the opt-out line, SIGTERM.

In process (``daemon.Gateway``, what ``gateway run`` starts) with a clock set inside the French
calling window, so that the test does not depend on the hour it runs at; and as the real
command in a subprocess for what needs no clock: the opt-out line, and SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gateway.app import Clock, utc_now
from gateway.cli import main
from gateway.config import load, loads
from gateway.daemon import Gateway
from gateway.store import open_store
from tests.interop.conftest import SippUasFactory
from tests.interop.peers import free_port, run_sipp_uac
from tests.interop.test_outbound import ADVERTISER, CAMPAIGN, KEY, NOW, RECORDS

NUMBERS = ["+33612345678"]


def write_config(tmp: Path, callee: str, sip_port: int, grace: float = 2.0) -> Path:
    config = tmp / "gateway.toml"
    config.write_text(
        f'[sip]\nlisten = ["udp:127.0.0.1:{sip_port}"]\n'
        f'[trunks.callee]\nuri = "sip:{callee}"\nkeepalive_interval = 0\n'
        'allowed_sources = ["127.0.0.1"]\n'
        "[media]\nrtp_port_min = 34000\nrtp_port_max = 34999\n"
        f'[store]\nurl = "sqlite:///{tmp}/gw.db"\n'
        f'[consent]\nopposition_key = "{KEY.decode()}"\n'
        f'[run]\nshutdown_grace = {grace}\nwork_dir = "{tmp}/prompts"\n',
        encoding="utf-8",
    )
    for name, text in (
        ("adv.toml", ADVERTISER),
        ("c.toml", CAMPAIGN.format(profile="fr")),
        ("r.csv", RECORDS),
        ("contacts.csv", "number\n" + "\n".join(NUMBERS) + "\n"),
    ):
        (tmp / name).write_text(text, encoding="utf-8")
    return config


async def setup(config: Path, tmp: Path, *, start: bool, clock: Clock = utc_now) -> None:
    steps = [
        ["advertiser", "add", str(tmp / "adv.toml")],
        ["campaign", "add", str(tmp / "c.toml")],
        ["consent", "import", str(tmp / "r.csv")],
        ["contacts", "import", "spring-offer", str(tmp / "contacts.csv")],
    ]
    if start:
        steps.append(["campaign", "start", "spring-offer"])
    for argv in steps:
        code = await asyncio.to_thread(main, [*argv, "--config", str(config)], clock=clock)
        assert code == 0, argv


async def test_service_dials_and_sigterm_grace_hangs_up_what_is_left(
    sipp_uas: SippUasFactory, tmp_path: Path
) -> None:
    # The callee answers and then waits for our BYE (up to 60 s): the call is in progress
    # when the service is told to stop; after the grace period it is hung up and recorded.
    callee = sipp_uas("uas_answer")
    config_path = write_config(tmp_path, callee.address, free_port())
    # One clock, inside the French calling window, for the commands and the service alike.
    loop = asyncio.get_running_loop()
    origin = loop.time()

    def clock() -> datetime:
        return NOW + timedelta(seconds=loop.time() - origin)

    await setup(config_path, tmp_path, start=True, clock=clock)
    config = load(config_path)
    answered = asyncio.Event()
    gateway = await Gateway.start(config, clock=clock, poll_interval=0.1)
    try:
        for _ in range(200):
            await asyncio.sleep(0.05)
            if callee.received("ACK "):
                answered.set()
                break
    finally:
        await gateway.stop(grace=0.5)  # whatever happened: the store and sockets are closed
    assert answered.is_set(), "the service never dialled"
    assert gateway.dialer is not None
    (record,) = gateway.dialer.records
    assert record.number == NUMBERS[0] and record.answered_at is not None
    assert record.ended_by == "gateway" and record.bye_at is not None
    assert await callee.wait_async(10) == 0, callee.stats  # our BYE came, answered 200
    store = await open_store(config.store.url, KEY)
    try:
        rows = await store.attempts_for(NUMBERS[0])
        assert rows and await store.verify_audit() == []
    finally:
        await store.close()


def test_gateway_run_answers_the_optout_line_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, "127.0.0.1:9", port)
    asyncio.run(setup(config, tmp_path, start=False))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        # Wait for the service to be up: it logs once its opt-out line and dialer are ready.
        for line in proc.stdout:
            if "gateway running" in line:
                break
        stats = run_sipp_uac(
            "uac_optout_line",
            f"127.0.0.1:{port}",
            tmp_path / "caller",
            service="+33162000001",
            timeout=30,
        )
        assert stats.ok, stats
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=15)
        finally:
            proc.kill()
    assert code == 0

    async def opposed() -> bool:
        store = await open_store(f"sqlite:///{tmp_path}/gw.db", KEY)
        try:
            return await store.is_opposed("+33612345678", "maison-dupont")
        finally:
            await store.close()

    assert asyncio.run(opposed())


async def test_a_start_that_fails_partway_closes_what_it_had_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SIP socket, the media engine and the temporary folder are up when the store fails
    # to open (its folder does not exist): all of them are closed again, and nothing is left
    # running (the suite's fixture fails a test that leaves a thread or a process behind).
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    port = free_port()
    config = loads(
        f'[sip]\nlisten = ["udp:127.0.0.1:{port}"]\n'
        '[trunks.callee]\nuri = "sip:127.0.0.1:9"\nkeepalive_interval = 0\n'
        f'[store]\nurl = "sqlite:///{tmp_path}/missing/gw.db"\n'
        f'[consent]\nopposition_key = "{KEY.decode()}"\n'
    )
    with pytest.raises(Exception, match="unable to open database file"):
        await Gateway.start(config)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", port))  # the SIP port is free again
    assert not any(p.name.startswith("gateway-") for p in os.scandir(tmp_path))  # folder gone
