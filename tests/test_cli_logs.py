"""Structured logs: ``--log-format json`` gives one JSON object per line on stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_json_logs_are_one_object_per_line(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        '[sip]\nlisten = ["udp:127.0.0.1:0"]\n'
        '[trunks.dead]\nuri = "sip:127.0.0.1:9"\nkeepalive_interval = 0\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "--log-format", "json", "trunk", "check", "dead",
         "--timeout", "0.5", "--config", str(config)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 1  # the trunk is unreachable
    entries = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert entries, done.stderr
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    assert any("listening on udp:127.0.0.1:" in e["message"] for e in entries)
