"""After a crash: settle the attempts left unfinished and put the interrupted contacts back.

An attempt reserved (``allow``) whose call never ended on record gets an outcome ended by
``error`` (``settled_after_restart``); it keeps counting against every cap, whatever happened on
the wire. A contact left ``calling`` has its attempts recounted from the attempts table (a
reservation made just before the crash counts), then goes back to pending after ``retry_after``,
or to done when its attempts are used up. Oppositions need nothing: each was written durably
before the call went on (COMPLIANCE.md 6), and every later decision reads them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from gateway.campaign.model import Campaign
from gateway.campaign.scheduler import ContactState, after_restart
from gateway.consent.model import AttemptOutcome
from gateway.store.base import Store

__all__ = ["Recovery", "recover"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recovery:
    """What a restart found left by a dialer that died."""

    settled_attempts: tuple[int, ...]
    requeued: tuple[str, ...]
    exhausted: tuple[str, ...]


async def recover(store: Store, clock: Callable[[], datetime]) -> Recovery:
    """Settle unfinished attempts and interrupted contacts (run by one node, before dialing:
    on a shared database another node's calls in progress look like a dead node's)."""
    now = clock()
    settled: list[int] = []
    for d in await store.unsettled_attempts():
        if d.attempt_id is None:
            continue
        outcome = AttemptOutcome(
            ended_at=now, ended_by="error", extra={"settled_after_restart": "true"}
        )
        await store.record_outcome(d.attempt_id, outcome, now)
        settled.append(d.attempt_id)
    requeued: list[str] = []
    exhausted: list[str] = []
    campaigns: dict[str, Campaign | None] = {}
    for c in await store.interrupted():
        if c.campaign not in campaigns:
            campaigns[c.campaign] = await store.get_campaign(c.campaign)
        campaign = campaigns[c.campaign]
        max_attempts = campaign.limits.max_attempts if campaign is not None else 0
        retry_after = campaign.limits.retry_after if campaign is not None else 0.0
        step = after_restart(c.attempts, max_attempts, retry_after, now)
        if step.state is ContactState.PENDING and c.attempts == 0:
            step = dataclasses.replace(step, next_at=now)  # claimed, never decided
        await store.settle_contact(c.campaign, c.number, step, now, outcome="interrupted")
        (requeued if step.state is ContactState.PENDING else exhausted).append(c.number)
    if settled or requeued or exhausted:
        log.warning(
            "after a restart: %d attempts settled, %d contacts requeued, %d done",
            len(settled), len(requeued), len(exhausted),
        )  # fmt: skip
    return Recovery(tuple(settled), tuple(requeued), tuple(exhausted))
