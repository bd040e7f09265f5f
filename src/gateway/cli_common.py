"""What every command module shares: the user-error type and the --config option."""

from __future__ import annotations

import argparse


class UserError(Exception):
    """A mistake the user can fix; ``gateway`` prints it as one line and exits with status 2."""


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default="gateway.toml",
        metavar="FILE",
        help="the gateway's TOML configuration (default: gateway.toml)",
    )
