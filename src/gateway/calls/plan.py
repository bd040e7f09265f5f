"""A campaign's call plan: its announcement turned into prompts once, before any call.

Text segments are synthesised with espeak-ng in the campaign's language (so the words are on
record), audio segments loaded from their files; every prompt is decoded, resampled,
normalised and G.711-encoded here, so that sending a packet is slicing a cached buffer.
A segment that cannot be prepared stops the campaign with a message naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateway.calls.optout_line import Line
from gateway.calls.outbound import CallPlan
from gateway.campaign.model import Advertiser, Campaign
from gateway.campaign.model import Segment as SegmentSource
from gateway.consent.profiles import PROFILES
from gateway.media.player import Segment
from gateway.media.prompts import Prompt, load_prompt, prompt_from_text

__all__ = ["PromptSettings", "announcement_problems", "prepare_line", "prepare_plan"]

#: What the opt-out line says, by language: who called, and the key that stops the calls.
LINE_WORDS = {
    "fr": (
        "Vous avez été appelé par {name}. Pour ne plus recevoir ses appels, appuyez sur {key}.",
        "Votre opposition est enregistrée. Vous ne serez plus appelé par {name}. Au revoir.",
    ),
    "en": (
        "You were called by {name}. To stop these calls, press {key}.",
        "Your request is recorded. {name} will not call you again. Goodbye.",
    ),
}


@dataclass(frozen=True)
class PromptSettings:
    work_dir: Path
    base_dir: Path = Path()
    loudness_dbfs: float = -20.0
    peak_dbfs: float = -1.0
    max_seconds: float = 300.0
    max_bytes: int = 50_000_000
    cache_dir: Path | None = None


def prepare_plan(campaign: Campaign, advertiser: Advertiser, settings: PromptSettings) -> CallPlan:
    """Every segment of ``campaign`` as a prompt, in announcement order (PromptError if bad)."""
    segments = tuple(
        Segment(name, _prompt(name, source, campaign.language, settings))
        for name, source in campaign.announcement.segments
    )
    confirmation = None
    if campaign.announcement.confirmation is not None and campaign.profile != "us":
        # 47 CFR 64.1200(b)(3): under the US profile an opt-out disconnects at once.
        source = campaign.announcement.confirmation
        confirmation = Segment(
            "confirmation", _prompt("confirmation", source, campaign.language, settings)
        )
    limits = campaign.limits
    return CallPlan(
        campaign=campaign.name,
        advertiser=advertiser.id,
        trunk=campaign.trunk,
        caller_id=campaign.caller_id,
        optout_key=campaign.optout_key,
        segments=segments,
        confirmation=confirmation,
        ring_timeout=limits.ring_timeout,
        max_duration=limits.max_call_duration,
    )


def announcement_problems(campaign: Campaign, plan: CallPlan) -> list[str]:
    """What the prepared announcement breaks, for ``gateway campaign start`` (issue 5, item 2).

    The whole announcement must be heard within the call's maximum duration, and the call must
    fit inside one opening of the calling window (D223-9; 47 CFR 64.1200(c)(1)): a message
    longer than every opening could never be placed. Under the US profile the opt-out
    instruction must start within 2 s of the identification (64.1200(b)(3)); the player plays
    it right after the identity, so only a silence at the identity's end could delay it.
    """
    problems: list[str] = []
    lengths = {s.name: s.prompt.duration for s in plan.segments}
    total = sum(lengths.values())
    if total > plan.max_duration:
        problems.append(
            f"the announcement lasts {total:.1f} s, more than max_call_duration "
            f"{plan.max_duration:.0f} s"
        )
    profile = PROFILES.get(campaign.profile)
    if profile is not None:
        openings = [
            (end.hour * 3600 + end.minute * 60) - (start.hour * 3600 + start.minute * 60)
            for spans in profile.hours.values()
            for start, end in spans
        ]
        longest = max(openings, default=0)
        if min(total, plan.max_duration) > longest:
            problems.append(
                f"the message ({total:.0f} s) fits in no calling window (longest {longest} s)"
            )
    identity = next((s for s in plan.segments if s.name == "identity"), None)
    if campaign.profile == "us" and identity is not None:
        tail = _trailing_silence(identity.prompt)
        if tail > 2.0:
            problems.append(
                f"the opt-out instruction starts {tail:.1f} s after the identity ends (2 s at most)"
            )
    return problems


def _trailing_silence(prompt: Prompt) -> float:
    """Seconds of near-silence (below -50 dBFS) at the end of ``prompt``."""
    loud = np.flatnonzero(np.abs(prompt.samples.astype(np.int32)) > 100)
    last = int(loud[-1]) + 1 if loud.size else 0
    return (prompt.samples.size - last) / 8000


def prepare_line(advertiser: Advertiser, key: str, language: str, settings: PromptSettings) -> Line:
    """The opt-out line of ``advertiser``'s caller IDs, its words synthesised."""
    lang = language if language in LINE_WORDS else "en"
    greeting, confirmation = (
        text.format(name=advertiser.legal_name, key=_spoken_key(key, lang))
        for text in LINE_WORDS[lang]
    )
    return Line(
        advertiser=advertiser.id,
        key=key,
        greeting=Segment(
            "greeting", _prompt("greeting", SegmentSource(text=greeting), lang, settings)
        ),
        confirmation=Segment(
            "confirmation",
            _prompt("confirmation", SegmentSource(text=confirmation), lang, settings),
        ),
    )


def _spoken_key(key: str, language: str) -> str:
    names = {"fr": {"*": "étoile", "#": "dièse"}, "en": {"*": "star", "#": "pound"}}
    return names.get(language, {}).get(key, key)


def _prompt(name: str, source: SegmentSource, language: str, s: PromptSettings) -> Prompt:
    if source.text:
        return prompt_from_text(
            source.text,
            language,
            s.work_dir,
            name=name,
            target_dbfs=s.loudness_dbfs,
            peak_dbfs=s.peak_dbfs,
            cache_dir=s.cache_dir,
        )
    path = Path(source.audio)
    if not path.is_absolute():
        path = s.base_dir / path
    return load_prompt(
        path,
        target_dbfs=s.loudness_dbfs,
        peak_dbfs=s.peak_dbfs,
        max_seconds=s.max_seconds,
        max_bytes=s.max_bytes,
        cache_dir=s.cache_dir,
        name=name,
    )
