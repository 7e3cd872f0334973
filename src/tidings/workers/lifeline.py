"""The tie between the supervisor and its children: they do not outlive it.

Two mechanisms, because either alone has a gap:

- Linux's parent-death signal (`prctl(PR_SET_PDEATHSIG)`), armed in the child
  between fork and exec (`die_with_parent`): the kernel signals the child when
  the supervisor dies, even by `kill -9`. It also reaches `redis-server`,
  which knows nothing of tidings.
- A pipe (`watch_parent`): a worker's stdin is the write end the supervisor
  holds open for its whole life; end of file means the supervisor is gone,
  on any platform, and the worker drains and stops.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import signal
from collections.abc import Callable

#: prctl(2) option: the signal this process gets when its parent dies.
PR_SET_PDEATHSIG = 1

_libc_name = ctypes.util.find_library("c")
# Loaded now, not after fork: the child must only make the call.
_libc = ctypes.CDLL(_libc_name, use_errno=True) if _libc_name else None
_prctl = getattr(_libc, "prctl", None)


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None]:
    """A `preexec_fn` that has the child sent `sig` when this (the parent) process dies.

    If the parent died between fork and the prctl call, the signal would never
    come: the child then exits at once.
    """
    parent = os.getpid()

    def arm() -> None:
        if _prctl is not None:
            _prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return arm


def watch_parent(fd: int, gone: Callable[[], None]) -> None:
    """Call `gone` once `fd` (a pipe the parent holds open) reaches end of file.

    Whatever the parent writes after start-up is read and ignored.
    """
    loop = asyncio.get_running_loop()

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            gone()

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)
