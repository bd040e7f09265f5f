"""What an advertiser and a campaign are, read from their TOML files (COMPLIANCE.md section 4).

Pure: ``tomllib`` and dataclasses. The structure is checked here and every problem is reported at
once (:class:`DefinitionError` carries them all); the legal checks that need a profile (caller ID
allowed, sector bans, overrides only stricter) are made by ``gateway.consent.policy``.
``Campaign`` satisfies ``gateway.consent.model.CampaignTerms`` structurally.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from typing import Final

__all__ = [
    "Advertiser",
    "Announcement",
    "Campaign",
    "DefinitionError",
    "Limits",
    "Segment",
    "load_advertiser",
    "load_campaign",
    "parse_advertiser",
    "parse_campaign",
]

_CAMPAIGN_KEYS: Final = frozenset(
    {
        "name", "advertiser", "purpose", "audience", "sector", "profile", "caller_id",
        "optout_key", "language", "active", "trunk", "announcement", "limits", "compliance",
        "description",
    }
)  # fmt: skip
_ADVERTISER_KEYS: Final = frozenset(
    {"id", "legal_name", "registered_name", "country", "callback_number", "caller_ids"}
)
_SEGMENTS: Final = ("identity", "optout", "message", "confirmation")
_LIMIT_DEFAULTS: Final[dict[str, float]] = {
    "calls_per_second": 1.0,
    "max_concurrent": 10,
    "max_attempts": 3,
    "retry_after": 3600,
    "ring_timeout": 30,
    "max_call_duration": 120,
}


class DefinitionError(ValueError):
    """A definition file that cannot be valid; ``reasons`` lists every problem found."""

    def __init__(self, source: str, reasons: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(reasons))
        self.source = source
        self.reasons = reasons


@dataclass(frozen=True)
class Advertiser:
    """The party on whose behalf calls are made (L221-16: named at the start of every call)."""

    id: str
    legal_name: str
    country: str
    callback_number: str
    caller_ids: tuple[str, ...]
    registered_name: str = ""
    #: Caller ID -> reference of its assignment or written authorisation (L221-17).
    caller_id_refs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Segment:
    """One part of the announcement: synthesised ``text`` or an ``audio`` file."""

    text: str = ""
    audio: str = ""


@dataclass(frozen=True)
class Announcement:
    """Identity first, the opt-out instruction right after it, then the message."""

    segments: tuple[tuple[str, Segment], ...]
    confirmation: Segment | None = None

    def get(self, name: str) -> Segment | None:
        return dict(self.segments).get(name)


@dataclass(frozen=True)
class Limits:
    """Pacing and call limits (used by the dialer, issue 5); unknown keys are kept in ``extra``."""

    calls_per_second: float = 1.0
    max_concurrent: int = 10
    max_attempts: int = 3
    retry_after: float = 3600.0
    ring_timeout: float = 30.0
    max_call_duration: float = 120.0
    extra: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Campaign:
    """A campaign definition (COMPLIANCE.md section 4)."""

    name: str
    advertiser: str
    purpose: str
    audience: str
    profile: str
    caller_id: str
    optout_key: str
    announcement: Announcement
    sector: str = "general"
    language: str = "fr"
    active: bool = True
    trunk: str = ""
    limits: Limits = field(default_factory=Limits)
    #: Stricter calling hours than the profile's ([campaign.compliance] hours).
    window_override: tuple[tuple[time, time], ...] = ()
    #: A stricter cap: (attempts, window) ([campaign.compliance] cap, cap_days).
    cap_override: tuple[int, timedelta] | None = None
    #: The table as read, so that nothing a later version adds is lost when stored.
    raw: Mapping[str, object] = field(default_factory=dict, compare=False)

    @property
    def segment_order(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.announcement.segments)

    @property
    def call_duration_bound(self) -> timedelta:
        """The longest a call can last: it must end inside the calling window (D223-9)."""
        return timedelta(seconds=self.limits.max_call_duration)


def load_advertiser(text: str, source: str = "<advertiser>") -> Advertiser:
    """Parse an advertiser TOML file (an ``[advertiser]`` table)."""
    return parse_advertiser(_toml(text, source).get("advertiser"), source)


def load_campaign(text: str, source: str = "<campaign>") -> Campaign:
    """Parse a campaign TOML file (a ``[campaign]`` table)."""
    return parse_campaign(_toml(text, source).get("campaign"), source)


def _toml(text: str, source: str) -> dict[str, object]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DefinitionError(source, [f"not valid TOML: {exc}"]) from exc


class _Reader:
    """Typed access to a table that collects problems instead of stopping at the first."""

    def __init__(self, table: Mapping[str, object], where: str) -> None:
        self.table, self.where, self.problems = table, where, list[str]()

    def text(self, key: str, default: str | None = None) -> str:
        value = self.table.get(key, default)
        if value is None:
            self.problems.append(f"{self.where}.{key} is missing")
            return ""
        if not isinstance(value, str):
            self.problems.append(f"{self.where}.{key} must be a string")
            return ""
        return value

    def number(self, key: str, default: float) -> float:
        value = self.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            self.problems.append(f"{self.where}.{key} must be a non-negative number")
            return default
        return float(value)


def parse_advertiser(table: object, source: str = "<advertiser>") -> Advertiser:
    """Build an :class:`Advertiser` from its table, or raise with every problem."""
    if not isinstance(table, dict):
        raise DefinitionError(source, ["[advertiser] table is missing"])
    r = _Reader(table, "advertiser")
    r.problems += [
        f"advertiser.{k} is not a known key" for k in sorted(set(table) - _ADVERTISER_KEYS)
    ]
    caller_ids: list[str] = []
    refs: dict[str, str] = {}
    raw_ids = table.get("caller_ids", [])
    if not isinstance(raw_ids, list) or not raw_ids:
        r.problems.append("advertiser.caller_ids must be a non-empty list")
        raw_ids = []
    for item in raw_ids:
        if isinstance(item, str):
            caller_ids.append(item)
        elif isinstance(item, dict) and isinstance(item.get("number"), str):
            caller_ids.append(str(item["number"]))
            refs[str(item["number"])] = str(item.get("reference", ""))
        else:
            r.problems.append("advertiser.caller_ids: each is a number or {number, reference}")
    adv = Advertiser(
        id=r.text("id"),
        legal_name=r.text("legal_name"),
        registered_name=r.text("registered_name", ""),
        country=r.text("country"),
        callback_number=r.text("callback_number"),
        caller_ids=tuple(caller_ids),
        caller_id_refs=refs,
    )
    if adv.callback_number and not _e164_shape(adv.callback_number):
        r.problems.append("advertiser.callback_number must be an E.164 number (+ and digits)")
    if len(adv.country) != 2 or not adv.country.isupper():
        r.problems.append("advertiser.country must be a two-letter ISO 3166 code")
    if r.problems:
        raise DefinitionError(source, r.problems)
    return adv


def parse_campaign(table: object, source: str = "<campaign>") -> Campaign:
    """Build a :class:`Campaign` from its table, or raise with every problem."""
    if not isinstance(table, dict):
        raise DefinitionError(source, ["[campaign] table is missing"])
    r = _Reader(table, "campaign")
    r.problems += [f"campaign.{k} is not a known key" for k in sorted(set(table) - _CAMPAIGN_KEYS)]
    announcement = _announcement(table.get("announcement"), r.problems)
    limits = _limits(table.get("limits", {}), r.problems)
    hours, cap = _compliance(table.get("compliance", {}), r.problems)
    active = table.get("active", True)
    if not isinstance(active, bool):
        r.problems.append("campaign.active must be true or false")
        active = False
    campaign = Campaign(
        name=r.text("name"),
        advertiser=r.text("advertiser"),
        purpose=r.text("purpose"),
        audience=r.text("audience"),
        sector=r.text("sector", "general"),
        profile=r.text("profile"),
        caller_id=r.text("caller_id"),
        optout_key=r.text("optout_key"),
        language=r.text("language", "fr"),
        trunk=r.text("trunk", ""),
        active=active,
        announcement=announcement,
        limits=limits,
        window_override=hours,
        cap_override=cap,
        raw=table,
    )
    if r.problems:
        raise DefinitionError(source, r.problems)
    return campaign


def _e164_shape(number: str) -> bool:
    return number.startswith("+") and number[1:].isdigit() and 8 <= len(number) <= 16


def _announcement(table: object, problems: list[str]) -> Announcement:
    if not isinstance(table, dict):
        problems.append("[campaign.announcement] table is missing")
        return Announcement(segments=())
    segments: list[tuple[str, Segment]] = []
    confirmation: Segment | None = None
    for name, value in table.items():
        if name not in _SEGMENTS:
            problems.append(f"campaign.announcement.{name} is not a known segment")
            continue
        if not isinstance(value, dict) or set(value) - {"text", "audio"} or len(value) != 1:
            problems.append(
                f"campaign.announcement.{name} must be {{ text = ... }} or {{ audio = ... }}"
            )
            continue
        segment = Segment(text=str(value.get("text", "")), audio=str(value.get("audio", "")))
        if name == "confirmation":
            confirmation = segment
        else:
            segments.append((name, segment))
    for name in ("identity", "optout", "message"):
        if name not in table:
            problems.append(f"campaign.announcement.{name} is missing")
    return Announcement(segments=tuple(segments), confirmation=confirmation)


def _limits(table: object, problems: list[str]) -> Limits:
    if not isinstance(table, dict):
        problems.append("[campaign.limits] must be a table")
        return Limits()
    r = _Reader(table, "campaign.limits")
    values = {k: r.number(k, d) for k, d in _LIMIT_DEFAULTS.items()}
    problems += r.problems
    return Limits(
        calls_per_second=values["calls_per_second"],
        max_concurrent=int(values["max_concurrent"]),
        max_attempts=int(values["max_attempts"]),
        retry_after=values["retry_after"],
        ring_timeout=values["ring_timeout"],
        max_call_duration=values["max_call_duration"],
        extra={k: v for k, v in table.items() if k not in _LIMIT_DEFAULTS},
    )


def _compliance(
    table: object, problems: list[str]
) -> tuple[tuple[tuple[time, time], ...], tuple[int, timedelta] | None]:
    """``[campaign.compliance]``: ``hours = ["10:00-12:00"]``, ``cap``, ``cap_days``."""
    if not isinstance(table, dict):
        problems.append("[campaign.compliance] must be a table")
        return (), None
    for key in sorted(set(table) - {"hours", "cap", "cap_days"}):
        problems.append(f"campaign.compliance.{key} is not a known key")
    hours: list[tuple[time, time]] = []
    raw_hours = table.get("hours", [])
    for item in raw_hours if isinstance(raw_hours, list) else [raw_hours]:
        try:
            begin, end = str(item).split("-")
            hours.append((time.fromisoformat(begin.strip()), time.fromisoformat(end.strip())))
        except ValueError:
            problems.append(f"campaign.compliance.hours: {item!r} is not HH:MM-HH:MM")
    cap: tuple[int, timedelta] | None = None
    if "cap" in table or "cap_days" in table:
        count, days = table.get("cap", 4), table.get("cap_days", 30)
        if not isinstance(count, int) or not isinstance(days, int) or count < 0 or days < 1:
            problems.append("campaign.compliance.cap and cap_days must be positive integers")
        else:
            cap = (count, timedelta(days=days))
    return tuple(sorted(hours)), cap
