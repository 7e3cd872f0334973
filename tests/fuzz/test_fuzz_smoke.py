"""Every fuzz target runs for a bounded number of inputs in the test suite.

The long runs (a million inputs or more per target) are documented in
`tests/fuzz/__init__.py`; here each target gets a few thousand, enough to
catch a target that no longer runs or an easy crash.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TARGETS = ["json_codec", "protobuf_codec", "uni_codec", "payload", "token_claims"]
RUNS = 3000
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_target_runs_clean(target: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            f"tests.fuzz.fuzz_{target}",
            f"-runs={RUNS}",
            "-seed=1",
            f"-artifact_prefix={tmp_path}/",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert f"Done {RUNS} runs" in output, output[-3000:]
    assert not list(tmp_path.glob("crash-*"))
