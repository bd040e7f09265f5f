"""The ``gateway`` command.

Each command group lives in its own edge module and registers its sub-commands here; this module
only builds the parser and turns a :class:`ConfigError` or a user error into a message and an
exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from gateway import __version__, app, cli_campaign, cli_sip, cli_store
from gateway.cli_common import UserError
from gateway.config import ConfigError

Handler = Callable[[argparse.Namespace], int]


class JsonFormatter(logging.Formatter):
    """Structured logs: one JSON object a line, with the exception text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="SIP robocall gateway: calls only where the law allows it, and proves it.",
    )
    parser.add_argument("--version", action="version", version=f"gateway {__version__}")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="json: one object per line (time, level, logger, message), for log collectors",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    cli_sip.register(sub)
    cli_store.register(sub)
    cli_campaign.register(sub)  # after cli_store: adds to its campaign group
    return parser


def main(argv: Sequence[str] | None = None, *, clock: app.Clock = app.utc_now) -> int:
    """Run one ``gateway`` command. ``clock`` is what every time it stamps or decides at comes
    from: the real clock for the command, a test's or the demo's when they run commands."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.clock = clock
    handler_out = logging.StreamHandler(sys.stderr)
    if args.log_format == "json":
        handler_out.setFormatter(JsonFormatter())
    else:
        handler_out.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
        )
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        handlers=[handler_out],
        force=True,
    )
    handler: Handler = args.handler
    try:
        return handler(args)
    except (ConfigError, UserError) as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
