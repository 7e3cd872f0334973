"""Results of a run: one JSON file, and one PNG with a plot per series."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

#: Where runs are recorded unless told otherwise.
RESULTS_DIR = Path("benchmarks/results")


def save(
    scenario: str, record: dict[str, Any], directory: Path = RESULTS_DIR, plot: bool = True
) -> tuple[Path, Path | None]:
    """Write `<scenario>-<UTC time>.json` (and `.png`); return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{scenario}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    if record.get("label"):
        stem += f"-{record['label']}"
    json_path = directory / f"{stem}.json"
    json_path.write_text(json.dumps(record, indent=2, default=float) + "\n")
    png_path = directory / f"{stem}.png" if plot else None
    if png_path is not None:
        series = record.get("result", {}).get("series", {})
        if series:
            draw(f"tidings bench {scenario} ({record.get('target', '')})", series, png_path)
        else:
            png_path = None
    return json_path, png_path


def draw(title: str, series: dict[str, dict[str, Any]], path: Path) -> None:
    """One subplot per series: kind "line" (x, y), "bar" (labels, values) or "hist" (x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(series), figsize=(6 * len(series), 4), squeeze=False)
    for ax, (name, s) in zip(axes[0], series.items(), strict=True):
        kind = s.get("kind", "line")
        if kind == "bar":
            ax.bar([str(x) for x in s["x"]], s["y"])
        elif kind == "hist":
            if s["x"]:
                ax.hist(s["x"], bins=60)
        else:
            ax.plot(s["x"], s["y"], marker=".")
        ax.set_title(name)
        ax.set_xlabel(s.get("xlabel", ""))
        ax.set_ylabel(s.get("ylabel", ""))
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def headline(result: dict[str, Any]) -> str:
    """The scalar figures of a result, one per line, for the terminal."""
    lines = []
    for key, value in result.items():
        if key == "series" or isinstance(value, dict | list):
            continue
        shown = f"{value:,.2f}" if isinstance(value, float) else str(value)
        lines.append(f"  {key:<32} {shown}")
    return "\n".join(lines)
