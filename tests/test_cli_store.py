"""The store's commands, run as the ``gateway`` command would run them, on a SQLite file."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.cli import main
from tests.consent.helpers import FR_CAMPAIGN_TOML

ADVERTISER = """
[advertiser]
id = "maison-dupont"
legal_name = "Maison Dupont SARL"
country = "FR"
callback_number = "+33162000001"
caller_ids = ["+33162000001"]
"""
HEADER = (
    "number,advertiser,basis,subject,purposes,channels,collected_at,source,collected_by,"
    "wording,artefact_ref,artefact_sha256,checkbox_prechecked,affirmative_act\n"
)
GOOD = (
    "{n},maison-dupont,consent,consumer,commercial,automated_call,2026-09-01T10:00:00+02:00,web,"
    "maison-dupont,Oui,form-1," + "a" * 64 + ",{pre},checkbox\n"
)


#: The clock of every command these tests run: Monday 30 November 2026, 11:00 in Paris.
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


class Gateway:
    def __init__(self, tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.tmp, self.capsys = tmp, capsys
        self.config = tmp / "gateway.toml"
        self.config.write_text(
            f'[store]\nurl = "sqlite:///{tmp}/gw.db"\n'
            '[consent]\nopposition_key = "cli-test-key-0123456789"\n'
        )

    def file(self, name: str, text: str) -> Path:
        path = self.tmp / name
        path.write_text(text, encoding="utf-8")
        return path

    def __call__(self, *argv: object) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main([str(a) for a in argv] + ["--config", str(self.config)], clock=lambda: NOW)
        out = self.capsys.readouterr()
        return code, out.out, out.err


@pytest.fixture
def gw(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Gateway:
    g = Gateway(tmp_path, capsys)
    assert g("advertiser", "add", g.file("adv.toml", ADVERTISER))[0] == 0
    assert g("campaign", "add", g.file("c.toml", FR_CAMPAIGN_TOML))[0] == 0
    return g


def test_campaign_add_refuses_with_every_reason_at_once(gw: Gateway) -> None:
    bad = FR_CAMPAIGN_TOML.replace('"+33162000001"', '"+33612000000"').replace('"9"', '"99"')
    code, _, err = gw("campaign", "add", gw.file("bad.toml", bad))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert (
        "not one DTMF digit" in err and "not authorised" in err and "not allowed by profile" in err
    )


def test_advertiser_add_refuses_a_bad_file(gw: Gateway) -> None:
    code, _, err = gw("advertiser", "add", gw.file("a.toml", "[advertiser]\nid = 1\n"))
    assert code == 2 and "advertiser.id must be a string" in err and "caller_ids" in err


def test_consent_import_reports_lines_and_is_idempotent(gw: Gateway) -> None:
    text = (
        HEADER
        + GOOD.format(n="+33612345678", pre="false")
        + GOOD.format(n="+33612345679", pre="true")
        + GOOD.format(n="0612", pre="false")
    )
    path = gw.file("r.csv", text)
    code, out, err = gw("consent", "import", path)
    assert code == 1
    assert "1 accepted (1 new" in out and "2 refused" in out
    assert "r.csv:3: refused: pre-ticked box" in err
    assert "r.csv:4: refused: invalid number" in err
    code, out, _ = gw("consent", "import", path)
    assert "1 accepted (0 new, 1 already present)" in out


def test_consent_import_json_lines(gw: Gateway) -> None:
    row = next(csv.DictReader(io.StringIO(HEADER + GOOD.format(n="+33612345678", pre="false"))))
    path = gw.file("r.jsonl", json.dumps(row) + "\n{oops\n\n" + json.dumps([1]) + "\n")
    code, out, err = gw("consent", "import", path)
    assert code == 1 and "1 accepted" in out
    assert "r.jsonl:2: refused: not valid JSON" in err and "r.jsonl:4: refused: not a JSON" in err


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_row_with_extra_cells_is_refused(gw: Gateway, jobs: str) -> None:
    text = HEADER + GOOD.format(n="+33612345678", pre="false").rstrip() + ",extra\n"
    code, _, err = gw("consent", "import", gw.file("r.csv", text), "--jobs", jobs)
    assert code == 1 and "r.csv:2: refused: more cells than the header has columns" in err


def test_a_file_that_is_not_utf8_stops_with_a_message(gw: Gateway) -> None:
    path = gw.tmp / "r.csv"
    path.write_bytes(HEADER.encode() + GOOD.format(n="+33612345678", pre="no").encode() + b"\xff\n")
    code, _, err = gw("consent", "import", path, "--jobs", "1")
    assert code == 2 and "import stopped after line" in err and "fix the file" in err


def test_unknown_csv_column_is_a_user_error(gw: Gateway) -> None:
    code, _, err = gw("consent", "import", gw.file("r.csv", "number,colour\n+33612345678,red\n"))
    assert code == 2 and "unknown column(s) colour" in err


def test_check_json_then_oppose_then_audit_and_exports(gw: Gateway) -> None:
    gw("consent", "import", gw.file("r.csv", HEADER + GOOD.format(n="+33612345678", pre="no")))
    at = "2026-11-30T11:00:00+01:00"
    code, out, _ = gw("check", "+33612345678", "--campaign", "spring-offer", "--at", at, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["decision"] == "allow" and doc["rule"] is None
    assert [r["rule"] for r in doc["rules"]][:2] == ["campaign", "number"]
    assert doc["zone"] == "Europe/Paris" and doc["until"] is None

    assert gw("oppose", "+33 6 12 34 56 78", "--advertiser", "maison-dupont")[0] == 0
    code, out, _ = gw("check", "+33612345678", "--campaign", "spring-offer", "--at", at, "--json")
    assert code == 1 and json.loads(out)["rule"] == "opposition"

    code, out, _ = gw("export", "oppositions")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 1 and rows[0]["scope"] == "maison-dupont" and "612345678" not in out
    code, out, _ = gw("export", "attempts")
    assert out.startswith("id,campaign,advertiser,number,decided_at,verdict")  # check records none
    code, out, _ = gw("export", "evidence", "+33612345678")
    doc = json.loads(out)
    assert len(doc["legal_basis"]) == 1 and doc["oppositions"][0]["source"] == "cli"

    assert gw("audit", "verify")[:2] == (0, "audit chain verified: nothing removed or altered\n")
    with sqlite3.connect(gw.tmp / "gw.db") as conn:
        conn.execute("DELETE FROM oppositions")
    code, out, _ = gw("audit", "verify")
    assert code == 1 and "opposition 1 removed" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("oppose", "0612345678", "--all"), "not a valid E.164 number"),
        (("check", "+33612345678", "--campaign", "x", "--at", "2026-11-30T10:00"), "time zone"),
        (("check", "+33612345678", "--campaign", "nope"), "unknown campaign 'nope'"),
        (("consent", "import", "/nonexistent.csv"), "cannot read"),
    ],
)
def test_user_errors_are_one_line(gw: Gateway, argv: tuple[str, ...], message: str) -> None:
    code, _, err = gw(*argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_missing_opposition_key_is_a_user_error(gw: Gateway) -> None:
    gw.config.write_text(f'[store]\nurl = "sqlite:///{gw.tmp}/gw.db"\n')
    code, _, err = gw("audit", "verify")
    assert code == 2 and "opposition_key" in err
