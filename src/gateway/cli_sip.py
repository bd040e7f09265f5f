"""``gateway run`` and ``gateway trunk check``: the SIP user agent's commands."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from gateway import app, daemon
from gateway.cli_common import add_config_option
from gateway.config import load


def register(sub: Any) -> None:
    """Add this module's sub-commands to the ``gateway`` parser."""
    run = sub.add_parser("run", help="run the gateway as a service until SIGTERM")
    add_config_option(run)
    run.set_defaults(handler=_run)

    demo = sub.add_parser(
        "demo", help="the main job end to end on loopback: campaign, callees, report"
    )
    demo.add_argument("--dir", type=Path, default=None, help="keep the files here")
    demo.set_defaults(handler=_demo)

    trunk = sub.add_parser("trunk", help="trunk commands")
    trunk_sub = trunk.add_subparsers(dest="trunk_command", metavar="COMMAND")
    trunk_sub.required = True
    check = trunk_sub.add_parser("check", help="send OPTIONS to a trunk and print the answer")
    check.add_argument("name", help="the trunk's name in [trunks.NAME]")
    check.add_argument("--timeout", type=float, default=10.0, help="seconds to wait (10)")
    add_config_option(check)
    check.set_defaults(handler=_trunk_check)


def event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (it receives datagrams several times faster), else asyncio's."""
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def _run(args: argparse.Namespace) -> int:
    config = load(args.config)
    with asyncio.Runner(loop_factory=event_loop) as runner:
        runner.run(daemon.run(config, clock=args.clock))
    return 0


def _demo(args: argparse.Namespace) -> int:
    # Imported here: the demo drives the other commands through gateway.cli.
    from gateway import demo  # noqa: PLC0415

    with asyncio.Runner(loop_factory=event_loop) as runner:
        return runner.run(demo.run_demo(args.dir))


def _trunk_check(args: argparse.Namespace) -> int:
    config = load(args.config)
    with asyncio.Runner(loop_factory=event_loop) as runner:
        answer = runner.run(app.trunk_check(config, args.name, args.timeout))
    reachable = answer.status not in (408, 503)
    state = "reachable" if reachable else "unreachable"
    rtt = f"{answer.rtt * 1000:.1f} ms" if reachable else "-"
    print(f"trunk {args.name}: {state}, status {answer.status} {answer.reason}, rtt {rtt}")
    return 0 if reachable else 1
