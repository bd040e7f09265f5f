"""Benchmark of the dialer: call set-ups per second with a compliance decision before each.

N contacts with consent in one campaign whose pacing is set above what is measured; SIPp
(``uas_answer``) answers every call, which then plays a short announcement and ends. Reports the
INVITE rate reached, the time from the decision to the INVITE (p50, p99), the peak of concurrent
calls and the outcome counts. Prints one JSON object.

Run: ``python -m bench.dialer_setups --calls 400 --cps 200``; ``make bench`` calls :func:`run`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
from pathlib import Path

from tests.interop.peers import start_sipp_uas
from tests.interop.test_dialer import campaign_toml, dialing, open_test_store, peak_overlap, seed

from gateway.consent.model import Decision


def _numbers(n: int) -> list[str]:
    return [f"+3361{i:07d}" for i in range(n)]


async def _bench(calls: int, cps: float, work: Path) -> dict[str, float]:
    callee = start_sipp_uas("uas_answer", work / "sipp", calls=calls, trace_msg=False)
    try:
        nums = _numbers(calls)
        store = await open_test_store(work)
        campaign = campaign_toml("bench", cps=cps, concurrent=calls, attempts=1)
        await seed(store, {"bench": campaign}, {"bench": nums}, nums)
        decided: dict[str, Decision] = {}
        async with dialing(store, callee.address, work, on_decision=lambda d: decided.update(
                {d.number: d})) as dialer:  # fmt: skip
            await asyncio.wait_for(dialer.wait_done("bench"), 60 + calls / cps * 3)
        await store.close()
    finally:
        callee.stop()
    records = dialer.records
    invites = sorted(r.invite_at for r in records if r.invite_at is not None)
    span = (invites[-1] - invites[0]).total_seconds() if len(invites) > 1 else 0.0
    lag = sorted(
        (r.invite_at - at).total_seconds() * 1000
        for r in records
        if r.invite_at is not None and (at := decided[r.number].decided_at) is not None
    )
    completed = sum(r.outcome == "completed" for r in records)
    return {
        "calls": float(calls),
        "cps_asked": cps,
        "invites_per_second": (len(invites) - 1) / span if span else 0.0,
        "decision_to_invite_ms_p50": statistics.median(lag) if lag else 0.0,
        "decision_to_invite_ms_p99": lag[int(len(lag) * 0.99) - 1] if lag else 0.0,
        "peak_concurrent_calls": float(peak_overlap(records)),
        "completed": float(completed),
        "not_completed": float(len(records) - completed),
    }


def run(calls: int = 400, cps: float = 200.0) -> dict[str, float]:
    """``make bench``: the dialer's set-up rate with decisions, on SQLite."""
    with tempfile.TemporaryDirectory(prefix="gw-dialer-bench-") as tmp:
        (Path(tmp) / "sipp").mkdir()
        return asyncio.run(_bench(calls, cps, Path(tmp)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--cps", type=float, default=200.0)
    args = parser.parse_args()
    print(json.dumps(run(args.calls, args.cps), indent=2))


if __name__ == "__main__":
    main()
