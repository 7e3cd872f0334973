"""Counters of what passes through a node, read by the metrics collector at scrape time.

Plain integers and Counters bumped inline: a metrics library on the hot path
would cost a lock and a label lookup per message.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from tidings.core.latency import LatencyTable

#: Store operations timed by `time_store` (the awaitable ones).
STORE_OPERATIONS = ("append", "read", "position", "remove", "find", "ack", "acked", "acks")


@dataclass(slots=True)
class Traffic:
    bytes_in: int = 0
    bytes_out: int = 0
    #: Publications queued for subscribers (one per subscriber).
    deliveries: int = 0
    #: Client commands by method, and the error codes they were answered with.
    commands: Counter[str] = field(default_factory=Counter)
    errors: Counter[int] = field(default_factory=Counter)
    #: Server-side closes by disconnect code.
    disconnects: Counter[int] = field(default_factory=Counter)
    store_latency: LatencyTable = field(default_factory=LatencyTable)


def time_store(store: Any, latency: LatencyTable) -> None:
    """Time the store's operations into `latency`, by operation name.

    The bound methods are shadowed on the instance, so the store's class and
    its other callers are unchanged.
    """
    for name in STORE_OPERATIONS:
        method = getattr(store, name, None)
        if method is None:
            continue
        try:
            setattr(store, name, _timed(method, name, latency))
        except AttributeError:  # a store with __slots__: left untimed
            return


def _timed(
    method: Callable[..., Awaitable[Any]], name: str, latency: LatencyTable
) -> Callable[..., Awaitable[Any]]:
    histogram = latency.by_key[name]
    clock = time.perf_counter

    @wraps(method)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = clock()
        try:
            return await method(*args, **kwargs)
        finally:
            histogram.observe(clock() - started)

    return timed
