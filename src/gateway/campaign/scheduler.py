"""What happens to a contact after each decision and each call: pure rules, given ``now``.

The dialer (``calls/dialer.py``) asks :func:`after_decision` once the compliance engine has
answered, and :func:`after_call` once the call has ended; each returns a :class:`Step`: the
contact's next state, when it is due again, and why. Retries follow the SIP cause
(COMPLIANCE.md section 6, issue 5 item 3):

- 408, 480, 486, 503, and no answer within our ring timeout (487 after our CANCEL): tried again
  ``retry_after`` seconds later, while the campaign's ``max_attempts`` allows it;
- 404, 484, 604: the number cannot be reached; stop;
- 603 Decline: "a callee's rejection is honoured", never retried in the campaign;
- 607 Unwanted (RFC 8197): recorded as an opposition, then stop.

:class:`TokenBucket` paces calls per second (campaigns and trunks), on a monotonic ``now``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

__all__ = [
    "RETRY_CAUSES",
    "STOP_CAUSES",
    "STORE_RETRY",
    "Contact",
    "ContactState",
    "Step",
    "TokenBucket",
    "after_call",
    "after_decision",
    "after_restart",
]

#: Temporary failures: the same number may answer later (RFC 3261 section 21).
RETRY_CAUSES: Final = frozenset({408, 480, 486, 487, 503})
#: Final answers about the number or the person: never tried again in the campaign.
STOP_CAUSES: Final = {
    404: "number not found (404)",
    484: "address incomplete (484)",
    604: "number does not exist anywhere (604)",
    603: "callee declined (603): never retried",
    607: "callee marked the call unwanted (607, RFC 8197): opposition recorded",
}
#: Outcomes that end the contact's part in the campaign: someone answered.
ANSWERED_OUTCOMES: Final = frozenset({"completed", "opted_out", "hung_up"})
#: A defer with no time (store slow or failing): ask again shortly, never at once in a loop.
STORE_RETRY: Final = timedelta(seconds=5)


class ContactState(enum.StrEnum):
    """Where a contact stands in its campaign."""

    PENDING = "pending"  # due at next_at
    CALLING = "calling"  # claimed by a dialer: a decision or a call is under way
    DONE = "done"  # finished: answered, denied, or attempts used up
    STOPPED = "stopped"  # a refusal: an opposition or a final SIP cause


@dataclass(frozen=True)
class Contact:
    """One number of a campaign as the store keeps it."""

    campaign: str
    number: str
    state: ContactState
    attempts: int
    next_at: datetime
    last_cause: int | None = None
    last_outcome: str = ""
    reason: str = ""
    attempt_id: int | None = None


@dataclass(frozen=True)
class Step:
    """What to do with a contact now: its next state, when it is due again, and why."""

    state: ContactState
    reason: str
    next_at: datetime | None = None
    #: Place the call now (an ``allow``).
    call: bool = False
    #: Record an opposition for the number before anything else (607 Unwanted).
    oppose: bool = False


def after_decision(
    verdict: str, rule: str | None, reason: str, until: datetime | None, now: datetime
) -> Step:
    """The compliance engine's answer (``allow``, ``deny`` or ``defer``) -> the next step."""
    if verdict == "allow":
        return Step(ContactState.CALLING, "allowed", call=True)
    why = f"{rule}: {reason}" if rule else reason
    if verdict == "deny":
        # An opposition is a refusal by the person; the other denials are about the data.
        state = ContactState.STOPPED if rule == "opposition" else ContactState.DONE
        return Step(state, why)
    if verdict == "defer":
        # "defer" carries the earliest time the answer could change; a defer without one is a
        # store that failed or was slow: fail closed now, ask again a little later.
        return Step(ContactState.PENDING, why, next_at=until if until else now + STORE_RETRY)
    raise ValueError(f"unknown verdict {verdict!r}")


def after_call(
    outcome: str,
    sip_cause: int | None,
    *,
    attempts: int,
    max_attempts: int,
    retry_after: float,
    now: datetime,
) -> Step:
    """A call's end (``CallRecord.outcome`` and SIP cause) -> the next step.

    ``attempts`` counts the allowed attempts of this campaign for the number, this one included.
    """
    if outcome in ANSWERED_OUTCOMES:
        return Step(ContactState.DONE, outcome)
    if outcome == "not_called":
        # place_call's last-moment re-check found an opposition (COMPLIANCE.md 5, step 7).
        return Step(ContactState.STOPPED, "opposition registered before the INVITE")
    if sip_cause in STOP_CAUSES:
        return Step(ContactState.STOPPED, STOP_CAUSES[sip_cause], oppose=sip_cause == 607)
    temporary = (
        sip_cause in RETRY_CAUSES
        or outcome in ("no_answer", "failed", "error")
        or (sip_cause is not None and 500 <= sip_cause < 600)
    )
    if not temporary:
        # Another refusal (403, 410, 488, 606...): do not insist on what we do not understand.
        return Step(ContactState.STOPPED, f"{outcome or 'ended'} ({sip_cause})")
    why = f"{outcome} ({sip_cause})" if sip_cause is not None else outcome
    return _retry(why, attempts, max_attempts, retry_after, now)


def after_restart(attempts: int, max_attempts: int, retry_after: float, now: datetime) -> Step:
    """A contact left ``calling`` by a dialer that died: its attempt may have rung the person,
    so it counts, and the next one waits ``retry_after`` like any retry."""
    return _retry("interrupted by a restart", attempts, max_attempts, retry_after, now)


def _retry(why: str, attempts: int, max_attempts: int, retry_after: float, now: datetime) -> Step:
    if attempts >= max_attempts:
        return Step(ContactState.DONE, f"{why}; {attempts} attempts, the campaign's maximum")
    return Step(ContactState.PENDING, why, next_at=now + timedelta(seconds=retry_after))


class TokenBucket:
    """Calls per second: ``rate`` tokens a second, at most ``burst`` saved up.

    ``burst = 1`` spaces calls exactly ``1 / rate`` apart; the clock is a monotonic ``now``.
    """

    def __init__(self, rate: float, burst: float = 1.0, now: float = 0.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be more than 0")
        self.rate, self.burst = rate, max(1.0, burst)
        self.tokens, self.stamp = self.burst, now

    def _fill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)

    def ready(self, now: float) -> bool:
        self._fill(now)
        return self.tokens >= 1.0

    def take(self, now: float) -> None:
        """Spend one token (check :meth:`ready` first)."""
        self._fill(now)
        self.tokens -= 1.0

    def refund(self) -> None:
        """Give back a token that sent nothing (the decision was not ``allow``)."""
        self.tokens = min(self.burst, self.tokens + 1.0)

    def wait(self, now: float) -> float:
        """Seconds until a token is ready (0 if one is)."""
        self._fill(now)
        return max(0.0, (1.0 - self.tokens) / self.rate)
