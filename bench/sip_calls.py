"""Call set-ups per second (INVITE, 180, 200, ACK, BYE, 200; no media) against a SIPp callee.

Side by side in the same run: SIPp's own caller against the same kind of callee, as the
reference, and the ratio of the two. Our user agent runs in this process (one core, uvloop);
the SIPp callee runs in another process.

    python -m bench.sip_calls [--calls 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import uvloop

from gateway.sip.endpoint import Endpoint, EndpointSettings, TrunkSettings
from gateway.sip.events import CallAnswered, CallEnded, Event
from gateway.sip.sdp import make_offer
from gateway.sip.transport import ListenSpec, SipTransport

ROOT = Path(__file__).resolve().parents[1]
UAS = ROOT / "tests" / "interop" / "sipp" / "uas_load.xml"
BUFFER = "4194304"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_callee(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    sipp = shutil.which("sipp")
    if sipp is None:
        raise SystemExit("bench needs sipp (Debian package sip-tester)")
    argv = [sipp, "-sf", str(UAS), "-i", "127.0.0.1", "-p", str(port)]
    argv += ["-nostdin", "-buff_size", BUFFER]
    proc = subprocess.Popen(argv, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc


async def _ours(port: int, calls: int, window: int) -> dict[str, float]:
    settings = EndpointSettings(user_agent="gateway-bench", session_expires=0)
    trunk = TrunkSettings("load", f"sip:127.0.0.1:{port}", keepalive_interval=0)
    endpoint = Endpoint(settings, [trunk], rng=random.Random(1))
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    state = {"started": 0, "ok": 0, "failed": 0}
    sdp = bytes(make_offer(address="127.0.0.1", port=40000, session_id=1, version=1))

    def place() -> None:
        state["started"] += 1
        endpoint.invite(trunk="load", to_user="bench", from_user="gw", sdp=sdp, now=loop.time())

    def on_event(event: Event) -> None:
        if isinstance(event, CallAnswered):
            endpoint.hangup(event.call_id, loop.time())
        elif isinstance(event, CallEnded):
            endpoint.forget(event.call_id)
            state["ok" if event.answered and event.cause == 200 else "failed"] += 1
            if state["started"] < calls:
                place()
            elif state["ok"] + state["failed"] >= calls and not done.done():
                done.set_result(None)

    transport = SipTransport(endpoint, on_event)
    await transport.listen(ListenSpec("udp", "127.0.0.1", 0))
    start = loop.time()
    for _ in range(min(window, calls)):
        place()
    transport.pump()
    await asyncio.wait_for(done, timeout=max(60.0, calls / 100))
    elapsed = loop.time() - start
    await transport.close()
    return {
        "calls": float(calls),
        "failed": float(state["failed"]),
        "seconds": elapsed,
        "setups_per_s": state["ok"] / elapsed,
    }


def _sipp_reference(port: int, calls: int, window: int, workdir: Path) -> dict[str, float]:
    """SIPp's own caller (built-in uac) against the same callee, as fast as it goes."""
    sipp = shutil.which("sipp")
    assert sipp is not None
    argv = [sipp, f"127.0.0.1:{port}", "-sn", "uac", "-i", "127.0.0.1", "-p", str(_free_port())]
    argv += ["-r", "20000", "-l", str(window), "-m", str(calls), "-d", "0", "-nostdin"]
    argv += ["-buff_size", BUFFER, "-trace_stat", "-stf", str(workdir / "uac.csv"), "-fd", "1"]
    start = time.perf_counter()
    subprocess.run(
        argv,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=300,
        check=False,
    )
    elapsed = time.perf_counter() - start
    rows = [r for r in (workdir / "uac.csv").read_text().splitlines() if r.strip()]
    fields = dict(zip(rows[0].split(";"), rows[-1].split(";"), strict=False))
    ok = int(fields.get("SuccessfulCall(C)", "0") or 0)
    failed = int(fields.get("FailedCall(C)", "0") or 0)
    return {
        "calls": float(calls),
        "failed": float(failed),
        "seconds": elapsed,
        "setups_per_s": ok / elapsed,
    }


def run(calls: int = 20000, window: int = 500) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="gw-bench-") as tmp:
        workdir = Path(tmp)
        port = _free_port()
        callee = _start_callee(port, workdir)
        try:
            ours = uvloop.run(_ours(port, calls, window))
            reference = _sipp_reference(port, calls, window, workdir)
        finally:
            callee.terminate()
            callee.wait(10)
    return {
        "gateway_setups_per_s": round(ours["setups_per_s"], 1),
        "gateway_failed_calls": ours["failed"],
        "sipp_uac_setups_per_s": round(reference["setups_per_s"], 1),
        "sipp_uac_failed_calls": reference["failed"],
        "ratio_gateway_to_sipp": round(ours["setups_per_s"] / reference["setups_per_s"], 3),
        "calls_each": float(calls),
        "concurrent_calls": float(window),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--window", type=int, default=500)
    args = parser.parse_args()
    print(json.dumps(run(args.calls, args.window), indent=2))
