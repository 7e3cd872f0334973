"""benchmarks/scale.py: its run list, and the table and verdicts it writes from results."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCALE = Path(__file__).resolve().parents[2] / "benchmarks" / "scale.py"


def _scale() -> ModuleType:
    sys.path.insert(0, str(SCALE.parent))
    try:
        spec = importlib.util.spec_from_file_location("scale", SCALE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCALE.parent))
    return module


def test_runs() -> None:
    scale = _scale()
    assert scale.parse_runs("1:19000, 6:100000") == [(1, 19000), (6, 100000)]
    for bad in ("", "6", "x:1", "0:10", "2:0", "1:19000;6:100000"):
        with pytest.raises(ValueError, match=r"bad run|no runs"):
            scale.parse_runs(bad)


def _row(**figures: Any) -> dict[str, Any]:
    load = {"start": 3.0, "min": 2.5, "mean": 3.1, "max": 4.25, "end": 3.5}
    return {**figures, "load_average": load, "png": "x.png"}


def test_table_and_verdicts() -> None:
    scale = _scale()
    table = {
        "runs": ["1:19000", "6:100000"],
        "cases": {
            "1:19000": {
                "idle": _row(
                    conns=19000, kb_per_conn=7.5, kb_per_conn_total=9.5, connects_per_s=1000.0
                ),
                "single": _row(deliveries_per_cpu_s=300_000.0, exact=True),
                "coalesced": {"error": "TimeoutError: slow"},
            },
            "6:100000": {
                "idle": _row(
                    conns=100000,
                    clients_per_node=[16600, 16700],
                    kb_per_conn_total=11.0,
                    connects_per_s=2000.0,
                ),
                "single": _row(deliveries_per_cpu_s=285_000.0, exact=False),
                "coalesced": _row(deliveries_per_cpu_s=1.0),
            },
        },
    }
    text = scale.render(table, "python benchmarks/scale.py")
    assert "| 1 worker, 19,000 conns | 6 workers, 100,000 conns |" in text
    assert "| connections per worker (from `info`) | - | 16,600-16,700 |" in text
    assert "| load average (1 min) during the run, lowest-highest | 2.5-4.2 | 2.5-4.2 |" in text
    assert "[plot](benchmarks/results/x.png)" in text
    assert "| single messages: every delivery arrived | yes | no |" in text
    assert "error" in text  # the failed baseline case
    # 9.5 KB met, 11 KB not; 2,000/s is 42 % of 6 x 0.8 x 1,000; 285k is 95 % of 300k
    total, growth = "(RSS of all processes / connections)", "(RSS growth of all processes"
    assert f"{total} | 1 worker, 19,000 | 9.50 KB | 10 KB | yes |" in text
    assert f"{growth} / connections) | 1 worker, 19,000 | 7.50 KB | 10 KB | yes |" in text
    assert f"{total} | 6 workers, 100,000 | 11.00 KB | 10 KB | no |" in text
    assert "| 2,000/s | 4,800/s" in text and "| no (42% of it) |" in text
    assert "| 95% | 90 % | yes |" in text
    # no baseline figure for the coalesced case: no verdict for it
    assert "coalesced fan-out per server CPU-second" not in text
