"""Benchmark of whole calls: concurrent calls with media, set-ups per second with decisions,
CPU per call, and the opt-out latency from the key press to the committed opposition.

Phase 1: N contacts, each call answered by SIPp (``uas_answer``), which listens while the
gateway plays a ~10 s message and hangs up: the peak of calls up at once (each sending 50 RTP
packets a second), the set-up rate reached, and the process's CPU time per call.
Phase 2: SIPp callees that press 9 as RFC 4733 events 1.5 s after answering
(``tests/interop/sipp/uas_answer_dtmf.xml``): the time from the key press reaching the
gateway to the opposition being durably written (SQLite, full sync), p50 and p99.

Run: ``python -m bench.calls_media [--calls 1000 --cps 200]``; ``make bench`` calls :func:`run`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from tests.interop.peers import start_sipp_uas
from tests.interop.test_dialer import campaign_toml, dialing, open_test_store, peak_overlap, seed

SCENARIOS = Path(__file__).resolve().parents[1] / "tests" / "interop" / "sipp"
#: About 10 s of speech once synthesised.
MESSAGE = (
    "Nos offres de printemps sont arrivées. Moins vingt pour cent sur tout le magasin, "
    "du lundi au samedi, avec la livraison offerte. Merci de votre attention, et à bientôt."
)


def _numbers(n: int, prefix: str) -> list[str]:
    return [f"+336{prefix}{i:07d}" for i in range(n)]


async def _phase(
    work: Path, scenario: str | Path, calls: int, cps: float, prefix: str
) -> dict[str, float]:
    callee = start_sipp_uas(scenario, work / f"sipp-{prefix}", calls=calls, trace_msg=False)
    try:
        nums = _numbers(calls, prefix)
        store = await open_test_store(work / prefix)
        text = campaign_toml(
            "bench", cps=cps, concurrent=calls, attempts=1, message=MESSAGE, duration=60
        )
        await seed(store, {"bench": text}, {"bench": nums}, nums)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        async with dialing(store, callee.address, work / prefix) as dialer:
            await asyncio.wait_for(dialer.wait_done("bench"), 120 + calls / cps * 3)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        await store.close()
    finally:
        callee.stop()
    records = dialer.records
    invites = sorted(r.invite_at for r in records if r.invite_at is not None)
    span = (invites[-1] - invites[0]).total_seconds() if len(invites) > 1 else 0.0
    latency = sorted(r.optout_latency_ms for r in records if r.optout_latency_ms is not None)
    outcomes: dict[str, float] = {}
    for r in records:
        outcomes[f"outcome_{r.outcome}"] = outcomes.get(f"outcome_{r.outcome}", 0.0) + 1
    figures = {
        "calls": float(calls),
        "setups_per_s": (len(invites) - 1) / span if span else 0.0,
        "peak_concurrent_calls_with_media": float(peak_overlap(records)),
        "cpu_ms_per_call": cpu * 1000 / max(1, len(records)),
        "cpu_share_of_one_core": cpu / wall,
        "rtp_packets_sent": float(sum(r.packets_sent for r in records)),
        **outcomes,
    }
    if latency:
        figures["optout_latency_ms_p50"] = statistics.median(latency)
        figures["optout_latency_ms_p99"] = latency[max(0, int(len(latency) * 0.99) - 1)]
    return figures


async def _bench(calls: int, cps: float, optouts: int, work: Path) -> dict[str, float]:
    load = await _phase(work, "uas_answer", calls, cps, "1")
    opt = await _phase(work, SCENARIOS / "uas_answer_dtmf.xml", optouts, min(cps, 50.0), "2")
    out = {f"load_{k}": round(v, 3) for k, v in load.items()}
    out.update({f"optout_{k}": round(v, 3) for k, v in opt.items()})
    return out


def run(calls: int = 1000, cps: float = 200.0, optouts: int = 200) -> dict[str, float]:
    """``make bench``: both phases on SQLite (about a minute)."""
    with tempfile.TemporaryDirectory(prefix="gw-calls-bench-") as tmp:
        for sub in ("1", "2"):
            (Path(tmp) / sub).mkdir()
        return asyncio.run(_bench(calls, cps, optouts, Path(tmp)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--cps", type=float, default=200.0)
    parser.add_argument("--optouts", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps(run(args.calls, args.cps, args.optouts), indent=2))


if __name__ == "__main__":
    main()
