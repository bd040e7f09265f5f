"""The one entry point the dialer calls right before each INVITE.

COMPLIANCE.md section 5: the decision fails closed. A store error, or a store slower than the
decision budget (50 ms by default, ``[consent] decision_budget_ms``), gives no call: a ``defer``
with rule ``store`` and no ``until``. Only ``Decision.allowed`` lets a call be placed.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from gateway.consent.model import Decision, RuleResult, Verdict
from gateway.consent.policy import PolicySettings
from gateway.store.base import Store

__all__ = ["DEFAULT_BUDGET", "decide_and_reserve"]

DEFAULT_BUDGET = 0.050
log = logging.getLogger(__name__)


async def decide_and_reserve(
    store: Store,
    campaign: str,
    number: str,
    now: datetime,
    *,
    budget: float = DEFAULT_BUDGET,
    settings: PolicySettings | None = None,
) -> Decision:
    """Decide for ``number`` in ``campaign`` at ``now`` and, on ``allow``, reserve the attempt.

    The returned decision is already recorded (``attempt_id``) unless the store failed. Re-check
    ``await store.is_opposed(number, advertiser)`` at the last moment before the INVITE, and
    report what happened with ``await store.record_outcome(decision.attempt_id, ...)``.
    """
    try:
        async with asyncio.timeout(budget):  # no extra task, unlike wait_for
            return await store.decide_and_reserve(
                campaign, number, now, settings or PolicySettings()
            )
    except TimeoutError:
        reason = f"store slower than the decision budget of {budget * 1000:.0f} ms"
    except Exception as exc:  # fail closed on any store error, whatever it is
        reason = f"store error: {type(exc).__name__}: {exc}"
    log.warning("no call to %s for %s: %s", number, campaign, reason)
    return Decision(
        verdict=Verdict.DEFER,
        rule="store",
        reason=reason,
        rules=(RuleResult("store", "fail", reason),),
        decided_at=now,
        number=number,
        campaign=campaign,
    )
