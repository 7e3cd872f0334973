"""The publisher's request bodies: one publication, a batch, a parallel batch."""

from __future__ import annotations

import json

from tidings.bench.publisher import Publisher


def test_bodies() -> None:
    sequential = Publisher("http://x", "k", "fan", 50)
    method, body = sequential._body(1)
    assert method == "publish" and json.loads(body)["channel"] == "fan"
    method, body = sequential._body(3)
    batch = json.loads(body)
    assert method == "batch" and len(batch["commands"]) == 3 and "parallel" not in batch
    assert all(c["publish"]["channel"] == "fan" for c in batch["commands"])
    _method, body = Publisher("http://x", "k", "fan", 50, parallel=True)._body(3)
    assert json.loads(body)["parallel"] is True
