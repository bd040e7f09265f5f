"""What every command module shares: the user-error type, the --config option, the store."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator

from gateway import app
from gateway.config import Config, load
from gateway.store import Store


class UserError(Exception):
    """A mistake the user can fix; ``gateway`` prints it as one line and exits with status 2."""


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default="gateway.toml",
        metavar="FILE",
        help="the gateway's TOML configuration (default: gateway.toml)",
    )


@contextlib.asynccontextmanager
async def opened_store(args: argparse.Namespace) -> AsyncIterator[tuple[Config, Store]]:
    """The configuration of ``--config`` and its store, closed on every way out (an error or
    Ctrl-C included): a store left open keeps a worker thread that stops the command from
    exiting."""
    config = load(args.config)
    store = await app.open_configured_store(config)
    try:
        yield config, store
    finally:
        await store.close()
