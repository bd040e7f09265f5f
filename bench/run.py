"""``make bench``: every benchmark of the project, one JSON document on stdout.

Each module under ``bench/`` exposes ``run() -> dict[str, float]``; the ones that measure against
a real reference (SIPp's own caller for call set-ups) report the ratio in the same run.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    results: dict[str, object] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    failed = False
    for info in sorted(pkgutil.iter_modules([str(HERE)]), key=lambda m: m.name):
        if info.name in ("run", "__init__") or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"bench.{info.name}")
        bench = getattr(module, "run", None)
        if bench is None:
            continue
        print(f"bench: {info.name} ...", file=sys.stderr, flush=True)
        try:
            results[info.name] = bench()
        except Exception as exc:  # a failed benchmark is reported, the others still run
            results[info.name] = {"error": f"{type(exc).__name__}: {exc}"}
            failed = True
    text = json.dumps(results, indent=2)
    (HERE.parent / "bench-results.json").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
