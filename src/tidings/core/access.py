"""Who may open a connection at all: IP allow/deny lists and a per-IP rate.

Checked before the WebSocket upgrade, so a refused peer costs one HTTP
response (403 or 429) and no session.
"""

from __future__ import annotations

import ipaddress
from collections import Counter

from tidings.config import Settings
from tidings.core.ratelimit import KeyedBuckets

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

FORBIDDEN = 403
TOO_MANY_REQUESTS = 429


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
        #: Refusals by reason ("ip_denied", "ip_rate", "origin").
        self.refused: Counter[str] = Counter()

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

    def check(self, ip: str) -> int | None:
        """An HTTP status refusing `ip`, or None to let it upgrade."""
        if self._allow or self._deny:
            try:
                address = ipaddress.ip_address(ip.split("%", 1)[0])
            except ValueError:
                self.refused["ip_denied"] += 1
                return FORBIDDEN
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                address = address.ipv4_mapped
            if any(address in net for net in self._deny) or (
                self._allow and not any(address in net for net in self._allow)
            ):
                self.refused["ip_denied"] += 1
                return FORBIDDEN
        if not self._rate.take(ip):
            self.refused["ip_rate"] += 1
            return TOO_MANY_REQUESTS
        return None
