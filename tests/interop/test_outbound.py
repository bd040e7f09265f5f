"""One compliant call end to end, against real callees: decision, INVITE, announcement,
opt-out by DTMF committed before the BYE, and the attempt's record (issue 5; issue 3 interop).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soundfile

from gateway.calls.optout_line import OptoutLine
from gateway.calls.outbound import CallContext, CallPlan, CallRecord, place_call
from gateway.calls.plan import PromptSettings, prepare_line, prepare_plan
from gateway.calls.service import CallService
from gateway.campaign.model import load_advertiser, load_campaign
from gateway.cli import main
from gateway.consent.policy import decide
from gateway.media.transport import MediaEngine
from gateway.sip.endpoint import Endpoint, EndpointSettings, TrunkSettings
from gateway.sip.transport import ListenSpec, SipTransport
from gateway.store import open_store
from gateway.store.base import Store
from gateway.store.engine import decide_and_reserve
from tests.interop.conftest import BaresipFactory, SippUasFactory
from tests.interop.peers import run_sipp_uac
from tests.interop.uac import Uac

KEY = b"outbound-test-key-0123456789"
#: Monday 2026-11-30, 11:00 in Paris: inside the French calling window.
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
NUMBER = "+33612345678"

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
name = "spring-offer"
advertiser = "maison-dupont"
purpose = "commercial"
audience = "consumer"
profile = "{profile}"
caller_id = "+33162000001"
optout_key = "9"
language = "fr"
trunk = "callee"
[campaign.limits]
max_call_duration = 40
ring_timeout = 10
[campaign.announcement]
identity = {{ text = "Bonjour, ceci est un message de Maison Dupont." }}
optout = {{ text = "Pour ne plus recevoir nos appels, appuyez sur 9." }}
message = {{ text = "Nos offres de printemps sont arrivées. A bientôt." }}
confirmation = {{ text = "Votre opposition est enregistrée. Au revoir." }}
"""
RECORDS = (
    "number,advertiser,basis,subject,purposes,channels,collected_at,source,collected_by,"
    "wording,artefact_ref,artefact_sha256,checkbox_prechecked,affirmative_act\n"
    f"{NUMBER},maison-dupont,consent,consumer,commercial,automated_call,"
    "2026-09-01T10:00:00+02:00,web,maison-dupont,Oui,form-1," + "a" * 64 + ",no,checkbox\n"
)


@dataclass
class World:
    store: Store
    plan: CallPlan
    tmp: Path

    async def call(self, callee_uri_host_port: str) -> CallRecord:
        endpoint = Endpoint(
            EndpointSettings(user_agent="gateway-test"),
            [TrunkSettings("callee", f"sip:{callee_uri_host_port}", keepalive_interval=0)],
            rng=random.Random(3),
        )
        service = CallService(endpoint)
        transport = SipTransport(endpoint, service.on_event)
        service.attach(transport)
        await transport.listen(ListenSpec("udp", "127.0.0.1", 0))
        media = MediaEngine(host="127.0.0.1", port_min=0, port_max=0, rng=random.Random(4))
        ctx = CallContext(service, media, self.store, lambda: NOW, "127.0.0.1")
        decision = await decide_and_reserve(self.store, self.plan.campaign, NUMBER, NOW)
        assert decision.allowed, decision.reason
        try:
            return await place_call(ctx, self.plan, decision)
        finally:
            await media.close()
            await transport.close()


async def make_world(tmp: Path, profile: str) -> World:
    config = tmp / "gateway.toml"
    url = f"sqlite:///{tmp}/gw.db"
    config.write_text(f'[store]\nurl = "{url}"\n[consent]\nopposition_key = "{KEY.decode()}"\n')
    for name, text in (("adv.toml", ADVERTISER), ("c.toml", CAMPAIGN.format(profile=profile))):
        (tmp / name).write_text(text, encoding="utf-8")
    (tmp / "r.csv").write_text(RECORDS, encoding="utf-8")
    # The commands a campaign manager runs (each runs its own event loop: in a thread here), on
    # the clock the calls are placed by.
    for argv in (
        ["advertiser", "add", str(tmp / "adv.toml")],
        ["campaign", "add", str(tmp / "c.toml")],
        ["consent", "import", str(tmp / "r.csv")],
    ):
        code = await asyncio.to_thread(main, [*argv, "--config", str(config)], clock=lambda: NOW)
        assert code == 0, argv
    store = await open_store(url, KEY)
    campaign = load_campaign(CAMPAIGN.format(profile=profile))
    advertiser = load_advertiser(ADVERTISER)
    plan = prepare_plan(campaign, advertiser, PromptSettings(work_dir=tmp))
    # As the dialer does when a campaign starts: the first decision loads the numbering plan
    # and holiday tables, which takes longer than the 50 ms budget (that one would defer).
    decide(await store.gather(campaign.name, NUMBER, NOW), NOW)
    return World(store, plan, tmp)


@pytest.fixture
async def fr(tmp_path: Path) -> AsyncIterator[World]:
    world = await make_world(tmp_path, "fr")
    yield world
    await world.store.close()


async def test_optout_by_rfc4733_is_committed_before_the_bye(
    sipp_uas: SippUasFactory, fr: World
) -> None:
    # The SIPp callee answers, then presses 1 and 9 as RFC 4733 events (Debian's captures).
    callee = sipp_uas("uas_answer_dtmf.xml")
    record = await fr.call(callee.address)
    assert record.outcome == "opted_out", record
    assert [(d, how) for d, how, _ in record.dtmf] == [("1", "rfc4733"), ("9", "rfc4733")]
    assert record.opposition_at is not None and record.bye_at is not None
    assert record.opposition_at <= record.bye_at
    assert await fr.store.is_opposed(NUMBER, "maison-dupont")
    # The callee pressed 9 1.5 s after its ACK, during the identity: the announcement was cut
    # there, and the confirmation played once the opposition was written, before the BYE.
    starts = [name for what, name, _ in record.segments if what == "start"]
    assert starts == ["identity", "confirmation"]
    assert record.ended_by == "gateway" and record.sip_cause == 200
    assert record.packets_sent > 50 and record.packets_received > 0
    assert await callee.wait_async(10) == 0, callee.stats
    # The attempt's record holds what happened.
    attempt = await fr.store.attempts_for(NUMBER)
    assert attempt and "9" in str(attempt)


async def test_inband_optout_is_detected(sipp_uas: SippUasFactory, fr: World) -> None:
    callee = sipp_uas("uas_answer_inband.xml")
    record = await fr.call(callee.address)
    assert ("9", "inband") in [(d, how) for d, how, _ in record.dtmf], record
    assert record.outcome == "opted_out"
    assert await fr.store.is_opposed(NUMBER, "maison-dupont")


async def test_message_played_to_the_end_when_nobody_presses(
    sipp_uas: SippUasFactory, fr: World
) -> None:
    callee = sipp_uas("uas_answer")
    record = await fr.call(callee.address)
    assert record.outcome == "completed", record
    ends = [name for what, name, _ in record.segments if what == "end"]
    assert ends == ["identity", "optout", "message"]
    # This SIPp callee listens without sending audio: the record says so.
    assert record.packets_received == 0
    assert record.outcome_fields().extra["media_warning"] == "no RTP received from the far end"
    assert not await fr.store.is_opposed(NUMBER, "maison-dupont")


async def test_busy_callee_gives_a_record_with_the_cause(
    sipp_uas: SippUasFactory, fr: World
) -> None:
    callee = sipp_uas("uas_busy")
    record = await fr.call(callee.address)
    assert (record.outcome, record.sip_cause, record.ended_by) == ("rejected", 486, "callee")


async def test_opposition_registered_before_the_invite_stops_the_call(
    sipp_uas: SippUasFactory, fr: World
) -> None:
    callee = sipp_uas("uas_answer")
    decision = await decide_and_reserve(fr.store, fr.plan.campaign, NUMBER, NOW)
    assert decision.allowed
    # Between the decision and the INVITE, the person objects (another node, the opt-out line).
    await fr.store.add_opposition(NUMBER, "maison-dupont", "api", NOW)
    endpoint = Endpoint(
        EndpointSettings(),
        [TrunkSettings("callee", f"sip:{callee.address}", keepalive_interval=0)],
        rng=random.Random(1),
    )
    service = CallService(endpoint)
    transport = SipTransport(endpoint, service.on_event)
    service.attach(transport)
    await transport.listen(ListenSpec("udp", "127.0.0.1", 0))
    media = MediaEngine(host="127.0.0.1", port_min=0, port_max=0, rng=random.Random(2))
    try:
        ctx = CallContext(service, media, fr.store, lambda: NOW, "127.0.0.1")
        record = await place_call(ctx, fr.plan, decision)
    finally:
        await media.close()
        await transport.close()
    assert record.outcome == "not_called" and record.invite_at is None
    assert callee.received("INVITE ") == []


async def test_baresip_callee_hears_the_announcement_and_its_key_is_caught(
    baresip_callee: BaresipFactory, fr: World
) -> None:
    callee = baresip_callee(user=NUMBER)

    async def press_nine() -> None:
        # Once the call is up, baresip presses 9 as RFC 4733 events.
        for _ in range(100):
            await asyncio.sleep(0.1)
            if await asyncio.to_thread(callee.active_calls):
                await asyncio.sleep(1.0)
                await asyncio.to_thread(callee.sndcode, "9")
                return

    presser = asyncio.create_task(press_nine())
    record = await fr.call(callee.uri.split("@", 1)[1])
    await presser
    assert ("9", "rfc4733") in [(d, how) for d, how, _ in record.dtmf], record
    assert record.outcome == "opted_out"


# -- the opt-out line -----------------------------------------------------------------------


@dataclass
class LineRig:
    line: OptoutLine
    address: str
    close: Callable[[], Coroutine[Any, Any, None]]


async def start_line(world: World) -> LineRig:
    endpoint = Endpoint(
        EndpointSettings(user_agent="gateway-test"),
        # The carrier's calls come from loopback: its address is the trunk's.
        [
            TrunkSettings(
                "carrier", "sip:127.0.0.1:5999", keepalive_interval=0, sources=("127.0.0.1",)
            )
        ],
        rng=random.Random(5),
    )
    service = CallService(endpoint)
    transport = SipTransport(endpoint, service.on_event)
    service.attach(transport)
    host, port = await transport.listen(ListenSpec("udp", "127.0.0.1", 0))
    media = MediaEngine(host="127.0.0.1", port_min=0, port_max=0, rng=random.Random(6))
    advertiser = load_advertiser(ADVERTISER)
    line = OptoutLine(
        service,
        media,
        world.store,
        {"+33162000001": prepare_line(advertiser, "9", "fr", PromptSettings(work_dir=world.tmp))},
        clock=lambda: NOW,
        media_address="127.0.0.1",
    )
    line.attach()

    async def close() -> None:
        await line.close()
        await media.close()
        await transport.close()

    return LineRig(line, f"{host}:{port}", close)


async def test_optout_line_records_the_callers_opposition(fr: World, tmp_path: Path) -> None:
    rig = await start_line(fr)
    try:
        # A person calls the number that called them and presses 9 after 1.5 s.
        stats = await asyncio.to_thread(
            run_sipp_uac,
            "uac_optout_line",
            rig.address,
            tmp_path / "caller",
            service="+33162000001",
            timeout=30,
        )
    finally:
        await rig.close()
    # SIPp's scenario succeeds only if the line hung up on it after the key press.
    assert stats.ok, stats
    assert await fr.store.is_opposed(NUMBER, "maison-dupont")
    (call,) = rig.line.calls
    assert (call.caller, call.called, call.opted_out) == (NUMBER, "+33162000001", True)
    oppositions = await fr.store.oppositions_for(NUMBER)
    assert [o.source for o in oppositions] == ["callback_line"]


async def test_optout_line_refuses_a_number_that_is_no_caller_id(fr: World) -> None:
    rig = await start_line(fr)
    caller = await Uac.start([TrunkSettings("line", f"sip:{rig.address}", keepalive_interval=0)])
    try:
        call = caller.call("line", to_user="+33199999999")
        ended = await caller.wait_ended(call)
    finally:
        await caller.close()
        await rig.close()
    assert (ended.cause, ended.answered) == (404, False)
    assert rig.line.calls == []


async def test_what_baresip_hears_is_our_announcement(
    baresip_callee: BaresipFactory, fr: World, tmp_path: Path
) -> None:
    """A real peer's recording of our stream decodes back to the prompts (issue 3)."""
    callee = baresip_callee(user=NUMBER, record_dir=tmp_path / "heard")
    record = await fr.call(callee.uri.split("@", 1)[1])
    assert record.outcome == "completed", record
    callee.stop()  # baresip closes its files when it exits
    (heard,) = sorted((tmp_path / "heard").glob("dump-*-dec.wav"))
    audio, rate = soundfile.read(heard, dtype="int16")
    assert rate == 8000
    recorded = audio.astype(np.float64)
    start = 0
    for segment in fr.plan.segments:  # identity, opt-out instruction, message, in order
        ref = segment.prompt.samples.astype(np.float64)
        if segment is fr.plan.segments[-1]:
            # The BYE ends baresip's file with up to its jitter buffer (200 ms) still unplayed.
            ref = ref[:-1600]
        score, start = best_ncc(recorded, ref, start, start + 8000)
        assert score >= 0.99, (segment.name, score)
        start += ref.size - 200


def best_ncc(
    recorded: npt.NDArray[np.float64], ref: npt.NDArray[np.float64], lo: int, hi: int
) -> tuple[float, int]:
    """The best normalised cross-correlation of ``ref`` placed between samples lo and hi."""
    hi = min(hi, recorded.size - ref.size)
    assert hi >= lo, "the recording is shorter than the announcement"
    window = recorded[lo : hi + ref.size]
    scores = np.correlate(window, ref, mode="valid")
    energy = np.convolve(window * window, np.ones(ref.size), mode="valid")
    ncc = scores / np.sqrt(np.maximum(energy, 1e-9) * float(np.dot(ref, ref)))
    best = int(np.argmax(ncc))
    return float(ncc[best]), lo + best
