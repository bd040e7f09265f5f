"""The rule sets of COMPLIANCE.md sections 2 and 3, as data.

A profile says which numbers it governs, when they may be called, how often, on which legal
bases, and which caller IDs an automated system may present. ``fr`` is French law in force on
2026-11-29; ``fr-2022`` is the CNIL page of 2022 as written (it still accepts the "existing
customer" exception with sale evidence); ``us`` is the TCPA (47 CFR 64.1200).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import time, timedelta

from gateway.consent.model import Basis

__all__ = ["BANNED_SECTORS_FR", "PROFILES", "Profile", "get_profile"]

PURPOSES = ("commercial", "charity", "political", "informational", "survey")
AUDIENCES = ("consumer", "professional")
NON_COMMERCIAL = frozenset({"charity", "political", "informational", "survey"})

#: Code de la consommation L223-1 (loi 2025-594, art. 13): canvassing consumers about these is
#: banned except under a contract in progress.
BANNED_SECTORS_FR = frozenset({"energy_renovation", "housing_adaptation", "renewables"})
#: Code du travail L6323-8-1: canvassing about the personal training account (CPF) is banned.
#: The gateway takes the stricter reading: no basis at all, whatever the audience.
BANNED_OUTRIGHT_FR = frozenset({"cpf_training"})

#: D223-9: Monday to Friday, 10:00-13:00 and 14:00-20:00 in the callee's time zone.
_FR_HOURS = ((time(10), time(13)), (time(14), time(20)))
#: 47 CFR 64.1200(c)(1): 08:00-21:00 local time, every day.
_US_HOURS = ((time(8), time(21)),)

#: ARCEP numbering plan: what an automated system may present in France (COMPLIANCE.md 2).
_FR_VERIFIED = (
    "+33162", "+33163", "+33270", "+33271", "+33377", "+33378",
    "+33424", "+33425", "+33568", "+33569", "+33948", "+33949",
    "+339475", "+339476", "+339477", "+339478", "+339479",
)  # fmt: skip


def _fr_caller_id_ok(caller_id: str) -> bool:
    """L221-17 and the ARCEP plan: verified multi-purpose, special (not 089) or short numbers."""
    if caller_id.startswith(_FR_VERIFIED):
        return True
    if caller_id.startswith("+338") and not caller_id.startswith("+3389"):
        return True  # special numbers 08xx other than 089
    # Short numbers (e.g. 3xxx), written without "+": 4 to 6 digits.
    return caller_id.isdigit() and 4 <= len(caller_id) <= 6


def _us_caller_id_ok(caller_id: str) -> bool:
    """47 CFR 64.1601(e): a caller ID is transmitted and callable back (never withheld)."""
    return caller_id.startswith("+1") and len(caller_id) == 12 and caller_id[1:].isdigit()


def _fr_bases(audience: str, purpose: str, customer_exception: bool) -> frozenset[Basis]:
    """COMPLIANCE.md section 5, step 4, French rows."""
    if audience == "professional":
        return frozenset({Basis.CONSENT, Basis.B2B_INTEREST})
    if purpose in NON_COMMERCIAL:
        return frozenset({Basis.CONSENT, Basis.NON_COMMERCIAL_INTEREST})
    bases = {Basis.CONSENT, Basis.CONTRACT_IN_PROGRESS}
    if customer_exception:
        bases.add(Basis.CUSTOMER_ANALOGOUS)  # refused since 11 Aug 2026 under "fr"
    return frozenset(bases)


def _fr_current(audience: str, purpose: str) -> frozenset[Basis]:
    return _fr_bases(audience, purpose, customer_exception=False)


def _fr_2022(audience: str, purpose: str) -> frozenset[Basis]:
    return _fr_bases(audience, purpose, customer_exception=True)


def _us(audience: str, purpose: str) -> frozenset[Basis]:
    """47 CFR 64.1200(a)(2)-(3): written consent for telemarketing; express for the rest."""
    if purpose == "commercial":
        return frozenset({Basis.US_WRITTEN_CONSENT})
    if purpose in {"informational", "survey"}:
        return frozenset({Basis.US_WRITTEN_CONSENT, Basis.US_EXPRESS_CONSENT})
    return frozenset({Basis.US_WRITTEN_CONSENT, Basis.US_EXPRESS_CONSENT, Basis.US_EXEMPT})


@dataclass(frozen=True)
class Profile:
    """One rule set. Every value is the stricter reading where the law is unclear."""

    name: str
    #: Regions (ISO 3166, as phonenumbers names them) whose numbers this profile may call.
    regions: frozenset[str]
    #: Calling hours in the callee's zone, per weekday (0 = Monday).
    hours: dict[int, tuple[tuple[time, time], ...]]
    #: Public holidays of the callee's country close the window.
    closed_on_holidays: bool
    #: At most ``cap`` attempts per advertiser and number over ``cap_window``; None = no cap.
    cap: int | None
    cap_window: timedelta
    #: Caps tied to one basis, e.g. 3 exempt calls per 30 days (47 CFR 64.1200(c)(3)).
    basis_caps: dict[Basis, int]
    accepted_bases: Callable[[str, str], frozenset[Basis]]
    caller_id_ok: Callable[[str], bool]
    #: Sectors where consumers may be called only under a running contract.
    contract_only_sectors: frozenset[str]
    #: Sectors where no call is possible.
    banned_sectors: frozenset[str]
    #: Consent older than this is no longer valid (décret 2026-662 as reported; a switch).
    consent_max_age: timedelta | None
    #: A short confirmation may follow an opt-out (FR); the US hangs up at once.
    confirmation_allowed: bool


_WEEKDAYS = range(5)

# D223-9 speaks of consumers; the French profiles apply its hours and its cap to professionals
# too (the stricter reading, COMPLIANCE.md preamble). Holidays are those of the number's region
# (with Alsace-Moselle's added for metropolitan France).

PROFILES: dict[str, Profile] = {
    "fr": Profile(
        name="fr",
        regions=frozenset({"FR", "GP", "MQ", "GF", "RE", "YT", "PM", "BL", "MF"}),
        hours={d: _FR_HOURS for d in _WEEKDAYS},
        closed_on_holidays=True,
        cap=4,
        cap_window=timedelta(days=30),
        basis_caps={},
        accepted_bases=_fr_current,
        caller_id_ok=_fr_caller_id_ok,
        contract_only_sectors=BANNED_SECTORS_FR,
        banned_sectors=BANNED_OUTRIGHT_FR,
        consent_max_age=timedelta(days=365),
        confirmation_allowed=True,
    ),
    "fr-2022": Profile(
        name="fr-2022",
        regions=frozenset({"FR", "GP", "MQ", "GF", "RE", "YT", "PM", "BL", "MF"}),
        hours={d: _FR_HOURS for d in _WEEKDAYS},
        closed_on_holidays=True,
        cap=4,
        cap_window=timedelta(days=30),
        basis_caps={},
        accepted_bases=_fr_2022,
        caller_id_ok=_fr_caller_id_ok,
        contract_only_sectors=BANNED_SECTORS_FR,
        banned_sectors=BANNED_OUTRIGHT_FR,
        consent_max_age=None,
        confirmation_allowed=True,
    ),
    "us": Profile(
        name="us",
        regions=frozenset({"US", "PR", "GU", "VI", "AS", "MP"}),
        hours={d: _US_HOURS for d in range(7)},
        closed_on_holidays=False,
        cap=None,
        cap_window=timedelta(days=30),
        basis_caps={Basis.US_EXEMPT: 3},
        accepted_bases=_us,
        caller_id_ok=_us_caller_id_ok,
        contract_only_sectors=frozenset(),
        banned_sectors=frozenset(),
        consent_max_age=None,
        confirmation_allowed=False,
    ),
}


def get_profile(name: str) -> Profile:
    """The profile called ``name``.

    Raises ``KeyError`` for an unknown name: a campaign naming no known profile cannot call.
    """
    return PROFILES[name]
