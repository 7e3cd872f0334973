"""Everything `tidings queue` can be told (nsqd's option names where nsqd has one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

VERSION = "1.3.0"  # the nsqd version whose protocol and APIs we follow


@dataclass(slots=True)
class QueueSettings:
    """Limits are bytes, durations seconds."""

    tcp_address: str = "127.0.0.1:4150"
    http_address: str = "127.0.0.1:4151"
    broadcast_address: str = ""
    data_path: Path = field(default_factory=lambda: Path("tidings-queue-data"))
    fsync: str = "batch"
    max_msg_size: int = 1 << 20
    max_body_size: int = 5 << 20
    msg_timeout: float = 60.0
    max_msg_timeout: float = 15 * 60.0
    max_req_timeout: float = 3600.0
    max_rdy_count: int = 2500
    max_heartbeat_interval: float = 60.0
    heartbeat_interval: float = 30.0
    max_attempts: int = 0
    retention_bytes: int = 0
    segment_bytes: int = 64 << 20
    mem_queue_size: int = 10_000
    max_buffered_bytes: int = 256 << 20
    checkpoint_interval: float = 1.0
    lookupd_tcp_addresses: list[str] = field(default_factory=list)
    replica: str = ""
    replica_timeout: float = 5.0
    replication_address: str = ""

    @property
    def max_req_timeout_ms(self) -> int:
        return int(self.max_req_timeout * 1000)
