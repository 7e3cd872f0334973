"""House rule 1: `tidings.protocol` imports no asyncio and no other tidings package."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import tidings.protocol

PROTOCOL_DIR = Path(tidings.protocol.__file__).parent
SRC_DIR = PROTOCOL_DIR.parent.parent


def _package_of(path: Path) -> str:
    """The package a module file belongs to (`tidings.protocol.centrifuge`)."""
    parts = path.relative_to(SRC_DIR).with_suffix("").parts
    return ".".join(parts if path.name == "__init__.py" else parts[:-1]).removesuffix(".__init__")


def imported_modules(source: str, package: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `source`, relative ones resolved."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, module] if module else base)
            # `from pkg import name` may import the submodule pkg.name: judge by that.
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def violations(source: str, package: str) -> list[str]:
    out = []
    for line, module in imported_modules(source, package):
        top = module.split(".")[0]
        inside = module == "tidings.protocol" or module.startswith("tidings.protocol.")
        if top == "asyncio" or (top == "tidings" and not inside):
            out.append(f"line {line}: {module}")
    return out


def test_protocol_sources_are_scanned() -> None:
    names = {f.name for f in PROTOCOL_DIR.rglob("*.py")}
    assert {"json_codec.py", "session.py", "codes.py", "messages.py"} <= names


def test_no_asyncio_or_other_tidings_imports_in_protocol() -> None:
    problems = {
        str(path.relative_to(SRC_DIR)): found
        for path in sorted(PROTOCOL_DIR.rglob("*.py"))
        if (found := violations(path.read_text(), _package_of(path)))
    }
    assert problems == {}


def test_scan_resolves_relative_imports() -> None:
    source = "from . import codes\nfrom ..centrifuge.messages import Command\n"
    modules = [m for _, m in imported_modules(source, "tidings.protocol.centrifuge")]
    assert modules == [
        "tidings.protocol.centrifuge.codes",
        "tidings.protocol.centrifuge.messages.Command",
    ]


def test_scan_flags_forbidden_imports() -> None:
    source = (
        "import asyncio\n"
        "from asyncio import Queue\n"
        "from tidings.core import hub\n"
        "import tidings.errors\n"
        "from ... import config\n"
        "def f():\n    import asyncio.events\n"
    )
    found = violations(source, "tidings.protocol.centrifuge")
    assert found == [
        "line 1: asyncio",
        "line 2: asyncio.Queue",
        "line 3: tidings.core.hub",
        "line 4: tidings.errors",
        "line 5: tidings.config",
        "line 7: asyncio.events",
    ]


def test_importing_protocol_loads_no_asyncio_and_no_other_tidings_module() -> None:
    code = (
        "import sys\n"
        "import tidings.protocol.centrifuge\n"
        "import tidings.protocol.centrifuge.messages, tidings.protocol.centrifuge.session\n"
        "import tidings.protocol.nsq, tidings.protocol.nsq.parser\n"
        "import tidings.protocol.memberlist.membership, tidings.protocol.memberlist.stream\n"
        "bad = sorted(m for m in sys.modules if m == 'asyncio' or m.startswith('asyncio.'))\n"
        "other = sorted(m for m in sys.modules if m.startswith('tidings.')"
        " and not m.startswith('tidings.protocol'))\n"
        "print(repr((bad, other)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert proc.stdout.strip() == "([], [])"


def test_subprocess_check_can_fail() -> None:
    # The same probe sees asyncio once something imports it, so the check above is live.
    code = "import sys, tidings.protocol.centrifuge, asyncio\nprint('asyncio' in sys.modules)\n"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert proc.stdout.strip() == "True"
