"""Several processes deciding for the same number at the same instant allow exactly the cap.

Each process opens its own store (its own SQLite connection, or its own PostgreSQL pool, as a
separate gateway node would), waits at a barrier, then fires its decisions concurrently.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from datetime import timedelta
from multiprocessing.synchronize import Barrier

from gateway.store import decide_and_reserve
from tests.consent.helpers import MOBILE, MONDAY_11_PARIS, record
from tests.store.conftest import Backend

PROCESSES = 4
PER_PROCESS = 5


def _node(backend: Backend, barrier: Barrier, out: multiprocessing.Queue[int]) -> None:
    async def run() -> int:
        store = await backend.open()
        try:
            barrier.wait(timeout=60)
            results = await asyncio.gather(
                *(
                    decide_and_reserve(
                        store, "spring-offer", MOBILE,
                        MONDAY_11_PARIS + timedelta(seconds=i), budget=30.0,
                    )
                    for i in range(PER_PROCESS)
                )
            )  # fmt: skip
            assert all(d.rule != "store" for d in results), [d.reason for d in results]
            return sum(d.allowed for d in results)
        finally:
            await store.close()

    out.put(asyncio.run(run()))


async def test_processes_racing_allow_exactly_the_cap(backend: Backend) -> None:
    from tests.consent.helpers import FR_ADVERTISER, FR_CAMPAIGN

    store = await backend.open()
    await store.put_advertiser(FR_ADVERTISER, MONDAY_11_PARIS)
    await store.put_campaign(FR_CAMPAIGN, MONDAY_11_PARIS)
    await store.add_records([record()], MONDAY_11_PARIS)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    out: multiprocessing.Queue[int] = ctx.Queue()
    procs = [ctx.Process(target=_node, args=(backend, barrier, out)) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    loop = asyncio.get_running_loop()
    for p in procs:
        await loop.run_in_executor(None, p.join, 120)
        assert p.exitcode == 0
    allowed = [out.get(timeout=5) for _ in procs]
    assert sum(allowed) == 4, allowed
    rows = [r async for r in store.export_attempts()]
    assert len(rows) == PROCESSES * PER_PROCESS
    assert sum(r["verdict"] == "allow" for r in rows) == 4
    assert await store.verify_audit() == []
    await store.close()
