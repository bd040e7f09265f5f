"""Commands of the compliance engine and its store (issue 4).

``gateway advertiser add FILE``, ``gateway campaign add FILE``, ``gateway consent import FILE``,
``gateway oppose NUMBER --advertiser ID|--all``, ``gateway check NUMBER --campaign NAME``,
``gateway audit verify``, ``gateway export attempts|oppositions|evidence NUMBER``; each takes
``--config FILE``. Exit status: 0 done, 1 something refused (a bad line, a failed check, a
broken audit chain, a decision other than allow), 2 a user error.

Other command modules may add sub-commands to these groups through :data:`GROUPS`
(``GROUPS["campaign"].add_parser("start", ...)``), registering after this module.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import csv
import io
import json
import multiprocessing
import os
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import IO

from gateway.calls.outbound import RECORD_FIELDS
from gateway.campaign.model import (
    Campaign,
    DefinitionError,
    load_advertiser,
    load_campaign,
    parse_campaign,
)
from gateway.cli_common import UserError, add_config_option, opened_store
from gateway.consent.evidence import FIELDS, RecordRow, record_to_json, validate_rows
from gateway.consent.model import ADVERTISER_WIDE, Decision
from gateway.consent.policy import PolicySettings, check_campaign, decide
from gateway.consent.zones import to_e164
from gateway.store import Store, StoreError
from gateway.store.common import ATTEMPT_COLUMNS, OUTCOME_FIELDS

GROUPS: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}
BATCH = 5000
#: Records validated together by one process of a parallel import.
CHUNK = 2000


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's commands to the ``gateway`` parser."""
    for group, help_text in (
        ("advertiser", "advertisers (COMPLIANCE.md 4)"),
        ("campaign", "campaign definitions"),
        ("consent", "legal-basis records"),
        ("audit", "the hash-chained audit log"),
        ("export", "CSV and JSON exports"),
    ):
        GROUPS[group] = sub.add_parser(group, help=help_text).add_subparsers(
            dest=f"{group}_command", metavar="COMMAND", required=True
        )
    _command("advertiser", "add", "store an advertiser TOML file", _advertiser_add, file=True)
    _command("campaign", "add", "check and store a campaign TOML file", _campaign_add, file=True)
    p = _command("consent", "import", "import legal-basis records (CSV or JSON Lines)",
                 _consent_import, file=True)  # fmt: skip
    p.add_argument("--format", choices=("csv", "jsonl"), help="default: from the file name")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="validating processes")
    _command("audit", "verify", "name every audit record removed or altered", _audit_verify)
    _command("export", "attempts", "every decision and call record, CSV", _export_attempts)
    _command("export", "oppositions", "every opposition (keyed hashes), CSV", _export_oppositions)
    p = _command("export", "evidence", "everything about one number, JSON", _export_evidence)
    p.add_argument("number")

    p = sub.add_parser("oppose", help="record an opposition for a number")
    add_config_option(p)
    p.add_argument("number")
    scope = p.add_mutually_exclusive_group(required=True)
    scope.add_argument("--advertiser", metavar="ID", help="for this advertiser")
    scope.add_argument("--all", action="store_true", help="for every advertiser")
    p.add_argument("--source", default="cli", choices=("cli", "api", "import", "callback_line"))
    p.set_defaults(handler=_oppose)

    p = sub.add_parser("check", help="dry run: explain the decision rule by rule, record nothing")
    add_config_option(p)
    p.add_argument("number")
    p.add_argument("--campaign", required=True, metavar="NAME")
    p.add_argument("--at", metavar="ISO-8601", help="decision time (default: now)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_check)


def _command(
    group: str, name: str, help_text: str, handler: object, *, file: bool = False
) -> argparse.ArgumentParser:
    p = GROUPS[group].add_parser(name, help=help_text)
    add_config_option(p)
    if file:
        p.add_argument("file", type=Path)
    p.set_defaults(handler=handler)
    return p


def _run(coro: object) -> int:
    result: int = asyncio.run(coro)  # type: ignore[arg-type]
    return result


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from exc


# -- definitions -------------------------------------------------------------------------------
def _advertiser_add(args: argparse.Namespace) -> int:
    try:
        adv = load_advertiser(_read(args.file), str(args.file))
    except DefinitionError as exc:
        raise UserError(str(exc)) from exc

    async def run() -> int:
        async with opened_store(args) as (_, store):
            version = await store.put_advertiser(adv, args.clock())
        print(f"advertiser {adv.id} stored (version {version})")
        return 0

    return _run(run())


def _with_absolute_audio(campaign: Campaign, path: Path) -> Campaign:
    """Audio paths relative to the campaign file, stored absolute: ``gateway run`` finds them
    whatever its working directory."""
    raw = copy.deepcopy(dict(campaign.raw))
    announcement = raw.get("announcement")
    if not isinstance(announcement, dict):
        return campaign
    changed = False
    for segment in announcement.values():
        audio = segment.get("audio") if isinstance(segment, dict) else None
        if isinstance(audio, str) and audio and not Path(audio).is_absolute():
            segment["audio"] = str((path.parent / audio).resolve())
            changed = True
    return parse_campaign(raw, str(path)) if changed else campaign


def _campaign_add(args: argparse.Namespace) -> int:
    try:
        campaign = _with_absolute_audio(load_campaign(_read(args.file), str(args.file)), args.file)
    except DefinitionError as exc:
        raise UserError(str(exc)) from exc

    async def run() -> int:
        async with opened_store(args) as (_, store):
            adv = await store.get_advertiser(campaign.advertiser)
            problems = check_campaign(campaign, adv)
            if problems:
                raise UserError(f"{args.file}: " + "; ".join(problems))
            version = await store.put_campaign(campaign, args.clock())
        print(f"campaign {campaign.name} stored (version {version})")
        return 0

    return _run(run())


# -- consent import ----------------------------------------------------------------------------
def _rows(path: Path, fmt: str, raw: IO[bytes]) -> Iterator[tuple[int, Mapping[str, object]]]:
    """(line number, fields) for each record, streaming."""
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
    try:
        yield from _parse(path, fmt, text)
    finally:
        text.detach()  # the caller still reads the byte position (progress) and closes ``raw``


def _parse(path: Path, fmt: str, text: IO[str]) -> Iterator[tuple[int, Mapping[str, object]]]:
    if fmt == "csv":
        reader = csv.DictReader(text)
        unknown = sorted(set(reader.fieldnames or ()) - set(FIELDS) - {"withdrawn_channel"})
        if not reader.fieldnames:
            return
        if unknown:
            raise UserError(f"{path}: unknown column(s) {', '.join(unknown)}")
        line = reader.line_num + 1
        for row in reader:
            if None in row:
                yield line, {"__error__": "more cells than the header has columns"}
            else:
                yield line, row
            line = reader.line_num + 1
        return
    for number, line_text in enumerate(text, start=1):
        if not line_text.strip():
            continue
        try:
            data = json.loads(line_text)
        except json.JSONDecodeError as exc:
            yield number, {"__error__": f"not valid JSON: {exc.msg}"}
            continue
        yield number, data if isinstance(data, dict) else {"__error__": "not a JSON object"}


def _consent_import(args: argparse.Namespace) -> int:
    path: Path = args.file
    fmt = args.format or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    size = max(path.stat().st_size, 1)
    jobs = max(1, args.jobs)

    async def run() -> int:
        async with opened_store(args) as (_, store):
            return await import_into(store)

    async def import_into(store: Store) -> int:
        counts = {"accepted": 0, "new": 0, "refused": 0}
        started = last = time.monotonic()
        rows: list[RecordRow] = []
        # Forkserver: the workers do not inherit this process's threads (the store's).
        context = multiprocessing.get_context("forkserver")
        pool = ProcessPoolExecutor(jobs, mp_context=context) if jobs > 1 else None
        pending: deque[asyncio.Future[list[tuple[int, RecordRow | None, list[str]]]]] = deque()

        async def settle(done: list[tuple[int, RecordRow | None, list[str]]]) -> None:
            nonlocal last
            for line, row, reasons in done:
                if row is None:
                    counts["refused"] += 1
                    print(f"{path}:{line}: refused: {'; '.join(reasons)}", file=sys.stderr)
                else:
                    counts["accepted"] += 1
                    rows.append(row)
            if len(rows) >= BATCH:
                counts["new"] += await store.add_record_rows(rows, args.clock())
                rows.clear()
            if time.monotonic() - last > 0.5:
                last = time.monotonic()
                done_n = counts["accepted"] + counts["refused"]
                _progress(raw.tell() / size, done_n, last - started)

        async def submit(chunk: list[tuple[int, Mapping[str, object]]]) -> None:
            if pool is None:
                await settle(validate_rows(chunk))
                return
            loop = asyncio.get_running_loop()
            pending.append(loop.run_in_executor(pool, validate_rows, chunk))
            while len(pending) > 2 * jobs:  # bounded: the file streams, memory stays flat
                await settle(await pending.popleft())

        line = 0
        try:
            chunk: list[tuple[int, Mapping[str, object]]] = []
            for item in _rows(path, fmt, raw):
                line = item[0]
                chunk.append(item)
                if len(chunk) >= CHUNK:
                    await submit(chunk)
                    chunk = []
            await submit(chunk)
            while pending:
                await settle(await pending.popleft())
            counts["new"] += await store.add_record_rows(rows, args.clock())
            if counts["new"]:
                await store.refresh_statistics()
        except (UnicodeDecodeError, csv.Error, StoreError, OSError) as exc:
            # Say how far it went: the batches before this point are stored (and a re-import
            # of the whole file, once fixed, adds only what is missing).
            raise UserError(
                f"{path}: import stopped after line {line}: {exc}; {counts['new']} new records "
                "were stored before it; fix the file and import it again"
            ) from exc
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        elapsed = time.monotonic() - started
        accepted, new, refused = counts["accepted"], counts["new"], counts["refused"]
        _progress(1.0, accepted + refused, elapsed)
        print(file=sys.stderr)
        print(f"{accepted} accepted ({new} new, {accepted - new} already present), "
              f"{refused} refused, in {elapsed:.1f} s")  # fmt: skip
        return 1 if refused else 0

    with raw:  # closed whatever happens, like the store
        return _run(run())


def _progress(fraction: float, done: int, elapsed: float) -> None:
    width = 30
    filled = int(width * min(fraction, 1.0))
    rate = done / elapsed if elapsed > 0 else 0.0
    bar = "#" * filled + "-" * (width - filled)
    print(f"\r[{bar}] {fraction:6.1%} {done} records, {rate:,.0f}/s", end="", file=sys.stderr)


# -- oppositions, checks -----------------------------------------------------------------------
def _number(text: str) -> str:
    number = to_e164(text)
    if number is None:
        raise UserError(f"{text!r} is not a valid E.164 number (+ and digits)")
    return number


def _oppose(args: argparse.Namespace) -> int:
    number = _number(args.number)
    scope = ADVERTISER_WIDE if args.all else args.advertiser

    async def run() -> int:
        async with opened_store(args) as (_, store):
            await store.add_opposition(number, scope, args.source, args.clock())
        who = "every advertiser" if args.all else f"advertiser {scope}"
        print(f"opposition recorded for {number} ({who})")
        return 0

    return _run(run())


def _check(args: argparse.Namespace) -> int:
    number = args.number.strip()
    now = args.clock()
    if args.at:
        try:
            now = datetime.fromisoformat(args.at)
        except ValueError as exc:
            raise UserError(f"--at {args.at!r} is not ISO-8601") from exc
        if now.tzinfo is None:
            raise UserError("--at needs a time zone offset, e.g. 2026-11-30T10:00:00+01:00")

    async def run() -> int:
        async with opened_store(args) as (config, store):
            try:
                inputs = await store.gather(args.campaign, number, now)
            except StoreError as exc:
                raise UserError(str(exc)) from exc
        d = decide(inputs, now, PolicySettings(consent_max_age=config.consent.consent_max_age))
        _print_decision(d, as_json=args.json)
        return 0 if d.allowed else 1

    return _run(run())


def _print_decision(d: Decision, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(d.to_json(), ensure_ascii=False))
        return
    for r in d.rules:
        print(f"{r.rule:12} {r.result:5} {r.detail}")
    until = f" until {d.until.isoformat()}" if d.until else ""
    print(f"=> {d.verdict.value}{until}: {d.reason}")


# -- audit and exports -------------------------------------------------------------------------
def _audit_verify(args: argparse.Namespace) -> int:
    async def run() -> int:
        async with opened_store(args) as (_, store):
            problems = await store.verify_audit()
        for p in problems:
            print(p)
        if not problems:
            print("audit chain verified: nothing removed or altered")
        return 1 if problems else 0

    return _run(run())


def _export_attempts(args: argparse.Namespace) -> int:
    # The call record's own fields (times of 180 and BYE, segments, media figures) follow.
    columns = (*ATTEMPT_COLUMNS, *OUTCOME_FIELDS, *(f"extra.{f}" for f in RECORD_FIELDS))
    return _export_csv(args, columns, lambda store: store.export_attempts())


def _export_oppositions(args: argparse.Namespace) -> int:
    columns = ("id", "number_hmac", "scope", "source", "at", "attempt_id")
    return _export_csv(args, columns, lambda store: store.export_oppositions())


def _export_csv(
    args: argparse.Namespace,
    columns: Sequence[str],
    rows: Callable[[Store], AsyncIterator[dict[str, object]]],
) -> int:
    """Stream ``rows`` of the store to stdout as CSV with ``columns`` (empty for None)."""

    async def run() -> int:
        async with opened_store(args) as (_, store):
            out = csv.writer(sys.stdout, lineterminator="\n")
            out.writerow(columns)
            async for row in rows(store):
                out.writerow(["" if row.get(c) is None else row[c] for c in columns])
        return 0

    return _run(run())


def _export_evidence(args: argparse.Namespace) -> int:
    number = _number(args.number)

    async def run() -> int:
        async with opened_store(args) as (_, store):
            records = await store.records_for(number)
            oppositions = await store.oppositions_for(number)
            attempts = await store.attempts_for(number)
            doc = {
                "number": number,
                "number_hmac": store.number_hmac(number),
                "legal_basis": [
                    {"id": r.record_id, "version": r.version, **json.loads(record_to_json(r))}
                    for r in records
                ],
                "attempts": attempts,
                "oppositions": [
                    {
                        "scope": o.scope,
                        "source": o.source,
                        "at": o.at.isoformat(),
                        "attempt_id": o.attempt_id,
                    }
                    for o in oppositions
                ],
            }
        print(json.dumps(doc, ensure_ascii=False, indent=2))
        return 0

    return _run(run())
