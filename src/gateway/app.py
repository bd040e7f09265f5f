"""The composition root: builds the parts from the configuration and wires them together.

Cores take plain values (``t1=0.5``), never the config object; this module is where the
configuration becomes those values.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from gateway.config import Config, ConfigError
from gateway.sip.endpoint import Endpoint, EndpointSettings, TrunkSettings
from gateway.sip.errors import SipError
from gateway.sip.events import (
    Event,
    OptionsAnswered,
)
from gateway.sip.transaction import Timers
from gateway.sip.transport import SipTransport, client_context, parse_listen, server_context
from gateway.sip.uri import SipURI
from gateway.store import StoreError, open_store
from gateway.store.base import Store

log = logging.getLogger("gateway")

#: What reads the time of day for consent and scheduling: an aware UTC datetime. The edges pass
#: one down (the real one in production, a fixed or simulated one in tests and the demo), so
#: that everything a command or a service stamps comes from the same clock.
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def endpoint_settings(config: Config) -> EndpointSettings:
    sip = config.sip
    return EndpointSettings(
        timers=Timers(t1=sip.t1, t2=sip.t2, t4=sip.t4),
        user_agent=sip.user_agent,
        follow_redirects=sip.follow_redirects,
        max_redirects=sip.max_redirects,
        session_expires=sip.session_expires,
        min_se=sip.min_se,
        stranger_rate=sip.stranger_rate,
    )


def trunk_settings(config: Config) -> list[TrunkSettings]:
    """Each trunk with the IP addresses its requests may come from (names resolved once)."""
    out = []
    for name, trunk in config.trunks.items():
        try:
            uri = SipURI.parse(trunk.uri)
        except SipError as exc:
            raise ConfigError(f"trunks.{name}.uri: {exc}") from exc
        sources = _resolve(uri.host_address)
        for source in trunk.allowed_sources:
            sources |= _resolve(_source_host(source))
        out.append(
            TrunkSettings(
                name=name,
                uri=trunk.uri,
                username=trunk.username,
                password=trunk.password,
                from_domain=trunk.from_domain,
                keepalive_interval=trunk.keepalive_interval,
                sources=tuple(sorted(sources)),
            )
        )
    return out


def _source_host(source: str) -> str:
    """The host of ``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` (an IPv6 address with a
    port lost its last bracket to ``strip``, and never matched)."""
    if source.startswith("["):
        return source[1:].partition("]")[0]
    return source.rsplit(":", 1)[0] if source.count(":") == 1 else source


def _resolve(host: str) -> set[str]:
    """Every address of ``host``: a carrier's name usually has several signalling nodes, and
    taking only the first answered 403 to requests from the others."""
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except OSError:
        return {host}


def build_endpoint(config: Config, rng: random.Random | None = None) -> Endpoint:
    return Endpoint(
        endpoint_settings(config), trunk_settings(config), rng=rng or random.SystemRandom()
    )


async def start_sip(
    config: Config, endpoint: Endpoint, on_event: Callable[[Event], None]
) -> SipTransport:
    """Open every ``[sip] listen`` socket around ``endpoint``."""
    tls = config.sip.tls
    server_ssl = None
    if tls.certificate:
        server_ssl = server_context(tls.certificate, tls.private_key)
    transport = SipTransport(
        endpoint,
        on_event,
        server_ssl=server_ssl,
        client_ssl=client_context(tls.ca_file, tls.verify),
        max_message_size=config.sip.max_message_size,
        idle_timeout=config.sip.idle_timeout,
    )
    for text in config.sip.listen:
        try:
            spec = parse_listen(text)
        except ValueError as exc:
            raise ConfigError(f"sip.listen: {exc}") from exc
        try:
            host, port = await transport.listen(spec)
        except (OSError, ValueError) as exc:
            await transport.close()
            raise ConfigError(f"sip.listen: cannot open {text}: {exc}") from exc
        log.info("listening on %s:%s:%d", spec.transport, host, port)
    return transport


def opposition_key(config: Config) -> bytes:
    """The deployment key oppositions are kept under (COMPLIANCE.md 2: a keyed hash)."""
    c = config.consent
    if c.opposition_key_file:
        try:
            key = Path(c.opposition_key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"consent.opposition_key_file: {exc.strerror or exc}") from exc
    else:
        key = c.opposition_key
    if len(key.encode()) < 16:
        raise ConfigError("set [consent] opposition_key (16 bytes or more) or opposition_key_file")
    return key.encode()


async def open_configured_store(config: Config, key: bytes | None = None) -> Store:
    """The store of ``[store] url``, migrated; a ConfigError says why it cannot be opened."""
    try:
        return await open_store(config.store.url, key or opposition_key(config))
    except (StoreError, OSError) as exc:
        raise ConfigError(f"store {config.store.url}: {exc}") from exc


async def trunk_check(config: Config, name: str, wait: float = 10.0) -> OptionsAnswered:
    """``gateway trunk check``: one OPTIONS to trunk ``name``; its answer or a 408."""
    if name not in config.trunks:
        known = ", ".join(sorted(config.trunks)) or "none"
        raise ConfigError(f"no trunk named {name!r} (configured: {known})")
    endpoint = build_endpoint(config)
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[OptionsAnswered] = loop.create_future()

    def on_event(event: Event) -> None:
        if isinstance(event, OptionsAnswered) and not answer.done():
            # uvloop's loop.time() counts whole milliseconds, so a trunk on the LAN showed
            # "rtt 0.0 ms": the round trip is measured with the performance counter instead.
            answer.set_result(dataclasses.replace(event, rtt=time.perf_counter() - sent_at))

    # An ephemeral port of each listener's transport and host, so a running gateway keeps its own.
    ephemeral = [_ephemeral(text) for text in config.sip.listen if not text.startswith("tls")]
    check_config = Config(
        sip=type(config.sip)(**{**config.sip.__dict__, "listen": tuple(ephemeral)}),
        trunks=config.trunks,
    )
    transport = await start_sip(check_config, endpoint, on_event)
    try:
        sent = loop.time()
        sent_at = time.perf_counter()
        endpoint.options(name, sent)
        transport.pump()
        try:
            return await asyncio.wait_for(answer, wait)
        except TimeoutError:
            return OptionsAnswered("", name, 408, "No answer", loop.time() - sent, loop.time())
    finally:
        await transport.close()


def _ephemeral(text: str) -> str:
    spec = parse_listen(text)
    host = f"[{spec.host}]" if ":" in spec.host else spec.host
    return f"{spec.transport}:{host}:0"
