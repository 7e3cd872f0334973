"""What `tidings serve` prints once it listens: the ports and the URLs to use.

Kept apart from the server so that the workers' supervisor, which prints it
too, does not import the server (aiohttp, the node, the stores).
"""

from __future__ import annotations

from dataclasses import dataclass

from tidings.settings import Settings, admin_enabled


@dataclass
class Ports:
    client: int
    api: int


def print_banner(settings: Settings, ports: Ports) -> None:
    host, api_host = _display_host(settings.address), _display_host(settings.api_address)
    lines = [
        f"tidings ready: client port {ports.client}, API port {ports.api}",
        f"  clients:  ws://{host}:{ports.client}/connection/websocket",
        f"  API:      http://{api_host}:{ports.api}/api/<method>  (header X-API-Key)",
        f"  health:   http://{api_host}:{ports.api}/health",
        f"  metrics:  http://{api_host}:{ports.api}/metrics",
    ]
    if admin_enabled(settings):
        lines.append(f"  admin:    http://{api_host}:{ports.api}/admin")
    if settings.demo:
        lines.append(f"  demo:     http://{host}:{ports.client}/  (chat room)")
    print("\n".join(lines), flush=True)


def _display_host(address: str) -> str:
    return "localhost" if address in ("0.0.0.0", "", "::") else address
