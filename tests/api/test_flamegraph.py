"""The flame-graph SVG: well-formed, proportional, and safe with any frame name."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from tidings.api.flamegraph import WIDTH, render

NS = "{http://www.w3.org/2000/svg}"


def rects(svg: str) -> dict[str, float]:
    root = ET.fromstring(svg)
    out: dict[str, float] = {}
    for group in root.iter(f"{NS}g"):
        title = group.find(f"{NS}title")
        rect = group.find(f"{NS}rect")
        assert title is not None and rect is not None
        out[(title.text or "").split(" (")[0]] = float(rect.attrib["width"])
    return out


def test_widths_follow_the_samples() -> None:
    svg = render({("main", "loop", "publish"): 3, ("main", "loop", "read"): 1, ("main",): 4})
    widths = rects(svg)
    assert widths["all"] == WIDTH
    assert widths["main"] == WIDTH
    assert abs(widths["loop"] - WIDTH / 2) < 0.2
    assert abs(widths["publish"] - 3 * widths["read"]) < 0.5
    assert "8 samples" in svg


def test_names_are_escaped() -> None:
    svg = render({("<script>alert(1)</script>", "a&b"): 1})
    assert "<script>" not in svg
    names = rects(svg)  # parses: the SVG stays well-formed
    assert "<script>alert(1)</script>" in names
    assert "a&b" in names


def test_no_samples() -> None:
    assert rects(render({})) == {}
