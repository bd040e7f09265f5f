"""``gateway run``: the whole service in one process.

The SIP user agent on its sockets, the media engine, the store, the dialer running the active
campaigns, and the opt-out line answering calls back to the caller IDs. SIGTERM stops dialing,
lets calls in progress end up to ``[run] shutdown_grace`` seconds, then hangs up the rest.

Without an opposition key (``[consent]``) no store can be opened: the user agent still runs
(OPTIONS, keep-alives), but nothing is dialled and inbound calls get 480 -- it fails closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gateway import app
from gateway.calls.dialer import Dialer, TrunkLimits
from gateway.calls.optout_line import Line, OptoutLine
from gateway.calls.outbound import CallContext, CallRecord
from gateway.calls.plan import PromptSettings, prepare_line, prepare_plan
from gateway.calls.service import CallService
from gateway.config import Config, ConfigError
from gateway.consent.model import Decision
from gateway.media.transport import MediaEngine
from gateway.sip.transport import SipTransport, parse_listen
from gateway.store.base import Store

__all__ = ["Gateway", "run"]

log = logging.getLogger("gateway")


@dataclass
class Gateway:
    """The running parts; :meth:`start` builds them from a configuration."""

    config: Config
    service: CallService
    transport: SipTransport
    media: MediaEngine
    store: Store | None
    dialer: Dialer | None
    line: OptoutLine | None
    prompts: PromptSettings
    clock: app.Clock
    _temp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @classmethod
    async def start(
        cls,
        config: Config,
        *,
        clock: app.Clock = app.utc_now,
        rng: random.Random | None = None,
        on_decision: Callable[[Decision], None] | None = None,
        on_record: Callable[[CallRecord], None] | None = None,
        poll_interval: float = 1.0,
    ) -> Gateway:
        rng = rng or random.SystemRandom()
        loop = asyncio.get_running_loop()
        # What is started is closed again, in reverse order, if a later step fails (a bad
        # store URL, a recovery error): no socket, folder or store outlives a failed start.
        async with contextlib.AsyncExitStack() as undo:
            endpoint = app.build_endpoint(config, rng)
            service = CallService(endpoint)
            transport = await app.start_sip(config, endpoint, service.on_event)
            undo.push_async_callback(transport.close)
            service.attach(transport)
            m = config.media
            host = m.address or parse_listen(config.sip.listen[0]).host
            media = MediaEngine(
                host=host,
                port_min=m.rtp_port_min,
                port_max=m.rtp_port_max,
                rng=rng,
                latch=m.latch,
                inband=m.inband_dtmf,
                phases=m.send_phases,
                catch_up=max(1, m.send_catch_up_ms // 20),
            )
            undo.push_async_callback(media.close)
            temp = None
            work = config.run.work_dir
            if not work:
                temp = tempfile.TemporaryDirectory(prefix="gateway-")
                undo.callback(temp.cleanup)
                work = temp.name
            await asyncio.to_thread(Path(work).mkdir, parents=True, exist_ok=True)
            prompts = PromptSettings(
                work_dir=Path(work),
                base_dir=Path(config.run.campaign_dir or "."),
                loudness_dbfs=m.prompt_loudness_dbfs,
                peak_dbfs=m.prompt_peak_dbfs,
                max_seconds=m.prompt_max_seconds,
                max_bytes=m.prompt_max_bytes,
                cache_dir=Path(m.prompt_cache_dir) if m.prompt_cache_dir else None,
            )
            store = await _open_store(config)
            if store is not None:
                undo.push_async_callback(store.close)
            gateway = cls(
                config, service, transport, media, store, None, None, prompts, clock, temp
            )
            endpoint.start_keepalives(loop.time())
            transport.pump()
            if store is not None:
                ctx = CallContext(
                    service,
                    media,
                    store,
                    clock,
                    host,
                    telephone_event_pt=m.telephone_event_payload_type,
                )
                line = OptoutLine(
                    service, media, store, await gateway._lines(), clock=clock, media_address=host
                )
                line.attach()
                gateway.line = line
                undo.push_async_callback(line.close)
                trunks = {
                    name: TrunkLimits(t.calls_per_second or None, t.max_concurrent or None)
                    for name, t in config.trunks.items()
                }
                dialer = Dialer(
                    ctx,
                    lambda campaign, advertiser: prepare_plan(campaign, advertiser, prompts),
                    trunks=trunks,
                    budget=config.consent.decision_budget_ms / 1000,
                    poll_interval=poll_interval,
                    on_decision=on_decision,
                    on_record=on_record,
                )
                undo.push_async_callback(dialer.stop, 0.0)
                recovery = await dialer.start()
                gateway.dialer = dialer
                log.info("dialer started; after the last run: %s", recovery)
            undo.pop_all()  # started: from now on stop() closes them
        return gateway

    async def _lines(self) -> dict[str, Line]:
        """One opt-out line per caller ID of every stored campaign's advertiser."""
        assert self.store is not None
        lines: dict[str, Line] = {}
        for name in await self.store.campaign_names():
            campaign = await self.store.get_campaign(name)
            if campaign is None:
                continue
            advertiser = await self.store.get_advertiser(campaign.advertiser)
            if advertiser is None:
                continue
            numbers = [n for n in advertiser.caller_ids if n not in lines]
            if not numbers:
                continue
            language = "en" if campaign.profile == "us" else campaign.language
            line = await asyncio.to_thread(
                prepare_line, advertiser, campaign.optout_key, language, self.prompts
            )
            for number in numbers:
                lines[number] = line
        return lines

    async def stop(self, grace: float | None = None) -> None:
        """Stop dialing, let calls end for ``grace`` seconds, hang up the rest, close all."""
        grace = self.config.run.shutdown_grace if grace is None else grace
        # In reverse order of start, and each one even if one before it failed.
        async with contextlib.AsyncExitStack() as closing:
            if self._temp is not None:
                closing.callback(self._temp.cleanup)
            if self.store is not None:
                closing.push_async_callback(self.store.close)
            closing.push_async_callback(self.transport.close)
            closing.push_async_callback(self.media.close)
            if self.line is not None:
                closing.push_async_callback(self.line.close)
            if self.dialer is not None:
                closing.push_async_callback(self.dialer.stop, grace)


async def _open_store(config: Config) -> Store | None:
    try:
        key = app.opposition_key(config)
    except ConfigError as exc:
        log.warning("%s: dialing and the opt-out line are off", exc)
        return None
    return await app.open_configured_store(config, key)


async def run(
    config: Config, stop: asyncio.Event | None = None, *, clock: app.Clock = app.utc_now
) -> None:
    """``gateway run``: the service until SIGTERM (or ``stop``)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    gateway = await Gateway.start(config, clock=clock)
    log.info("gateway running; SIGTERM stops it")
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await gateway.stop()
        log.info("gateway stopped")
