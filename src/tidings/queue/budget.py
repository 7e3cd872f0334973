"""The memory all connections together may hold in unparsed input.

Each connection buffers at most one command line and one body (bounded by
the size limits), but a thousand connections each sending most of a 5 MiB
body would hold gigabytes. `ReadBudget` counts what all parsers hold; past
the limit, a connection holding more than `SMALL` bytes stops reading (TCP
pushes back on its sender) until the total is back under half the limit.
Connections holding little keep being served, so small commands (FIN, RDY,
PUB of small messages) are never starved by large ones. A paused sender
that never completes is closed by the heartbeat timeout, which frees its share.
"""

from __future__ import annotations

from collections.abc import Callable

SMALL = 64 * 1024


class ReadBudget:
    """Bytes held by all connections' parsers, against a limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._paused: dict[int, Callable[[], None]] = {}

    def over(self) -> bool:
        return self.used > self.limit

    def change(self, delta: int) -> None:
        self.used += delta
        if delta < 0 and self._paused and self.used <= self.limit // 2:
            paused, self._paused = self._paused, {}
            for resume in paused.values():
                resume()

    def wait(self, key: int, resume: Callable[[], None]) -> None:
        """Call `resume` once the budget has room again."""
        self._paused[key] = resume

    def forget(self, key: int) -> None:
        self._paused.pop(key, None)
