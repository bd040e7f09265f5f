"""Our user agent places calls to real callees (SIPp, baresip, pjsua2), directly and through a
Kamailio trunk that demands digest authentication over UDP, TCP and TLS (issue 2, "Prove it").

Each test checks what an operator would: the call's outcome and cause as our user agent reports
it, and what the peer saw (SIPp's own verdict on its scenario, the messages it received).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from gateway.sip.endpoint import TrunkSettings
from gateway.sip.events import CallAnswered, CallEnded, CallProgressed, CallUpdated
from gateway.sip.uri import SipURI
from tests.interop.conftest import (
    BaresipFactory,
    KamailioFactory,
    Pjsua2Factory,
    SippUasFactory,
)
from tests.interop.uac import Uac

UacFactory = Callable[..., Coroutine[Any, Any, Uac]]


@pytest.fixture
async def uac() -> AsyncIterator[UacFactory]:
    started: list[Uac] = []

    async def make(trunks: list[TrunkSettings], **kwargs: Any) -> Uac:
        u = await Uac.start(trunks, **kwargs)
        started.append(u)
        return u

    yield make
    for u in started:
        await u.close()


def direct(uri: str) -> list[TrunkSettings]:
    """The callee itself as the trunk: calls go straight to it."""
    target = SipURI.parse(uri)
    target.user = None
    return [TrunkSettings("callee", str(target), keepalive_interval=0)]


async def test_answered_call_then_our_bye(sipp_uas: SippUasFactory, uac: UacFactory) -> None:
    callee = sipp_uas("uas_answer")
    ua = await uac(direct(callee.uri()))
    call = ua.call("callee")
    ringing = await ua.wait_for(CallProgressed, call)
    assert isinstance(ringing, CallProgressed) and ringing.status == 180
    answered = await ua.wait_for(CallAnswered, call)
    assert isinstance(answered, CallAnswered)
    assert (answered.audio.codec, answered.audio.telephone_event_pt) == ("PCMU", 101)
    assert answered.audio.remote_port == callee.media_port
    ua.hangup(call)
    ended = await ua.wait_ended(call)
    assert (ended.cause, ended.by, ended.answered) == (200, "local", True)
    assert await callee.wait_async(10) == 0, callee.stats
    assert callee.stats.successful == 1


@pytest.mark.parametrize(("scenario", "cause"), [("uas_busy", 486), ("uas_decline", 603)])
async def test_rejected_call_ends_with_its_cause(
    sipp_uas: SippUasFactory, uac: UacFactory, scenario: str, cause: int
) -> None:
    callee = sipp_uas(scenario)
    ua = await uac(direct(callee.uri()))
    call = ua.call("callee")
    ended = await ua.wait_ended(call)
    assert (ended.cause, ended.by, ended.answered) == (cause, "remote", False)
    # SIPp's scenario expects the ACK of the rejection: its success proves we sent it.
    assert await callee.wait_async(10) == 0, callee.stats
    assert len(callee.received("ACK ")) == 1


async def test_ring_timeout_cancels(sipp_uas: SippUasFactory, uac: UacFactory) -> None:
    callee = sipp_uas("uas_noanswer")
    ua = await uac(direct(callee.uri()))
    call = ua.call("callee", ring_timeout=1.0)
    ended = await ua.wait_ended(call)
    assert (ended.cause, ended.by) == (487, "local")
    assert await callee.wait_async(10) == 0, callee.stats
    assert len(callee.received("CANCEL ")) == 1


async def test_far_end_bye(sipp_uas: SippUasFactory, uac: UacFactory) -> None:
    callee = sipp_uas("uas_far_bye")
    ua = await uac(direct(callee.uri()))
    call = ua.call("callee")
    ended = await ua.wait_ended(call)
    assert (ended.cause, ended.by, ended.answered) == (200, "remote", True)
    assert await callee.wait_async(10) == 0, callee.stats


async def test_reinvite_puts_us_on_hold(sipp_uas: SippUasFactory, uac: UacFactory) -> None:
    callee = sipp_uas("uas_reinvite")
    ua = await uac(direct(callee.uri()))
    call = ua.call("callee")
    updated = await ua.wait_for(CallUpdated, call)
    assert isinstance(updated, CallUpdated) and updated.audio.on_hold
    ended = await ua.wait_ended(call)
    assert (ended.cause, ended.by) == (200, "remote")
    # The scenario fails unless our 200 to its re-INVITE answered a=recvonly or a=inactive.
    assert await callee.wait_async(10) == 0, callee.stats


async def test_retransmitted_200_is_acked_again(sipp_uas: SippUasFactory, uac: UacFactory) -> None:
    callee = sipp_uas("uas_lost_200")
    ua = await uac(direct(callee.uri()))
    call = ua.call("callee")
    await ua.wait_for(CallAnswered, call)
    await asyncio.sleep(1.5)  # the scenario re-sends its 200 after 500 ms and wants a second ACK
    ua.hangup(call)
    await ua.wait_ended(call)
    assert await callee.wait_async(10) == 0, callee.stats
    acks = callee.received("ACK ")
    assert len(acks) == 2 and acks[0] == acks[1]


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
async def test_call_through_authenticating_kamailio(
    sipp_uas: SippUasFactory,
    kamailio_trunk: KamailioFactory,
    uac: UacFactory,
    transport: str,
    algorithm: str,
) -> None:
    callee = sipp_uas("uas_answer")
    trunk = kamailio_trunk(callee=callee.uri(), algorithm=algorithm)  # type: ignore[arg-type]
    settings = TrunkSettings(
        "kamailio",
        trunk.uri(transport),  # type: ignore[arg-type]
        username=trunk.username,
        password=trunk.password,
        keepalive_interval=0,
    )
    ua = await uac([settings], ca_file=str(trunk.ca_file))
    call = ua.call("kamailio", to_user="15551234567")
    await ua.wait_for(CallAnswered, call)
    ua.hangup(call)
    ended = await ua.wait_ended(call)
    assert (ended.cause, ended.by) == (200, "local")
    assert await callee.wait_async(10) == 0, callee.stats
    # Our ACK and BYE followed the Record-Route set: they reached the callee through Kamailio,
    # whose Via they carry.
    bye = callee.received("BYE ")
    assert len(bye) == 1 and f":{trunk.port('udp')}" in bye[0].split("\n", 3)[1]


async def test_wrong_password_fails_with_407(
    sipp_uas: SippUasFactory, kamailio_trunk: KamailioFactory, uac: UacFactory
) -> None:
    callee = sipp_uas("uas_answer")
    trunk = kamailio_trunk(callee=callee.uri(), transports=("udp",))
    settings = TrunkSettings(
        "kamailio", trunk.uri("udp"), username="gw", password="wrong", keepalive_interval=0
    )
    ua = await uac([settings])
    call = ua.call("kamailio", to_user="15551234567")
    ended = await ua.wait_ended(call)
    assert (ended.cause, ended.by, ended.answered) == (407, "remote", False)


async def test_baresip_answers(baresip_callee: BaresipFactory, uac: UacFactory) -> None:
    callee = baresip_callee()
    ua = await uac(direct(callee.uri))
    call = ua.call("callee")
    answered = await ua.wait_for(CallAnswered, call)
    assert isinstance(answered, CallAnswered) and answered.audio.codec == "PCMU"
    ua.hangup(call)
    ended = await ua.wait_ended(call)
    assert (ended.cause, ended.by) == (200, "local")


async def test_baresip_hangs_up(baresip_callee: BaresipFactory, uac: UacFactory) -> None:
    callee = baresip_callee()
    ua = await uac(direct(callee.uri))
    call = ua.call("callee")
    await ua.wait_for(CallAnswered, call)
    await asyncio.to_thread(callee.hangup)
    ended = await ua.wait_ended(call)
    assert (ended.cause, ended.by) == (200, "remote")


async def test_pjsua2_answers(pjsua2_callee: Pjsua2Factory, uac: UacFactory) -> None:
    callee = pjsua2_callee()
    ua = await uac(direct(callee.uri))
    call = ua.call("callee")
    answered = await ua.wait_for(CallAnswered, call)
    assert isinstance(answered, CallAnswered) and answered.audio.codec in ("PCMU", "PCMA")
    ua.hangup(call)
    ended = await ua.wait_ended(call)
    assert (ended.cause, ended.by) == (200, "local")


async def test_callee_ended_events_are_final(sipp_uas: SippUasFactory, uac: UacFactory) -> None:
    """After CallEnded, nothing more is reported for the call (no double end)."""
    callee = sipp_uas("uas_busy")
    ua = await uac(direct(callee.uri()))
    call = ua.call("callee")
    await ua.wait_ended(call)
    await callee.wait_async(10)
    kinds = ua.kinds(call)
    assert kinds[-1] == "CallEnded" and kinds.count("CallEnded") == 1
    assert isinstance(ua.events[call][-1], CallEnded)
