"""``gateway run`` and ``gateway trunk check``: the SIP user agent's commands."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add this module's sub-commands to the ``gateway`` parser."""
    del sub  # filled in as the user agent lands


def _unused(args: argparse.Namespace) -> int:  # pragma: no cover
    return 0
