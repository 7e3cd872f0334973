"""Running `tidings bench` as a real process, as the bench tests do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def bench_record(tmp_path: Path, *args: str) -> dict[str, Any]:
    """Run `tidings bench ARGS --out DIR`; the JSON record it wrote there."""
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "tidings", "bench", *args, "--out", str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=80,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (path,) = out.glob("*.json")
    record: dict[str, Any] = json.loads(path.read_text())
    return record
