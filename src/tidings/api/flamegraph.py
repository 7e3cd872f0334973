"""A flame graph as a self-contained SVG, from stack samples.

Input is "collapsed" stacks (root first) with their sample counts; each frame
is a rectangle as wide as the share of samples it appears in, children above
their parent. No scripts, no external assets: the SVG opens anywhere, and
each rectangle's `<title>` shows its full name and share on hover.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape

WIDTH = 1200.0
ROW = 16
FONT = 11
#: Narrower rectangles are not drawn (they are unreadable and bloat the file).
MIN_WIDTH = 0.5


@dataclass
class _Node:
    name: str
    count: int = 0
    children: dict[str, _Node] = field(default_factory=dict)


def render(stacks: Mapping[tuple[str, ...], int], title: str = "tidings CPU profile") -> str:
    """The SVG of `stacks` (frame names root first -> number of samples)."""
    root = _Node("all")
    for stack, count in stacks.items():
        root.count += count
        node = root
        for frame in stack:
            node = node.children.setdefault(frame, _Node(frame))
            node.count += count
    depth = _depth(root)
    height = (depth + 2) * ROW + 30
    rects: list[str] = []
    if root.count:
        _draw(root, 0.0, WIDTH / root.count, depth, total=root.count, out=rects)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH:.0f}" height="{height}" '
        f'viewBox="0 0 {WIDTH:.0f} {height}" font-family="monospace" font-size="{FONT}">\n'
        f'<rect width="100%" height="100%" fill="#fdfdf6"/>\n'
        f'<text x="{WIDTH / 2:.0f}" y="20" text-anchor="middle" font-size="14">'
        f"{escape(title)} ({root.count} samples)</text>\n" + "\n".join(rects) + "\n</svg>\n"
    )


def _depth(node: _Node) -> int:
    return 1 + max((_depth(child) for child in node.children.values()), default=0)


def _draw(node: _Node, x: float, scale: float, level: int, *, total: int, out: list[str]) -> None:
    width = node.count * scale
    if width < MIN_WIDTH:
        return
    y = 30 + level * ROW
    share = 100.0 * node.count / total
    label = escape(node.name)
    text = ""
    chars = int((width - 4) / (FONT * 0.6))
    if chars >= 3:
        shown = node.name if len(node.name) <= chars else node.name[: chars - 2] + ".."
        text = f'<text x="{x + 2:.1f}" y="{y + ROW - 4}">{escape(shown)}</text>'
    out.append(
        f"<g><title>{label} ({node.count} samples, {share:.1f}%)</title>"
        f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{ROW - 1}" '
        f'fill="{_colour(node.name)}" rx="2"/>{text}</g>'
    )
    child_x = x
    for child in sorted(node.children.values(), key=lambda c: c.name):
        _draw(child, child_x, scale, level - 1, total=total, out=out)
        child_x += child.count * scale


def _colour(name: str) -> str:
    """A warm colour, stable per frame name."""
    h = zlib.crc32(name.encode())
    return f"rgb({205 + h % 50},{80 + (h >> 8) % 120},{(h >> 16) % 60})"
