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
    json_path.write_text(json.dumps(summarised(record), indent=2, default=float) + "\n")
    png_path = directory / f"{stem}.png" if plot else None
    if png_path is not None:
        series = record.get("result", {}).get("series", {})
        if series:
            draw(f"tidings bench {scenario} ({record.get('target', '')})", series, png_path)
        else:
            png_path = None
    return json_path, png_path


def summarised(record: Any) -> Any:
    """`record` with its raw series reduced to summaries, for committing.

    Recorded results are summaries (plots carry the shape): a histogram's raw
    samples become `HIST_BINS` bin counts, and a line longer than `MAX_POINTS`
    keeps every n-th point, so no result file grows with the run's size.
    """
    if isinstance(record, dict):
        if record.get("kind") == "hist" and isinstance(record.get("x"), list):
            return {k: v for k, v in record.items() if k != "x"} | _histogram(record["x"])
        if isinstance(record.get("x"), list) and len(record["x"]) > MAX_POINTS:
            step = -(-len(record["x"]) // MAX_POINTS)
            return record | {
                key: record[key][::step] for key in ("x", "y") if isinstance(record.get(key), list)
            }
        return {key: summarised(value) for key, value in record.items()}
    if isinstance(record, list):
        return [summarised(value) for value in record]
    return record


#: Points kept per line series and bins per histogram in recorded results.
MAX_POINTS = 500
HIST_BINS = 60


def _histogram(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {"samples": 0, "bins": [], "counts": []}
    low, high = min(samples), max(samples)
    width = (high - low) / HIST_BINS or 1.0
    counts = [0] * HIST_BINS
    for value in samples:
        counts[min(int((value - low) / width), HIST_BINS - 1)] += 1
    return {
        "samples": len(samples),
        "bins": [low + i * width for i in range(HIST_BINS + 1)],
        "counts": counts,
    }


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
        if key != "series" and isinstance(value, dict):  # a part of the run (`scale`)
            lines += [f"  {key}:", headline(value).replace("\n  ", "\n    ")]
            lines[-1] = "  " + lines[-1]
            continue
        if key == "series" or isinstance(value, list):
            continue
        shown = f"{value:,.2f}" if isinstance(value, float) else str(value)
        lines.append(f"  {key:<32} {shown}")
    return "\n".join(lines)
