"""Benchmark of the compliance engine: decisions and imports, on SQLite and PostgreSQL.

Seeds a store with N legal-basis records (synthetic French mobiles, one consent each), then
measures ``decide_and_reserve`` (the dialer's entry point, which records every decision in the
hash chain): latency p50/p99 one decision at a time, and decisions per second with many
decisions in flight (they share transactions: group commit). Also times
``gateway consent import`` on a generated CSV. Prints one JSON object.

Run: ``python -m bench.consent_bench --records 1000000 --backend sqlite``; ``make bench`` calls
:func:`run` (both backends, ``$GATEWAY_BENCH_RECORDS`` records, default 1,000,000)
(``--records 1000000,10000000`` for both sizes; PostgreSQL at ``$GATEWAY_BENCH_PG``, default
``postgresql://postgres@127.0.0.1:5432/test``, in a schema of its own, dropped afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from gateway.campaign.model import load_advertiser, load_campaign
from gateway.consent.evidence import FIELDS, to_row
from gateway.consent.model import Basis, LegalBasisRecord
from gateway.store import Store, decide_and_reserve, open_store

PG_URL = os.environ.get("GATEWAY_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
KEY = b"bench-key-0123456789abcdef"
NOW = datetime(2026, 11, 30, 10, tzinfo=UTC)  # Monday 11:00 in Paris
ADVERTISER = """
[advertiser]
id = "maison-dupont"
legal_name = "Maison Dupont SARL"
country = "FR"
callback_number = "+33162000001"
caller_ids = ["+33162000001"]
"""
CAMPAIGN = """
[campaign]
name = "bench"
advertiser = "maison-dupont"
purpose = "commercial"
audience = "consumer"
profile = "fr"
caller_id = "+33162000001"
optout_key = "9"
[campaign.announcement]
identity = { text = "Bonjour, ceci est un message de Maison Dupont." }
optout = { text = "Pour ne plus recevoir nos appels, appuyez sur 9." }
message = { text = "Notre offre de printemps." }
"""


def number(i: int) -> str:
    return f"+336{10_000_000 + i:08d}"


def _record(i: int) -> LegalBasisRecord:
    return LegalBasisRecord(
        number=number(i),
        advertiser="maison-dupont",
        basis=Basis.CONSENT,
        subject="consumer",
        purposes=("commercial",),
        channels=("automated_call",),
        collected_at=NOW - timedelta(days=30 + i % 200),
        source="web form",
        collected_by="maison-dupont",
        wording="J'accepte d'être appelé par Maison Dupont.",
        wording_sha256="b" * 64,
        artefact_ref=f"forms/{i}.pdf",
        artefact_sha256="a" * 64,
        checkbox_prechecked=False,
        affirmative_act="checkbox",
    )


async def seed(store: Store, n: int) -> float:
    started = time.perf_counter()
    await store.put_advertiser(load_advertiser(ADVERTISER), NOW)
    await store.put_campaign(load_campaign(CAMPAIGN), NOW)
    step = 50_000
    for first in range(0, n, step):
        rows = [to_row(_record(i)) for i in range(first, min(n, first + step))]
        await store.add_record_rows(rows, NOW)
        print(f"\rseeded {min(n, first + step):,}/{n:,}", end="", file=sys.stderr)
    print(file=sys.stderr)
    await store.refresh_statistics()  # as `gateway consent import` does after loading
    return time.perf_counter() - started


async def decisions(store: Store, n: int, decisions: int, concurrency: int) -> dict[str, float]:
    rng = random.Random(7)
    picks = [number(rng.randrange(n)) for _ in range(decisions)]
    latencies: list[float] = []
    for i, num in enumerate(picks[: decisions // 2]):
        t = time.perf_counter()
        d = await decide_and_reserve(store, "bench", num, NOW + timedelta(microseconds=i), budget=5)
        latencies.append(time.perf_counter() - t)
        assert d.rule != "store", d.reason
    latencies.sort()
    rest = picks[decisions // 2 :]
    started = time.perf_counter()
    for first in range(0, len(rest), concurrency):
        batch = rest[first : first + concurrency]
        results = await asyncio.gather(
            *(decide_and_reserve(store, "bench", num, NOW, budget=5) for num in batch)
        )
        assert all(d.rule != "store" for d in results)
    elapsed = time.perf_counter() - started
    return {
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
        "sequential_per_second": round(len(latencies) / sum(latencies)),
        "concurrent_per_second": round(len(rest) / elapsed),
        "concurrency": concurrency,
    }


def import_rate(url: str, schema: str | None, rows: int, folder: Path) -> dict[str, float]:
    """``gateway consent import`` on a generated CSV, as an operator would run it."""
    path = folder / "records.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(FIELDS)
        for i in range(rows):
            rec = dict.fromkeys(FIELDS, "")
            rec.update(
                number=number(50_000_000 + i), advertiser="maison-dupont", basis="consent",
                subject="consumer", purposes="commercial", channels="automated_call",
                collected_at="2026-09-01T10:00:00+02:00", source="web form",
                collected_by="maison-dupont", wording="Oui", artefact_ref=f"f{i}",
                artefact_sha256="a" * 64, checkbox_prechecked="false", affirmative_act="checkbox",
            )  # fmt: skip
            out.writerow(rec.values())
    if schema is not None:
        url = f"{url}?schema={schema}"
    config = folder / "gateway.toml"
    config.write_text(f'[store]\nurl = "{url}"\n[consent]\nopposition_key = "{KEY.decode()}"\n')
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "consent", "import", str(path), "--config", str(config)],
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"consent import failed: {done.stdout} {done.stderr[-2000:]}")
    elapsed = time.perf_counter() - started
    return {"records": rows, "seconds": round(elapsed, 2), "per_second": round(rows / elapsed)}


async def run_backend(backend: str, sizes: list[int], args: argparse.Namespace) -> list[object]:
    results: list[object] = []
    for n in sizes:
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            schema = None
            if backend == "sqlite":
                url = f"sqlite:///{tmp}/bench.db"
            else:
                url, schema = PG_URL, f"bench_{uuid.uuid4().hex[:8]}"
            store = await open_store(url, KEY, schema=schema)
            try:
                seconds = await seed(store, n)
                figures = await decisions(store, n, args.decisions, args.concurrency)
            finally:
                await store.close()
            result: dict[str, object] = {
                "backend": backend,
                "records": n,
                "seed_per_second": round(n / seconds),
                "decisions": figures,
            }
            if args.import_rows:
                result["import"] = import_rate(url, schema, args.import_rows, Path(tmp))
            if schema is not None:
                conn = await asyncpg.connect(PG_URL)
                await conn.execute(f"DROP SCHEMA {schema} CASCADE")
                await conn.close()
            results.append(result)
            print(json.dumps(result), file=sys.stderr)
    return results


def run() -> dict[str, float]:
    """For ``make bench``: both backends at ``$GATEWAY_BENCH_RECORDS`` (default 1,000,000)."""
    sizes = [int(s) for s in os.environ.get("GATEWAY_BENCH_RECORDS", "1000000").split(",")]
    args = argparse.Namespace(decisions=4000, concurrency=64, import_rows=100_000, tmp=None)
    flat: dict[str, float] = {}
    for backend in ("sqlite", "postgres"):
        for result in asyncio.run(run_backend(backend, sizes, args)):
            assert isinstance(result, dict)
            prefix = f"{backend}_{result['records']}_"
            for group in ("decisions", "import"):
                for key, value in result.get(group, {}).items():
                    flat[f"{prefix}{group}_{key}"] = float(value)
            flat[f"{prefix}seed_per_second"] = float(result["seed_per_second"])
    return flat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--records", default="1000000", help="comma-separated sizes")
    parser.add_argument("--decisions", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--import-rows", type=int, default=100_000)
    parser.add_argument("--tmp", default=None, help="folder for the SQLite files")
    args = parser.parse_args()
    sizes = [int(s) for s in args.records.split(",")]
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results: list[object] = []
    for backend in backends:
        results += asyncio.run(run_backend(backend, sizes, args))
    print(json.dumps({"cpus": os.cpu_count(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
