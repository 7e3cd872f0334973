"""Recorded results are summaries whose size does not grow with the run."""

from __future__ import annotations

import json
from pathlib import Path

from tidings.bench import results


def test_histogram_samples_become_bin_counts() -> None:
    samples = [float(i % 1000) for i in range(100_000)]
    out = results.summarised({"result": {"series": {"lat": {"kind": "hist", "x": samples}}}})
    hist = out["result"]["series"]["lat"]
    assert "x" not in hist
    assert hist["samples"] == 100_000
    assert sum(hist["counts"]) == 100_000
    assert len(hist["bins"]) == results.HIST_BINS + 1


def test_long_lines_are_thinned_and_short_ones_kept() -> None:
    long = {"x": list(range(10_000)), "y": list(range(10_000))}
    short = {"x": [1, 2, 3], "y": [4, 5, 6]}
    out = results.summarised({"a": long, "b": [short]})
    assert len(out["a"]["x"]) <= results.MAX_POINTS
    assert out["a"]["x"][0] == 0 and len(out["a"]["x"]) == len(out["a"]["y"])
    assert out["b"] == [short]


def test_saved_file_stays_small(tmp_path: Path) -> None:
    record = {"result": {"series": {"lat": {"kind": "hist", "x": [0.5] * 200_000}}}}
    path, _ = results.save("fanout", record, tmp_path, plot=False)
    assert path.stat().st_size < 20_000
    assert json.loads(path.read_text())["result"]["series"]["lat"]["samples"] == 200_000


def test_committed_results_are_under_one_megabyte() -> None:
    root = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
    big = [p.name for p in root.iterdir() if p.stat().st_size > 1_000_000]
    assert big == []
