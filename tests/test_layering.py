"""The import rules of ARCHITECTURE.md section 2, checked on the source with ``ast``.

Every arrow points down: pure cores (sip, media, consent, campaign) import the standard library
(media also numpy), the store sits above them, calls above the store, and the edges (cli, app,
api) on top. Cores do no I/O: apart from the modules listed as I/O, nothing imports asyncio,
socket or time.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "gateway"

# Which gateway packages each package may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "sip": set(),
    "media": set(),
    "consent": set(),
    "campaign": set(),
    "store": {"consent", "campaign"},
    "calls": {"sip", "media", "consent", "campaign", "store"},
    "api": {"calls", "campaign", "consent", "store"},
    "config": set(),
}
EDGES = {"cli", "app", "__main__", "simulator", "simulator_media", "daemon", "demo"}
EDGE_PREFIX = "cli_"

# Modules allowed to do I/O (asyncio, socket, time, wall clock).
IO_MODULES = {
    "sip.transport",
    "media.transport",
    "calls.dialer",
    "calls.outbound",
    "calls.optout_line",
    "calls.service",
}
IO_PACKAGES = {"store", "api"}
IO_IMPORTS = {"asyncio", "socket", "time", "selectors", "uvloop", "ssl"}

# Third-party packages a pure core may use.
CORE_THIRD_PARTY = {"media": {"numpy", "soundfile", "soxr"}}
STDLIB = set(sys.stdlib_module_names)


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        out.append((".".join(parts) or "__init__", path))
    return out


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    pkg_parts = path.relative_to(SRC).parent.parts
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(pkg_parts[: len(pkg_parts) - (node.level - 1)])
                mod = ".".join(["gateway", *base, *([node.module] if node.module else [])])
            else:
                mod = node.module or ""
            names.append(mod)
    return names


def _third_party_forbidden(mod: str, top: str, root: str) -> bool:
    if root in STDLIB or root in CORE_THIRD_PARTY.get(top, set()):
        return False
    if top == "consent" and root in {"phonenumbers", "holidays"}:
        return False  # numbering plans and holiday calendars are data, not I/O
    return top in {"sip", "consent", "campaign", "config"} or mod == "calls.script"


def _violations() -> list[str]:
    problems = []
    for mod, path in _modules():
        top = mod.split(".")[0]
        is_edge = top in EDGES or top.startswith(EDGE_PREFIX) or mod == "__init__"
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "gateway" and len(parts) > 1:
                target = parts[1]
                if target in EDGES or target.startswith(EDGE_PREFIX):
                    if not is_edge:
                        problems.append(f"{mod} imports the edge {name}")
                    continue
                if is_edge or target == top:
                    continue
                if target not in ALLOWED.get(top, set()):
                    problems.append(f"{mod} imports {name}: {top} may not import {target}")
                continue
            if is_edge or top in IO_PACKAGES or mod in IO_MODULES:
                continue
            root = parts[0]
            if root in IO_IMPORTS:
                problems.append(f"{mod} imports {root}: only the I/O modules may")
            elif _third_party_forbidden(mod, top, root):
                problems.append(f"{mod} imports {root}: a pure core takes stdlib only")
    return problems


def test_sources_exist() -> None:
    assert any(mod.startswith("sip") for mod, _ in _modules())


def test_imports_follow_the_layers() -> None:
    assert _violations() == []


@pytest.mark.parametrize(
    ("mod", "source", "expected"),
    [
        ("sip.dialog", "import asyncio\n", "sip.dialog imports asyncio"),
        ("sip.message", "from gateway.media import rtp\n", "sip may not import media"),
        ("consent.policy", "from gateway.store import base\n", "consent may not import store"),
        ("store.sqlite", "from gateway.calls import dialer\n", "store may not import calls"),
        ("calls.script", "import time\n", "calls.script imports time"),
    ],
)
def test_checker_catches_a_wrong_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mod: str, source: str, expected: str
) -> None:
    """The checker must fail on each kind of wrong import, or the test above proves nothing."""
    fake = tmp_path / "gateway"
    target = fake.joinpath(*mod.split(".")).with_suffix(".py")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(source, encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "SRC", fake)
    assert any(expected in p for p in _violations())
