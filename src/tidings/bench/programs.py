"""The compiled programs of the benchmarks: where they live and how they get built.

`scripts/build-bench-peers.sh` builds them into `.peers/bin` at the repository root
(gitignored): `goload`, the Go client process behind `--client go`, and `centrifugo`,
a peer. The script is idempotent and quick when nothing changed, so it runs before
every use; `TIDINGS_PEERS_BIN` points elsewhere.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

#: The repository root when tidings runs from a checkout (`pip install -e`).
ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = ROOT / "scripts" / "build-bench-peers.sh"
PROGRAMS = ("goload", "centrifugo")


def bin_dir() -> Path:
    return Path(os.environ.get("TIDINGS_PEERS_BIN") or ROOT / ".peers" / "bin")


def program(name: str) -> Path:
    """The path of `name` (one of PROGRAMS), built first if missing or out of date."""
    if name not in PROGRAMS:
        raise ValueError(f"unknown benchmark program {name!r}")
    path = bin_dir() / name
    if BUILD_SCRIPT.exists():
        done = subprocess.run(
            ["sh", str(BUILD_SCRIPT), name],
            check=False,
            capture_output=True,
            text=True,
            env=dict(os.environ, TIDINGS_PEERS_BIN=str(bin_dir())),
        )
        if done.returncode != 0:
            raise RuntimeError(f"building {name} failed: {(done.stdout + done.stderr)[-2000:]}")
    if not path.exists():
        raise RuntimeError(
            f"{path} is missing: run scripts/build-bench-peers.sh {name} in a tidings checkout"
        )
    return path
