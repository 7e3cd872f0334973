"""Who may open a connection at all: IP allow/deny lists, open-connection caps, a per-IP rate.

All of it is decided from the peer's address alone, as soon as a socket is
accepted and before a byte of its request head is read: a refused peer
costs one short HTTP response (403, 429 or 503) and no session, and idle
sockets that never send a head count like any other. The page's origin is
checked once the head is read.
"""

from __future__ import annotations

import ipaddress
import resource
from collections import Counter

from tidings.core.ratelimit import KeyedBuckets
from tidings.settings import Settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

FORBIDDEN = 403
TOO_MANY_REQUESTS = 429
SERVICE_UNAVAILABLE = 503

#: Descriptors kept free for everything but client sockets (the API port, the
#: store, logs) when `client_connections_max` is automatic: at most this many,
#: and at most a fifth of the limit.
DESCRIPTOR_HEADROOM = 1000


def automatic_connection_cap() -> int:
    """Client connections this process may hold: its descriptor limit less some headroom."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        soft = 1 << 20
    return max(1, soft - min(DESCRIPTOR_HEADROOM, soft // 5))


class ConnectionSlot:
    """One open connection's place in `OpenConnections`; `release` gives it back once."""

    __slots__ = ("_counts", "ip")

    def __init__(self, counts: OpenConnections, ip: str) -> None:
        self._counts: OpenConnections | None = counts
        self.ip = ip

    def release(self) -> None:
        counts = self._counts
        if counts is not None:
            self._counts = None
            counts.release(self.ip)


class OpenConnections:
    """Sockets open on the client port, per peer IP and in total, from accept to close.

    Counting starts when a socket is accepted, before its request head arrives:
    idle sockets that never send a request count as much as WebSocket sessions,
    so no single IP, and no crowd, can take every file descriptor.
    """

    __slots__ = ("_by_ip", "per_ip", "total", "total_max")

    def __init__(self, per_ip: int, total_max: int) -> None:
        #: Most sockets one IP may hold open (0: no limit).
        self.per_ip = per_ip
        #: Most sockets open in all.
        self.total_max = total_max
        self.total = 0
        self._by_ip: dict[str, int] = {}

    def open_from(self, ip: str) -> int:
        """Sockets `ip` holds open now."""
        return self._by_ip.get(ip, 0)

    def take(self, ip: str) -> ConnectionSlot | int:
        """A slot for a new socket from `ip`, or the HTTP status refusing it.

        429: `ip` already holds `per_ip` sockets; 503: the node holds `total_max`.
        """
        if self.total >= self.total_max:
            return SERVICE_UNAVAILABLE
        held = self._by_ip.get(ip, 0)
        if self.per_ip and held >= self.per_ip:
            return TOO_MANY_REQUESTS
        self._by_ip[ip] = held + 1
        self.total += 1
        return ConnectionSlot(self, ip)

    def release(self, ip: str) -> None:
        held = self._by_ip.get(ip, 0) - 1
        if held > 0:
            self._by_ip[ip] = held
        else:
            self._by_ip.pop(ip, None)
        self.total = max(0, self.total - 1)


class AccessPolicy:
    def __init__(self, settings: Settings) -> None:
        self._allow: list[Network] = [
            ipaddress.ip_network(c, strict=False) for c in settings.client_ip_allow
        ]
        self._deny: list[Network] = [
            ipaddress.ip_network(c, strict=False) for c in settings.client_ip_deny
        ]
        self._rate = KeyedBuckets(settings.connection_rate_per_ip, settings.connection_burst_per_ip)
        self._origins = frozenset(o.lower().rstrip("/") for o in settings.allowed_origins)
        self.open = OpenConnections(
            settings.client_connections_per_ip,
            settings.client_connections_max or automatic_connection_cap(),
        )
        #: Refusals by reason ("ip_denied", "ip_rate", "origin", "ip_connections",
        #: "connections", "bad_request", "head_timeout").
        self.refused: Counter[str] = Counter()

    def admit(self, ip: str) -> ConnectionSlot | int:
        """A slot for a socket just accepted from `ip`, or the HTTP status refusing it.

        403: `ip` is denied (or not allowed); 503: the node holds
        `client_connections_max` sockets; 429: `ip` holds
        `client_connections_per_ip` sockets, or opens them faster than
        `connection_rate_per_ip`.
        """
        if not self._listed(ip):
            self.refused["ip_denied"] += 1
            return FORBIDDEN
        slot = self.open.take(ip)
        if isinstance(slot, int):
            self.refused["connections" if slot == SERVICE_UNAVAILABLE else "ip_connections"] += 1
            return slot
        if not self._rate.take(ip):
            slot.release()
            self.refused["ip_rate"] += 1
            return TOO_MANY_REQUESTS
        return slot

    def origin_allowed(self, origin: str, host: str) -> bool:
        """Whether a browser page from `origin` may connect to this port at `host`.

        Requests without an Origin header (SDKs outside browsers) are allowed;
        browsers may connect from the same origin, or from one listed in
        `allowed_origins` ("*" allows every origin).
        """
        if not origin:
            return True
        if "*" in self._origins or origin.lower() in self._origins:
            return True
        return origin.split("://", 1)[-1].lower() == host.lower()

    def _listed(self, ip: str) -> bool:
        """Whether the allow/deny lists let `ip` in."""
        if not self._allow and not self._deny:
            return True
        try:
            address = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if any(address in net for net in self._deny):
            return False
        return not self._allow or any(address in net for net in self._allow)
