"""``make demo`` end to end: the command an operator runs first, checked as they would.

The demo's report must be true: every number's decision matches what the rulebook says of it,
the callees' recordings start with the identity and then the opt-out instruction, each opt-out
left an opposition in the store before its BYE, and nobody without a legal basis was called.
"""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from gateway import demo
from gateway.media.prompts import prompt_from_text
from gateway.store import open_store


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    base = tmp_path_factory.mktemp("demo")
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "demo", "--dir", str(base)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # the commands report refused lines on stderr
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    return base, done.stdout


def lines_for(out: str, number: str) -> str:
    report = out.split("== 3. Report", 1)[1]
    return "\n".join(line for line in report.splitlines() if line.startswith(number))


def test_report_gives_every_number_its_decision_and_why(run: tuple[Path, str]) -> None:
    _, out = run
    assert "3 opt-outs recorded" in out
    assert "allow  opted_out" in lines_for(out, "+33612340002")  # RFC 4733
    assert "allow  opted_out" in lines_for(out, "+33612340005")  # in-band
    assert "allow  opted_out" in lines_for(out, "+33612340008")  # SIP INFO
    assert "rejected, SIP 486" in lines_for(out, "+33612340011")
    assert "no_answer, SIP 487" in lines_for(out, "+33612340014")
    assert "deny   opposition" in lines_for(out, "+33612340021")
    assert "deny   legal_basis" in lines_for(out, "+33612340022")  # pre-ticked: refused
    assert "defer  window" in lines_for(out, "+590690123456")
    assert "refused: '0612345678' is not a valid E.164 number" in out


def test_nobody_without_a_basis_was_called_and_opt_outs_are_stored(
    run: tuple[Path, str],
) -> None:
    base, _ = run
    recordings = {p.stem for p in (base / "recordings").glob("*.wav")}
    for number in ("+33612340021", "+33612340022", "+33612340023", "+590690123456"):
        assert number not in recordings
    key = (base / "gateway.toml").read_text().split('opposition_key = "')[1].split('"')[0]

    async def check() -> None:
        store = await open_store(f"sqlite:///{base}/gateway.db", key.encode())
        try:
            for number in ("+33612340002", "+33612340005", "+33612340008"):
                assert await store.is_opposed(number, "maison-dupont")
                (opposition,) = [o for o in await store.oppositions_for(number)]
                assert opposition.source == "dtmf"
            assert not await store.is_opposed("+33612340020", "maison-dupont")  # pressed 1
            assert await store.verify_audit() == []
        finally:
            await store.close()

    asyncio.run(check())


def read(path: Path) -> npt.NDArray[np.float64]:
    with wave.open(str(path), "rb") as f:
        data = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
    return data.astype(np.float64)


def ncc_at(
    recorded: npt.NDArray[np.float64], ref: npt.NDArray[np.float64], lo: int, hi: int
) -> tuple[float, int]:
    """Best normalised cross-correlation of ``ref`` starting between samples lo and hi."""
    best, where = -1.0, lo
    for offset in range(lo, min(hi, recorded.size - ref.size) + 1):
        window = recorded[offset : offset + ref.size]
        score = float(np.dot(window, ref) / np.sqrt(np.dot(window, window) * np.dot(ref, ref)))
        if score > best:
            best, where = score, offset
    return best, where


def test_recordings_start_with_identity_then_optout_instruction(
    run: tuple[Path, str], tmp_path: Path
) -> None:
    base, _ = run
    words = dict(
        line.split(" = ", 1)
        for line in demo.CAMPAIGN_TOML.splitlines()
        if line.startswith(("identity", "optout"))
    )
    identity, optout = (
        prompt_from_text(words[name].split('"')[1], "fr", tmp_path, name=name).samples.astype(
            np.float64
        )
        for name in ("identity", "optout")
    )
    recorded = read(base / "recordings" / "+33612340001.wav")
    score, start = ncc_at(recorded, identity, 0, 8000)
    assert score >= 0.99, score
    # The opt-out instruction follows the identity at once (the next 20 ms frame at most).
    after = start + identity.size
    score, _ = ncc_at(recorded, optout, after - 8, after + 168)
    assert score >= 0.99, score


def test_export_attempts_holds_the_call_records(run: tuple[Path, str]) -> None:
    base, _ = run
    config = str(base / "gateway.toml")
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "export", "attempts", "--config", config],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    rows = {r["number"]: r for r in csv.DictReader(io.StringIO(done.stdout)) if r["invite_sent_at"]}
    opted = rows["+33612340002"]
    assert opted["extra.outcome"] == "opted_out" and opted["dtmf"] == "9"
    # The opposition was committed before the BYE, and both are on record with the 180.
    assert opted["extra.ringing_at"] <= opted["answered_at"]
    assert opted["opposition_committed_at"] <= opted["extra.bye_at"]
    assert int(opted["extra.packets_sent"]) > 0 and int(opted["extra.packets_received"]) > 0
    busy = rows["+33612340011"]
    assert (busy["final_status"], busy["extra.outcome"]) == ("486", "rejected")
