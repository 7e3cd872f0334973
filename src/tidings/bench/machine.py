"""What /proc says about a process (RSS, CPU seconds) and the host (socket memory)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import resource
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
#: The CPUs this process could use when it started (before `pin`).
START_AFFINITY = frozenset(os.sched_getaffinity(0))


@dataclass(frozen=True, slots=True)
class ProcessSample:
    """One reading of a process: resident memory (bytes) and CPU (seconds, user+system)."""

    rss: int
    cpu: float
    user: float
    system: float


def sample(pid: int) -> ProcessSample:
    """RSS from /proc/<pid>/status (VmRSS) and CPU from /proc/<pid>/stat (utime+stime)."""
    rss = 0
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
                break
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        stat = fh.read()
    # The command name may hold spaces: fields are counted after its closing ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    user = int(fields[11]) / _TICKS
    system = int(fields[12]) / _TICKS
    return ProcessSample(rss, user + system, user, system)


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        stat = fh.read()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def process_tree(root: int) -> list[int]:
    """`root` and every live process descended from it (from /proc/*/stat), root first."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                children.setdefault(_parent(int(entry.name)), []).append(int(entry.name))
    tree = [root]
    for pid in tree:  # grows while it is walked: breadth first
        tree.extend(children.get(pid, []))
    return tree


def start_time(pid: int) -> int:
    """When the process started (clock ticks after boot): with its pid, who it is.

    Raises OSError once it has gone."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        stat = fh.read()
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def kill_leftovers(processes: Iterable[tuple[int, int]]) -> None:
    """SIGKILL each (pid, start_time) still running as that same process (not a reused pid)."""
    for pid, started in processes:
        with contextlib.suppress(OSError, ValueError, IndexError):
            if start_time(pid) == started:
                os.kill(pid, signal.SIGKILL)


def command_name(pid: int) -> str:
    """The process's command name (/proc/<pid>/comm), "" once it has gone."""
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return ""


#: The command name of the Redis server a target starts (reported apart from the rest).
REDIS_COMMAND = "redis-server"


@dataclass(frozen=True, slots=True)
class TreeSample:
    """Process trees added up (a supervisor, its workers, a redis-server, ...).

    `rss`, `cpu`, `user` and `system` cover every process; `redis_rss` and
    `redis_cpu` are the redis-server processes' share of them.
    """

    rss: int
    cpu: float
    user: float
    system: float
    redis_rss: int
    redis_cpu: float
    processes: int


def tree_sample(roots: Iterable[int]) -> TreeSample:
    """`sample` of every process in the trees under `roots`, summed (gone ones skipped).

    The CPU of a process that has exited (a restarted worker) is no longer counted.
    """
    seen: set[int] = set()
    rss = redis_rss = count = 0
    cpu = user = system = redis_cpu = 0.0
    for root in roots:
        for pid in process_tree(root):
            if pid in seen:
                continue
            seen.add(pid)
            try:
                reading = sample(pid)
            except (OSError, ValueError, IndexError):
                continue
            count += 1
            rss += reading.rss
            cpu += reading.cpu
            user += reading.user
            system += reading.system
            if command_name(pid) == REDIS_COMMAND:
                redis_rss += reading.rss
                redis_cpu += reading.cpu
    return TreeSample(rss, cpu, user, system, redis_rss, redis_cpu, count)


def socket_memory() -> int:
    """Bytes of kernel TCP buffer memory in use (/proc/net/sockstat `TCP: ... mem` pages)."""
    with open("/proc/net/sockstat", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("TCP:"):
                parts = line.split()
                return int(parts[parts.index("mem") + 1]) * _PAGE
    return 0


def parse_cpus(text: str) -> frozenset[int]:
    """CPU numbers from a `taskset -c` style list ("1", "0,2", "0-3"); "" means no pinning.

    Raises ValueError for a malformed list or a CPU this process may not use.
    """
    cpus: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        first, dash, last = part.partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ValueError(f"bad CPU list {text!r}")
        low, high = int(first), int(last) if dash else int(first)
        if high < low:
            raise ValueError(f"bad CPU range {part!r}")
        cpus.update(range(low, high + 1))
    unknown = cpus - START_AFFINITY
    if unknown:
        raise ValueError(f"CPUs {sorted(unknown)} are not available here")
    return frozenset(cpus)


def pin(cpus: frozenset[int]) -> None:
    """Pin the calling process (and the children it starts later) to `cpus`, if any."""
    if cpus:
        os.sched_setaffinity(0, cpus)


def load_average() -> float:
    return os.getloadavg()[0]


def load_summary(readings: list[float]) -> dict[str, float]:
    """First, lowest, mean, highest and last of 1-minute load averages read during a run."""
    if not readings:
        return {}
    return {
        "start": round(readings[0], 2),
        "min": round(min(readings), 2),
        "mean": round(sum(readings) / len(readings), 2),
        "max": round(max(readings), 2),
        "end": round(readings[-1], 2),
    }


def raise_nofile_limit() -> int:
    """Lift the soft descriptor limit to the hard one; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


#: The packages whose versions `description()` reports by default.
PACKAGES = ("tidings", "picows", "uvloop", "msgspec", "aiohttp", "websockets")


def package_versions(packages: Iterable[str]) -> dict[str, str]:
    """Installed version of each package ("not installed" when it is not)."""
    versions: dict[str, str] = {}
    for pkg in packages:
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    return versions


def description(packages: Iterable[str] = PACKAGES, *, with_load: bool = True) -> dict[str, Any]:
    """The machine and software versions, for results files and BENCHMARKS.md."""
    cpu_model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {
        "nproc": len(START_AFFINITY),
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nofile_hard_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
    }
    if with_load:
        info["load_average_1m"] = round(load_average(), 2)
    info["versions"] = package_versions(packages)
    return info
