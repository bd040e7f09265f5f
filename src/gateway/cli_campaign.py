"""Commands that run campaigns (issue 5, item 1).

``gateway contacts import CAMPAIGN FILE.csv`` (a column ``number``; each refused row is reported
with its line and reason, the good rows are kept, a re-import changes nothing), and
``gateway campaign start|pause|status NAME``; each takes ``--config FILE``. Exit status: 0 done,
1 something refused, 2 a user error. The dialer (``gateway run``) follows the run states.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
import tempfile
from pathlib import Path

from gateway.calls.plan import PromptSettings, announcement_problems, prepare_plan
from gateway.campaign.model import Advertiser, Campaign
from gateway.cli_common import UserError, add_config_option, opened_store
from gateway.cli_store import GROUPS, _run
from gateway.config import Config
from gateway.consent.policy import check_campaign
from gateway.consent.zones import to_e164
from gateway.media.prompts import PromptError
from gateway.store import Store, StoreError

__all__ = ["read_contacts", "register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``contacts import`` and ``campaign start|pause|status`` (after ``cli_store``)."""
    contacts = sub.add_parser("contacts", help="the numbers a campaign calls").add_subparsers(
        dest="contacts_command", metavar="COMMAND", required=True
    )
    p = contacts.add_parser("import", help="add numbers (CSV, column 'number') to a campaign")
    add_config_option(p)
    p.add_argument("campaign")
    p.add_argument("file", type=Path)
    p.set_defaults(handler=_contacts_import)
    for name, help_text, handler in (
        ("start", "start (or resume) dialing a campaign", _start),
        ("pause", "stop new calls of a campaign (calls in progress finish)", _pause),
        ("status", "contacts per state and outcome, opt-outs, next due time", _status),
    ):
        p = GROUPS["campaign"].add_parser(name, help=help_text)
        add_config_option(p)
        p.add_argument("name")
        if name == "status":
            p.add_argument("--json", action="store_true", help="print one JSON object")
        p.set_defaults(handler=handler)


def read_contacts(path: Path) -> tuple[list[str], list[tuple[int, str]]]:
    """The valid E.164 numbers of a contacts CSV, and (line, reason) for each refused row."""
    good: list[str] = []
    bad: list[tuple[int, str]] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "number" not in reader.fieldnames:
                raise UserError(f"{path}: no 'number' column in the header line")
            line = reader.line_num + 1
            for row in reader:
                raw = (row.get("number") or "").strip()
                if None in row:
                    bad.append((line, "more cells than the header has columns"))
                elif not raw:
                    bad.append((line, "the number is empty"))
                elif (number := to_e164(raw)) is None:
                    why = "" if raw.startswith("+") else " (it must start with + and the country)"
                    bad.append((line, f"{raw!r} is not a valid E.164 number{why}"))
                else:
                    good.append(number)
                line = reader.line_num + 1
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path}: not a UTF-8 CSV file: {exc}; nothing was imported") from exc
    return good, bad


async def _campaign_or_fail(store: Store, name: str) -> None:
    if await store.get_campaign(name) is None:
        raise UserError(f"no campaign {name!r} in the store (add it with gateway campaign add)")


def _contacts_import(args: argparse.Namespace) -> int:
    good, bad = read_contacts(args.file)

    async def run() -> int:
        async with opened_store(args) as (_, store):
            try:
                await _campaign_or_fail(store, args.campaign)
                new = await store.add_contacts(args.campaign, good, args.clock())
            except StoreError as exc:
                raise UserError(f"{args.file}: {exc}; nothing was imported") from exc
        for line, reason in bad:
            print(f"{args.file}:{line}: refused: {reason}", file=sys.stderr)
        unique = len(set(good))
        print(f"{unique} accepted ({new} new, {unique - new} already present), "
              f"{len(bad)} refused")  # fmt: skip
        return 1 if bad else 0

    return _run(run())


def _start(args: argparse.Namespace) -> int:
    async def run() -> int:
        async with opened_store(args) as (config, store):
            campaign = await store.get_campaign(args.name)
            if campaign is None:
                raise UserError(f"no campaign {args.name!r} in the store")
            advertiser = await store.get_advertiser(campaign.advertiser)
            problems = check_campaign(campaign, advertiser)
            if not problems and advertiser is not None:
                problems = await asyncio.to_thread(_announcement, config, campaign, advertiser)
            if problems:
                print(f"campaign {args.name} not started: " + "; ".join(problems))
                return 1
            await store.set_run_state(args.name, "active", args.clock())
            status = await store.campaign_status(args.name)
        print(f"campaign {args.name} active: {status.states.get('pending', 0)} contacts pending")
        return 0

    return _run(run())


def _announcement(config: Config, campaign: Campaign, advertiser: Advertiser) -> list[str]:
    """Prepare every segment as ``gateway run`` will, and check what it must fit."""
    with tempfile.TemporaryDirectory(prefix="gateway-check-") as tmp:
        work = Path(config.run.work_dir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        settings = PromptSettings(
            work_dir=work,
            base_dir=Path(config.run.campaign_dir or "."),
            max_seconds=config.media.prompt_max_seconds,
            max_bytes=config.media.prompt_max_bytes,
        )
        try:
            plan = prepare_plan(campaign, advertiser, settings)
        except PromptError as exc:
            return [str(exc)]
        return announcement_problems(campaign, plan)


def _pause(args: argparse.Namespace) -> int:
    async def run() -> int:
        async with opened_store(args) as (_, store):
            await _campaign_or_fail(store, args.name)
            await store.set_run_state(args.name, "paused", args.clock())
        print(f"campaign {args.name} paused: no new calls (calls in progress finish)")
        return 0

    return _run(run())


def _status(args: argparse.Namespace) -> int:
    async def run() -> int:
        async with opened_store(args) as (_, store):
            await _campaign_or_fail(store, args.name)
            s = await store.campaign_status(args.name)
        due = s.next_due.isoformat() if s.next_due else None
        if args.json:
            doc = {
                "campaign": s.campaign,
                "run_state": s.run_state or "not started",
                "contacts": s.total,
                "states": s.states,
                "outcomes": s.outcomes,
                "opt_outs": s.opt_outs,
                "next_due": due,
            }
            print(json.dumps(doc, ensure_ascii=False))
            return 0
        print(f"campaign {s.campaign}: {s.run_state or 'not started'}, {s.total} contacts")
        for state in ("pending", "calling", "done", "stopped"):
            print(f"  {state:8} {s.states.get(state, 0)}")
        for outcome, n in sorted(s.outcomes.items()):
            print(f"  outcome {outcome}: {n}")
        print(f"  opt-outs {s.opt_outs}")
        print(f"  next due {due or '-'}")
        return 0

    return _run(run())
