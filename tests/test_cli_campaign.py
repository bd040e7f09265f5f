"""``gateway contacts import`` and ``gateway campaign start|pause|status``, as run by a user."""

from __future__ import annotations

import json

import numpy as np
import soundfile

from tests.test_cli_store import Gateway, gw  # noqa: F401 (the fixture)

CONTACTS = (
    "number,name\n"
    "+33612345601,Ann\n"
    "0612345602,Bob\n"  # national format: refused
    ",Carl\n"
    "+33612345603,Dan\n"
    "+3361234,Eve\n"  # too short
    "+33612345601,Ann again\n"
)


def test_contacts_import_reports_bad_lines_and_keeps_the_good(gw: Gateway) -> None:  # noqa: F811
    path = gw.file("contacts.csv", CONTACTS)
    code, out, err = gw("contacts", "import", "spring-offer", path)
    assert code == 1
    assert "2 accepted (2 new, 0 already present), 3 refused" in out
    assert "contacts.csv:3: refused: '0612345602' is not a valid E.164 number" in err
    assert "must start with + and the country" in err
    assert "contacts.csv:4: refused: the number is empty" in err
    assert "contacts.csv:6: refused: '+3361234'" in err
    code, out, _ = gw("contacts", "import", "spring-offer", path)
    assert code == 1 and "2 accepted (0 new, 2 already present)" in out
    code, out, _ = gw("campaign", "status", "spring-offer", "--json")
    doc = json.loads(out)
    assert doc["contacts"] == 2 and doc["states"] == {"pending": 2}
    assert doc["run_state"] == "not started"


def test_contacts_import_of_a_clean_file_exits_0(gw: Gateway) -> None:  # noqa: F811
    code, out, err = gw(
        "contacts", "import", "spring-offer", gw.file("c.csv", "number\n+33612345601\n")
    )
    assert (code, err) == (0, "") and "1 accepted (1 new" in out


def test_contacts_import_refuses_a_file_it_cannot_use(gw: Gateway) -> None:  # noqa: F811
    code, _, err = gw("contacts", "import", "spring-offer", gw.file("x.csv", "phone\n+3361\n"))
    assert code == 2 and "no 'number' column" in err
    code, _, err = gw("contacts", "import", "nope", gw.file("y.csv", "number\n+33612345601\n"))
    assert code == 2 and "no campaign 'nope'" in err
    code, _, err = gw("contacts", "import", "spring-offer", gw.tmp / "missing.csv")
    assert code == 2 and "cannot read" in err
    binary = gw.tmp / "z.csv"
    binary.write_bytes(b"number\n\xff\xfe\x00+336\n")
    code, _, err = gw("contacts", "import", "spring-offer", binary)
    assert code == 2 and "not a UTF-8 CSV" in err and "nothing was imported" in err


def spring_wav(gw: Gateway, seconds: float = 2.0) -> None:  # noqa: F811
    """The campaign's message (``audio = "spring.wav"``, next to the campaign file)."""
    t = np.arange(int(8000 * seconds)) / 8000
    soundfile.write(gw.tmp / "spring.wav", 0.3 * np.sin(2 * np.pi * 440 * t), 8000)


def test_start_pause_status(gw: Gateway) -> None:  # noqa: F811
    spring_wav(gw)
    gw("contacts", "import", "spring-offer", gw.file("c.csv", "number\n+33612345601\n"))
    code, out, _ = gw("campaign", "start", "spring-offer")
    assert code == 0 and "active: 1 contacts pending" in out
    code, out, _ = gw("campaign", "status", "spring-offer")
    assert code == 0 and "spring-offer: active, 1 contacts" in out
    assert "pending  1" in out and "opt-outs 0" in out and "next due 20" in out
    code, out, _ = gw("campaign", "pause", "spring-offer")
    assert code == 0 and "paused" in out
    assert json.loads(gw("campaign", "status", "spring-offer", "--json")[1])["run_state"] == (
        "paused"
    )
    assert gw("campaign", "start", "nope")[0] == 2
    assert gw("campaign", "pause", "nope")[0] == 2


def test_start_refuses_a_message_it_cannot_play_naming_the_file(gw: Gateway) -> None:  # noqa: F811
    code, out, _ = gw("campaign", "start", "spring-offer")
    assert code == 1 and "not started" in out
    assert f"{gw.tmp / 'spring.wav'}" in out  # the campaign file's own directory, resolved


def test_start_refuses_a_message_longer_than_a_call_may_last(gw: Gateway) -> None:  # noqa: F811
    spring_wav(gw, seconds=70.0)  # max_call_duration is 60 s in this campaign
    code, out, _ = gw("campaign", "start", "spring-offer")
    assert code == 1 and "more than max_call_duration 60 s" in out
