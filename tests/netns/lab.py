"""A small network of hosts in Linux network namespaces, with faults on demand.

`NetnsLab(n)` creates n namespaces joined by a bridge (10.77.x.1..n/24, each with
its own address), runs one process per host (`spawn`), and injects faults with
nftables inside a host's namespace: random packet loss (`loss`), partitions
(`partition` / `heal`) and crashes (`kill`). Needs root, `ip` and `nft`
(Debian: iproute2, nftables; scripts/setup-test-deps.sh installs nftables).
The kernel here has no netem, so loss is nft's `numgen random` drop and there is
no added delay.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


def _quietly(*argv: str) -> None:
    """Clean-up: best effort, the thing may already be gone."""
    subprocess.run(argv, check=False, capture_output=True, timeout=30)


@dataclass
class Host:
    index: int
    namespace: str
    address: str
    proc: subprocess.Popen[str] | None = None
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def exec(self, *argv: str) -> None:
        run("ip", "netns", "exec", self.namespace, *argv)

    def seen(self, match: Callable[[dict[str, Any]], bool]) -> list[tuple[float, dict[str, Any]]]:
        with self.lock:
            return [(t, e) for t, e in self.events if match(e)]


class NetnsLab:
    def __init__(self, size: int, subnet: int | None = None) -> None:
        tag = os.getpid() % 100000
        self.prefix = f"t{tag}"
        self.subnet = subnet if subnet is not None else 77 + tag % 150
        self.bridge = f"{self.prefix}br"
        self.hosts = [
            Host(i, f"{self.prefix}n{i}", f"10.{self.subnet}.0.{i + 1}") for i in range(size)
        ]

    def __enter__(self) -> NetnsLab:
        run("ip", "link", "add", self.bridge, "type", "bridge")
        run("ip", "link", "set", self.bridge, "up")
        for host in self.hosts:
            outside, inside = f"{self.prefix}v{host.index}", f"{self.prefix}p{host.index}"
            run("ip", "netns", "add", host.namespace)
            run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
            run("ip", "link", "set", outside, "master", self.bridge)
            run("ip", "link", "set", outside, "up")
            run("ip", "link", "set", inside, "netns", host.namespace)
            host.exec("ip", "addr", "add", f"{host.address}/24", "dev", inside)
            host.exec("ip", "link", "set", inside, "up")
            host.exec("ip", "link", "set", "lo", "up")
            host.exec("nft", "add", "table", "inet", "faults")
            host.exec(
                "nft", "add", "chain", "inet", "faults", "input",
                "{ type filter hook input priority 0; }",
            )  # fmt: skip
        return self

    def __exit__(self, *exc: object) -> None:
        for host in self.hosts:
            self.kill(host)
        for host in self.hosts:
            _quietly("ip", "netns", "del", host.namespace)
            _quietly("ip", "link", "del", f"{self.prefix}v{host.index}")
        _quietly("ip", "link", "del", self.bridge)

    # -- processes -----------------------------------------------------------------

    def spawn(self, host: Host, argv: list[str]) -> None:
        """Run `argv` inside the host's namespace; its JSON stdout lines become events."""
        host.proc = subprocess.Popen(
            ["ip", "netns", "exec", host.namespace, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        threading.Thread(target=self._read, args=(host,), daemon=True).start()

    def _read(self, host: Host) -> None:
        assert host.proc is not None and host.proc.stdout is not None
        for line in host.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with host.lock:
                host.events.append((time.monotonic(), event))

    def kill(self, host: Host) -> None:
        if host.proc is not None and host.proc.poll() is None:
            host.proc.send_signal(signal.SIGKILL)
            host.proc.wait(10)

    # -- faults --------------------------------------------------------------------

    def loss(self, percent: int) -> None:
        """Drop `percent`% of the packets every host receives (UDP and TCP)."""
        for host in self.hosts:
            host.exec(
                "nft", "add", "rule", "inet", "faults", "input", "ip", "saddr",
                f"10.{self.subnet}.0.0/24", "numgen", "random", "mod", "100", "<", str(percent),
                "drop",
            )  # fmt: skip

    def partition(self, *groups: list[int]) -> None:
        """Hosts in different groups stop hearing each other."""
        where = {i: g for g, members in enumerate(groups) for i in members}
        for host in self.hosts:
            others = [h.address for h in self.hosts if where.get(h.index) != where.get(host.index)]
            if others:
                host.exec(
                    "nft", "add", "rule", "inet", "faults", "input", "ip", "saddr",
                    "{ " + ", ".join(others) + " }", "drop",
                )  # fmt: skip

    def heal(self) -> None:
        for host in self.hosts:
            host.exec("nft", "flush", "chain", "inet", "faults", "input")
