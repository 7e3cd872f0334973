"""benchmarks/compare.py writes its tables into BENCHMARKS.md between named markers."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

COMPARE = Path(__file__).resolve().parents[2] / "benchmarks" / "compare.py"


def _compare() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compare", COMPARE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_named_blocks_keep_the_prose_and_each_other(tmp_path: Path) -> None:
    compare = _compare()
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# B\n\nintro\n<!-- compare:begin -->\nold\n<!-- compare:end -->\noutro\n")
    compare.write_benchmarks_md("go table 1", md, "go")
    compare.write_benchmarks_md("go table 2", md, "go")
    compare.write_benchmarks_md("default table", md)
    text = md.read_text()
    assert text.count("<!-- compare:go:begin -->") == 1
    assert "go table 2" in text and "go table 1" not in text
    assert "default table" in text and "\nold\n" not in text
    assert text.startswith("# B\n\nintro\n") and "outro" in text


def test_load_average_row() -> None:
    compare = _compare()
    table = {
        "a": {"tidings": {"load_average_1m": 1.5}, "centrifugo": {"load_average_1m": 2.0}},
        "b": {"tidings": {"load_average_1m": 3.25}, "centrifugo": {}},
    }
    row = compare._load_row(table, ["tidings", "centrifugo"])
    assert row.endswith("| 1.5-3.2 | 2.0-2.0 | - |")
