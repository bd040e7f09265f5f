"""``gateway demo`` (``make demo``): the gateway's main job, end to end, on loopback.

An advertiser and a campaign of 30 numbers with a realistic mix: valid consents, a pre-ticked
consent refused at import, a number that already objected, numbers with no consent, an overseas
number outside its calling window, a malformed contact. Announcements are synthesised from text.
The trunk is the built-in callee simulator: callees answer, listen and record what they hear to
WAV; some press the opt-out key (as RFC 4733 events, in-band tones or SIP INFO), one is busy,
one never answers. A simulated clock sits inside the French calling window, so the demo works at
any hour. It shows live progress and ends with a report: each number's decision and why, the
call's outcome, the opt-outs, and where each callee's recording is.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway.calls.outbound import CallRecord
from gateway.cli import main as cli
from gateway.config import (
    Config,
    ConsentConfig,
    MediaConfig,
    RunConfig,
    SipConfig,
    StoreConfig,
    TrunkConfig,
)
from gateway.consent.model import Decision
from gateway.consent.zones import is_holiday
from gateway.daemon import Gateway
from gateway.simulator import Behaviour, CalleeSimulator

CAMPAIGN = "spring-offer"
ADVERTISER = """[advertiser]
id = "maison-dupont"
legal_name = "Maison Dupont SARL"
country = "FR"
callback_number = "+33162000001"
caller_ids = ["+33162000001"]
"""
CAMPAIGN_TOML = """[campaign]
name = "spring-offer"
advertiser = "maison-dupont"
purpose = "commercial"
audience = "consumer"
sector = "general"
profile = "fr"
caller_id = "+33162000001"
optout_key = "9"
language = "fr"
trunk = "simulator"
[campaign.limits]
calls_per_second = 4
max_concurrent = 8
max_attempts = 2
retry_after = 3600
ring_timeout = 6
max_call_duration = 30
[campaign.announcement]
identity = { text = "Bonjour, ceci est un message de Maison Dupont." }
optout = { text = "Pour ne plus recevoir nos appels, appuyez sur 9." }
message = { text = "Nos offres de printemps sont arrivées: moins vingt pour cent en magasin." }
confirmation = { text = "Votre opposition est enregistrée. Au revoir." }
"""
COLUMNS = (
    "number,advertiser,basis,subject,purposes,channels,collected_at,source,collected_by,"
    "wording,artefact_ref,artefact_sha256,checkbox_prechecked,affirmative_act"
)
WORDING = "J'accepte d'être appelé par Maison Dupont"


def consent_row(number: str, collected: datetime, prechecked: str = "no") -> str:
    return (
        f"{number},maison-dupont,consent,consumer,commercial,automated_call,"
        f"{collected.isoformat()},web form,maison-dupont,{WORDING},form-{collected:%Y-%m},"
        f"{'ab' * 32},{prechecked},checkbox"
    )


def mix(now: datetime) -> tuple[list[str], list[str], dict[str, Behaviour], dict[str, str]]:
    """Contacts, consent rows, callee behaviours and what each special number shows; the
    consents were collected three months before ``now``, the demo's simulated time."""
    collected = (now - timedelta(days=91)).replace(microsecond=0)
    mobiles = [f"+3361234{i:04d}" for i in range(1, 26)]
    notes: dict[str, str] = {}
    behaviours: dict[str, Behaviour] = {}
    consents = [consent_row(n, collected) for n in mobiles[:22]]
    behaviours[mobiles[1]] = Behaviour(press="9", press_at=2.0, press_how="rfc4733")
    behaviours[mobiles[4]] = Behaviour(press="9", press_at=5.0, press_how="inband")
    behaviours[mobiles[7]] = Behaviour(press="9", press_at=7.0, press_how="info")
    behaviours[mobiles[10]] = Behaviour(reject=486)
    behaviours[mobiles[13]] = Behaviour(answer_after=None)
    behaviours[mobiles[16]] = Behaviour(hangup_after=3.0)
    behaviours[mobiles[19]] = Behaviour(press="1", press_at=3.0)
    notes.update(
        {
            mobiles[1]: "presses 9 (RFC 4733)",
            mobiles[4]: "presses 9 (in-band tone)",
            mobiles[7]: "presses 9 (SIP INFO)",
            mobiles[10]: "busy (486)",
            mobiles[13]: "never answers",
            mobiles[16]: "hangs up after 3 s",
            mobiles[19]: "presses 1 (not the opt-out key)",
        }
    )
    opposed, prechecked = mobiles[20], mobiles[21]
    consents[21] = consent_row(prechecked, collected, prechecked="yes")
    notes[opposed] = "objected before the campaign"
    notes[prechecked] = "consent by a pre-ticked box (refused at import)"
    for n in mobiles[22:]:
        notes[n] = "no consent on record"
    overseas = "+590690123456"  # Guadeloupe: 05:30 there while Paris is at work
    consents.append(consent_row(overseas, collected))
    notes[overseas] = "Guadeloupe (UTC-4): outside its calling window"
    contacts = [*mobiles, overseas, "+3361234", "0612345678"]
    notes["+3361234"] = "not a valid number (refused at contacts import)"
    notes["0612345678"] = "national format, not E.164 (refused at contacts import)"
    return contacts, consents, behaviours, notes


def demo_clock() -> Callable[[], datetime]:
    """A clock that starts at 10:30 in Paris on the next working day, then runs in real time."""
    paris = ZoneInfo("Europe/Paris")
    day = datetime.now(paris).date() + timedelta(days=1)
    while day.weekday() >= 5 or is_holiday("FR", day):
        day += timedelta(days=1)
    start = datetime(day.year, day.month, day.day, 10, 30, tzinfo=paris).astimezone(UTC)
    origin = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - origin)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def say(text: str = "") -> None:
    print(text, flush=True)


async def run_demo(directory: Path | None = None, limit: float = 180.0) -> int:
    # The demo prints its own progress: the parts' logs only when something goes wrong.
    logging.getLogger("gateway").setLevel(logging.WARNING)
    base = directory or Path(tempfile.mkdtemp(prefix="gateway-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    say(f"gateway demo: everything is in {base}")
    # One clock for everything the demo does: the commands of step 1 stamp their records with
    # it, and the dialer of step 2 decides by it.
    clock = demo_clock()
    contacts, consents, behaviours, notes = mix(clock())
    files = {
        "advertiser.toml": ADVERTISER,
        "campaign.toml": CAMPAIGN_TOML,
        "consents.csv": "\n".join([COLUMNS, *consents]) + "\n",
        "contacts.csv": "\n".join(["number", *contacts]) + "\n",
    }
    for name, text in files.items():
        (base / name).write_text(text, encoding="utf-8")
    gw_port = free_port()
    simulator = await CalleeSimulator.start(
        gateway_address=("127.0.0.1", gw_port),
        record_dir=base / "recordings",
        behaviours=behaviours,
        default=Behaviour(answer_after=0.5),
    )
    config = Config(
        sip=SipConfig(listen=(f"udp:127.0.0.1:{gw_port}",)),
        trunks={
            "simulator": TrunkConfig(
                uri=f"sip:127.0.0.1:{simulator.address[1]}", keepalive_interval=0
            )
        },
        media=MediaConfig(rtp_port_min=32000, rtp_port_max=32999),
        store=StoreConfig(url=f"sqlite:///{base}/gateway.db"),
        consent=ConsentConfig(opposition_key=secrets.token_hex(16)),
        run=RunConfig(work_dir=str(base / "prompts"), shutdown_grace=5.0),
    )
    config_file = base / "gateway.toml"
    config_file.write_text(
        f'[store]\nurl = "{config.store.url}"\n'
        f'[consent]\nopposition_key = "{config.consent.opposition_key}"\n',
        encoding="utf-8",
    )
    say("\n== 1. The campaign manager's files, through the gateway's commands")
    steps = [
        ["advertiser", "add", str(base / "advertiser.toml")],
        ["campaign", "add", str(base / "campaign.toml")],
        ["consent", "import", str(base / "consents.csv")],
        ["oppose", "+33612340021", "--advertiser", "maison-dupont"],
        ["contacts", "import", CAMPAIGN, str(base / "contacts.csv")],
        ["campaign", "start", CAMPAIGN],
    ]
    for argv in steps:
        say(f"$ gateway {' '.join(argv)}")
        code = await asyncio.to_thread(cli, [*argv, "--config", str(config_file)], clock=clock)
        say(f"  (exit status {code})")
    say(f"\n== 2. Dialing (simulated time {clock():%Y-%m-%d %H:%M} UTC, inside the French window)")
    decisions: dict[str, Decision] = {}
    records: dict[str, CallRecord] = {}

    def on_decision(decision: Decision) -> None:
        decisions[decision.number] = decision
        why = "" if decision.allowed else f" ({decision.rule}: {decision.reason})"
        say(f"  decision {decision.number}: {decision.verdict}{why}")

    def on_record(record: CallRecord) -> None:
        records[record.number] = record
        say(f"  call     {record.number}: {record.outcome} (SIP {record.sip_cause})")

    gateway = await Gateway.start(
        config, clock=clock, on_decision=on_decision, on_record=on_record, poll_interval=0.2
    )
    try:
        await _wait_settled(gateway, limit)
    finally:
        await gateway.stop(grace=5.0)
        await simulator.close()
    _report(contacts, decisions, records, simulator, notes)
    say(f"\nRecordings: {base / 'recordings'}   Store: {base / 'gateway.db'}")
    return 0


async def _wait_settled(gateway: Gateway, limit: float) -> None:
    """Until every contact is done, or waits for a window beyond the demo's horizon."""
    assert gateway.store is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while loop.time() < deadline:
        await asyncio.sleep(0.5)
        contacts = await gateway.store.contacts(CAMPAIGN)
        horizon = gateway.clock() + timedelta(minutes=10)
        waiting = [
            c
            for c in contacts
            if c.state.value in ("pending", "calling")
            and (c.next_at is None or c.next_at <= horizon)
        ]
        if contacts and not waiting:
            return
    say("  (time limit reached)")


def _report(
    contacts: list[str],
    decisions: dict[str, Decision],
    records: dict[str, CallRecord],
    simulator: CalleeSimulator,
    notes: dict[str, str],
) -> None:
    say("\n== 3. Report: each number, its decision and why, the call, the recording")
    opt_outs = 0
    for number in contacts:
        decision = decisions.get(number)
        record = records.get(number)
        callee = simulator.results.get(number)
        if decision is None:
            verdict, why = "-", "never reached the dialer"
        elif not decision.allowed:
            verdict, why = str(decision.verdict), f"{decision.rule}: {decision.reason}"
            if decision.until is not None:
                why += f" (until {decision.until:%Y-%m-%d %H:%M} UTC)"
        else:
            verdict = "allow"
            why = record.outcome if record is not None else "in progress"
            if record is not None and record.sip_cause is not None:
                why += f", SIP {record.sip_cause}"
            if record is not None and record.dtmf:
                why += ", keys " + "".join(d for d, _, _ in record.dtmf)
            if record is not None and record.opposition_at is not None:
                opt_outs += 1
                why += ", opposition committed before the BYE"
        say(f"{number:<14} {verdict:<6} {why}")
        if number in notes:
            say(f"{'':<21} [{notes[number]}]")
        if callee is not None and callee.recording is not None:
            say(f"{'':<21} recording: {callee.recording}")
    called = sum(1 for r in records.values() if r.invite_at is not None)
    say(f"\n{len(decisions)} decisions, {called} calls placed, {opt_outs} opt-outs recorded.")


def main(argv: list[str] | None = None) -> int:
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="gateway demo")
    parser.add_argument("--dir", type=Path, default=None, help="keep everything here")
    args = parser.parse_args(argv)
    return asyncio.run(run_demo(args.dir))


if __name__ == "__main__":
    sys.exit(main())
