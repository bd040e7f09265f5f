"""The gateway's configuration: one TOML file mapped onto frozen dataclasses.

Every key has a default where one makes sense, so a file holding only ``[sip] listen`` and one
trunk runs. A key the gateway does not know is an error that names it (with its table), because
a misspelt ``pasword`` silently ignored is a trunk that never authenticates.

Standard library only: the cores never see this module; ``app.py`` and ``cli.py`` pass plain
values down.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Config",
    "ConfigError",
    "ConsentConfig",
    "MediaConfig",
    "RunConfig",
    "SipConfig",
    "StoreConfig",
    "TlsConfig",
    "TrunkConfig",
    "load",
    "loads",
]


class ConfigError(ValueError):
    """The configuration file is wrong; the message names the key and the file."""


@dataclass(frozen=True)
class TlsConfig:
    """TLS for the SIP listener and for trunks reached over ``transport=tls``."""

    #: PEM certificate chain presented by the gateway's TLS listener ("" = no TLS listener).
    certificate: str = ""
    #: PEM private key of that certificate.
    private_key: str = ""
    #: PEM bundle of the authorities that trunk certificates must chain to ("" = system store).
    ca_file: str = ""
    #: Verify the trunk's certificate and host name (RFC 5922). Turn off only for a lab.
    verify: bool = True


@dataclass(frozen=True)
class SipConfig:
    """The SIP user agent: where it listens and its RFC 3261 timers."""

    #: ``transport:host:port`` for each socket; IPv6 hosts in brackets (``udp:[::1]:5060``).
    listen: tuple[str, ...] = ("udp:127.0.0.1:5060",)
    #: RFC 3261 section 17.1.1.1: round-trip estimate, seconds.
    t1: float = 0.5
    #: Maximum retransmission interval for non-INVITE requests and INVITE responses, seconds.
    t2: float = 4.0
    #: Maximum time a message stays in the network, seconds.
    t4: float = 5.0
    #: Largest message accepted, in bytes; a bigger one on a stream closes the connection.
    max_message_size: int = 65536
    #: Value of the User-Agent and Server headers.
    user_agent: str = "gateway/0.1"
    #: Follow 3xx redirections (``true``) or end the call with the 3xx as its cause (``false``).
    follow_redirects: bool = True
    #: Most redirections followed for one call.
    max_redirects: int = 3
    #: Session interval requested in Session-Expires (RFC 4028), seconds; 0 = no session timer.
    session_expires: int = 1800
    #: Smallest session interval accepted (RFC 4028 Min-SE), seconds.
    min_se: int = 90
    #: Seconds an idle TCP or TLS connection is kept open.
    idle_timeout: float = 300.0
    #: Datagrams per second accepted from one address that is not a trunk before it is ignored.
    stranger_rate: int = 50
    tls: TlsConfig = field(default_factory=TlsConfig)


@dataclass(frozen=True)
class TrunkConfig:
    """A SIP trunk: where calls go, and what it takes to be let through."""

    #: SIP URI of the trunk; ``;transport=tcp`` or ``;transport=tls`` selects the transport.
    uri: str
    #: Digest user name, when the trunk challenges (401 or 407).
    username: str = ""
    #: Digest password.
    password: str = ""
    #: Host part of From for calls placed on this trunk ("" = the trunk's host).
    from_domain: str = ""
    #: Seconds between OPTIONS keep-alives; 0 = none.
    keepalive_interval: float = 30.0
    #: Further source addresses (``host`` or ``host:port``) accepted as this trunk.
    allowed_sources: tuple[str, ...] = ()
    #: Calls per second the trunk accepts, shared by every campaign using it (0 = no limit).
    calls_per_second: float = 0.0
    #: Concurrent calls the trunk accepts, shared likewise (0 = no limit).
    max_concurrent: int = 0


@dataclass(frozen=True)
class MediaConfig:
    """RTP: the ports calls take and how they are sent."""

    #: First RTP port (even); RTCP takes the next one.
    rtp_port_min: int = 20000
    #: Last RTP port.
    rtp_port_max: int = 29999
    #: Address the RTP sockets bind to and the SDP advertises ("" = the SIP listener's).
    address: str = ""
    #: Payload type offered for telephone-event/8000.
    telephone_event_payload_type: int = 101
    #: Send to where the far end's packets come from (NAT), rather than to its SDP address.
    latch: bool = True
    #: Slots the 20 ms send period is cut into, shared out among calls (smaller send bursts).
    send_phases: int = 20
    #: After a late wake-up of the send clock, the frames missed in the last this many
    #: milliseconds are sent at once (the far end's jitter buffer absorbs them); older ones are
    #: skipped. 20: never more than one packet at a time, every late frame skipped.
    send_catch_up_ms: int = 100
    #: Listen for DTMF tones in the audio too, besides RFC 4733 events and SIP INFO.
    inband_dtmf: bool = True
    #: Loudness prompts are normalised to, dBFS (gated mean power; a full-scale sine is -3).
    prompt_loudness_dbfs: float = -20.0
    #: Ceiling of the prompts' peak limiter, dBFS.
    prompt_peak_dbfs: float = -1.0
    #: Longest prompt accepted, seconds.
    prompt_max_seconds: float = 300.0
    #: Largest prompt file accepted, bytes.
    prompt_max_bytes: int = 50000000
    #: Directory of converted prompts, named by content hash ("" = convert every time).
    prompt_cache_dir: str = ""


@dataclass(frozen=True)
class StoreConfig:
    """Where the gateway keeps its records."""

    #: ``sqlite:///path/gateway.db`` or ``postgresql://user@host:port/db``.
    url: str = "sqlite:///gateway.db"


@dataclass(frozen=True)
class ConsentConfig:
    """The compliance engine (COMPLIANCE.md): the opposition key, the decision budget, switches."""

    #: Deployment key of the HMAC-SHA256 under which oppositions are kept (16 bytes or more).
    #: Keep it secret and never change it: the database refuses another key.
    opposition_key: str = ""
    #: A file holding that key instead (its whitespace-trimmed content); wins over the key.
    opposition_key_file: str = ""
    #: Milliseconds a decision may take; a slower store gives no call (fails closed).
    decision_budget_ms: float = 50.0
    #: Consent valid at most one year, no tacit renewal (décret 2026-662 as reported).
    consent_max_age: bool = True


@dataclass(frozen=True)
class RunConfig:
    """``gateway run`` as a service."""

    #: Seconds calls in progress may go on after SIGTERM before they are hung up.
    shutdown_grace: float = 30.0
    #: Where synthesised announcements are written ("" = a temporary directory).
    work_dir: str = ""
    #: Directory that relative audio paths of campaign files are read from ("" = the current one).
    campaign_dir: str = ""


@dataclass(frozen=True)
class Config:
    """The whole configuration file."""

    sip: SipConfig = field(default_factory=SipConfig)
    trunks: dict[str, TrunkConfig] = field(default_factory=dict)
    media: MediaConfig = field(default_factory=MediaConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    run: RunConfig = field(default_factory=RunConfig)
    consent: ConsentConfig = field(default_factory=ConsentConfig)


def load(path: str | Path) -> Config:
    """Read and check the TOML file at ``path``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror or exc}") from exc
    return loads(text, source=str(p))


def loads(text: str, source: str = "<config>") -> Config:
    """Parse TOML text into a checked :class:`Config`; errors name ``source`` and the key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    config: Config = _build(Config, data, "", source)
    _check_values(config, source)
    return config


def _check_values(config: Config, source: str) -> None:
    """Values of the right type that cannot work, named like unknown keys (not a traceback
    from the part that would have refused them later)."""
    sip, media = config.sip, config.media
    rules: list[tuple[bool, str, object, str]] = [
        (sip.t1 > 0, "sip.t1", sip.t1, "must be more than 0"),
        (sip.t2 >= sip.t1, "sip.t2", sip.t2, "must be at least sip.t1"),
        (sip.t4 >= 0, "sip.t4", sip.t4, "must not be negative"),
        (sip.max_message_size > 0, "sip.max_message_size", sip.max_message_size, "must be > 0"),
        (sip.max_redirects >= 0, "sip.max_redirects", sip.max_redirects, "must not be negative"),
        # RFC 4028 section 4: Min-SE is at least 90 s, and Session-Expires at least Min-SE.
        (sip.min_se >= 90, "sip.min_se", sip.min_se, "must be at least 90 (RFC 4028)"),
        (
            sip.session_expires == 0 or sip.session_expires >= sip.min_se,
            "sip.session_expires",
            sip.session_expires,
            "must be 0 or at least sip.min_se (RFC 4028)",
        ),
        (sip.idle_timeout > 0, "sip.idle_timeout", sip.idle_timeout, "must be more than 0"),
        (
            20 <= media.send_catch_up_ms <= 1000,
            "media.send_catch_up_ms",
            media.send_catch_up_ms,
            "must be from 20 to 1000",
        ),
        (sip.stranger_rate >= 0, "sip.stranger_rate", sip.stranger_rate, "must not be negative"),
        (
            0 < media.rtp_port_min <= media.rtp_port_max <= 65535,
            "media.rtp_port_min",
            media.rtp_port_min,
            "must be a port no greater than media.rtp_port_max",
        ),
    ]
    for name, trunk in config.trunks.items():
        key = f"trunks.{name}.keepalive_interval"
        rules.append((trunk.keepalive_interval >= 0, key, trunk.keepalive_interval, "must be >= 0"))
    for ok, key, value, text in rules:
        if not ok:
            raise ConfigError(f"{source}: {key} {text}, not {value!r}")


def _build(cls: type[Any], data: Any, where: str, source: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: [{where}] must be a table")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        names = ", ".join(_join(where, k) for k in unknown)
        raise ConfigError(f"{source}: unknown key {names}")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = _join(where, name)
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], key, source)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{source}: missing key {key}")
    return cls(**kwargs)


def _convert(tp: Any, value: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value, key, source)
    if origin is dict:
        _, vtype = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: [{key}] must be a table")
        return {k: _convert(vtype, v, f"{key}.{k}", source) for k, v in value.items()}
    if origin is tuple:
        (itype, _) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {key} must be a list")
        return tuple(_convert(itype, v, f"{key}[{i}]", source) for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value, key, source)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{source}: {key} must be a number, not {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {key} must be an integer, not {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key} must be true or false, not {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {key} must be a string, not {value!r}")
        return value
    raise ConfigError(f"{source}: {key}: unsupported type {tp!r}")  # pragma: no cover


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
