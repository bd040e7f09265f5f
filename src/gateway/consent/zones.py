"""From a number to the time zones and the holiday calendar of the callee.

Numbering plans (phonenumbers) and holiday calendars (holidays) are data, not I/O. A number may
belong to several zones (a US area code across a zone boundary, a non-geographic range): then
the window is the intersection of the windows of every candidate zone, as 47 CFR 64.1200(c)(1)
is read where the callee's zone is uncertain (COMPLIANCE.md section 3).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import phonenumbers
from phonenumbers import PhoneNumberType
from phonenumbers import timezone as pn_timezone

__all__ = [
    "Interval",
    "NumberFacts",
    "intersect",
    "is_holiday",
    "number_facts",
    "open_intervals",
    "to_e164",
]

Interval = tuple[datetime, datetime]

#: Number types an automated call may reach; the rest (premium rate, toll free, shared cost,
#: pagers, voicemail access, UAN, unknown) are "otherwise protected" (COMPLIANCE.md 5, step 2).
CALLABLE_TYPES = frozenset(
    {
        PhoneNumberType.FIXED_LINE,
        PhoneNumberType.MOBILE,
        PhoneNumberType.FIXED_LINE_OR_MOBILE,
        PhoneNumberType.VOIP,
        PhoneNumberType.PERSONAL_NUMBER,
    }
)
_TYPE_NAMES = {v: k.lower() for k, v in vars(PhoneNumberType).items() if isinstance(v, int)}


@dataclass(frozen=True, slots=True)
class NumberFacts:
    """What the numbering plan says about one E.164 number."""

    e164: str
    region: str
    zones: tuple[str, ...]
    number_type: str
    callable: bool


def to_e164(text: str) -> str | None:
    """``text`` as a valid E.164 number (``+`` and digits), or None if it is not one."""
    text = text.strip()
    if not text.startswith("+"):
        return None
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    e164: str = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return e164


@functools.lru_cache(maxsize=65536)
def number_facts(number: str) -> NumberFacts | None:
    """Region, candidate zones and type of ``number``; None when it is not valid E.164."""
    if not number.startswith("+"):
        return None
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    if phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) != number:
        return None  # valid, but not written as E.164 ("+33 6 12...")
    region = phonenumbers.region_code_for_number(parsed) or ""
    zones = tuple(
        z for z in pn_timezone.time_zones_for_number(parsed) if z and not z.startswith("Etc/")
    )
    ntype = phonenumbers.number_type(parsed)
    return NumberFacts(
        e164=number,
        region=region,
        zones=zones,
        number_type=_TYPE_NAMES.get(ntype, "unknown"),
        callable=ntype in CALLABLE_TYPES,
    )


@functools.lru_cache(maxsize=256)
def _holidays(region: str, year: int) -> frozenset[date]:
    """Public holidays of ``region`` in ``year``.

    For metropolitan France the calendar of Alsace-Moselle (Good Friday, 26 December) is added:
    a number does not tell the department, and a closed day more is the stricter reading.
    """
    days: set[date] = set(holidays.country_holidays(region, years=year))
    if region == "FR":
        days |= set(holidays.country_holidays("FR", subdiv="57", years=year))
    return frozenset(days)


def is_holiday(region: str, day: date) -> bool:
    """True if ``day`` is a public holiday in ``region`` (unknown regions have none)."""
    try:
        return day in _holidays(region, day.year)
    except NotImplementedError:
        return False


def open_intervals(
    zone: str,
    region: str,
    *,
    hours: dict[int, tuple[tuple[time, time], ...]],
    closed_on_holidays: bool,
    margin: timedelta,
    start: datetime,
    days: int,
) -> list[Interval]:
    """The UTC intervals in which a call of length ``margin`` may start, for ``days`` local days.

    An interval ``[a, b]`` means a call starting at any t with a <= t <= b ends inside the
    calling window of that local day (D223-9: "the whole message ends inside the window").
    Local times are built with zoneinfo, so daylight-saving changes fall where they belong.
    """
    tz = ZoneInfo(zone)
    first = start.astimezone(tz).date() - timedelta(days=1)
    out: list[Interval] = []
    for i in range(days + 1):
        day = first + timedelta(days=i)
        out += _day_intervals(
            zone,
            region,
            day,
            hours=hours.get(day.weekday(), ()),
            closed_on_holidays=closed_on_holidays,
            margin=margin,
        )
    return out


@functools.lru_cache(maxsize=16384)
def _day_intervals(
    zone: str,
    region: str,
    day: date,
    *,
    hours: tuple[tuple[time, time], ...],
    closed_on_holidays: bool,
    margin: timedelta,
) -> tuple[Interval, ...]:
    """One local day's intervals (memoised: every decision of a day asks the same)."""
    if closed_on_holidays and is_holiday(region, day):
        return ()
    tz = ZoneInfo(zone)
    out = []
    for begin, end in hours:
        a = datetime.combine(day, begin, tzinfo=tz).astimezone(UTC)
        b = datetime.combine(day, end, tzinfo=tz).astimezone(UTC) - margin
        if b >= a:
            out.append((a, b))
    return tuple(out)


def intersect(lists: Sequence[Iterable[Interval]]) -> list[Interval]:
    """The intersection of several sorted lists of closed intervals."""
    if not lists:
        return []
    result = sorted(lists[0])
    for other in lists[1:]:
        merged: list[Interval] = []
        right = sorted(other)
        i = j = 0
        while i < len(result) and j < len(right):
            a = max(result[i][0], right[j][0])
            b = min(result[i][1], right[j][1])
            if a <= b:
                merged.append((a, b))
            if result[i][1] < right[j][1]:
                i += 1
            else:
                j += 1
        result = merged
    return result


def intersect_hours(
    a: tuple[tuple[time, time], ...], b: tuple[tuple[time, time], ...]
) -> tuple[tuple[time, time], ...]:
    """Hours open in both ``a`` and ``b`` (a campaign override may only narrow the profile)."""
    out = []
    for s1, e1 in a:
        for s2, e2 in b:
            s, e = max(s1, s2), min(e1, e2)
            if s < e:
                out.append((s, e))
    return tuple(sorted(out))
