"""When appended records become durable: the fsync policy, with group commit.

- `never`:  records are durable once written to the OS (survives kill -9,
  not a power cut);
- `always`: every append waits for its own fsync;
- `batch`:  appends that arrive while an fsync runs wait for the next one,
  which covers all of them (group commit: one fsync per round, not per PUB).

fsync runs in a worker thread; the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tidings.fsync import check_fsync_policy
from tidings.queue.log import MessageLog


class Committer:
    """Makes log appends durable according to the fsync policy."""

    def __init__(self, policy: str) -> None:
        self.policy = check_fsync_policy(policy)
        self._waiting: list[tuple[MessageLog, asyncio.Future[None]]] = []
        self._running = False
        self.rounds = 0

    async def commit(self, log: MessageLog) -> None:
        """Return once what was appended to `log` so far is durable."""
        if self.policy == "never":
            return
        loop = asyncio.get_running_loop()
        if self.policy == "always":
            job = log.sync_job()
            if job is not None:
                self.rounds += 1
                await loop.run_in_executor(None, job)
            return
        future: asyncio.Future[None] = loop.create_future()
        self._waiting.append((log, future))
        if not self._running:
            self._running = True
            loop.call_soon(self._start_round, loop)
        await future

    def _start_round(self, loop: asyncio.AbstractEventLoop) -> None:
        waiting, self._waiting = self._waiting, []
        jobs: list[Callable[[], None]] = []
        seen: set[int] = set()
        for log, _ in waiting:
            if id(log) not in seen:
                seen.add(id(log))
                job = log.sync_job()
                if job is not None:
                    jobs.append(job)
        self.rounds += 1
        task = loop.run_in_executor(None, _run_all, jobs)
        task.add_done_callback(lambda done: self._finish_round(loop, waiting, done))

    def _finish_round(
        self,
        loop: asyncio.AbstractEventLoop,
        waiting: list[tuple[MessageLog, asyncio.Future[None]]],
        done: asyncio.Future[None],
    ) -> None:
        error = done.exception()
        for _, future in waiting:
            if not future.done():
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)
        if self._waiting:
            loop.call_soon(self._start_round, loop)
        else:
            self._running = False

    async def sync_now(self, log: MessageLog) -> None:
        """fsync `log` whatever the policy (used at shutdown)."""
        job = log.sync_job()
        if job is not None:
            await asyncio.get_running_loop().run_in_executor(None, job)


def _run_all(jobs: list[Callable[[], None]]) -> None:
    for job in jobs:
        job()
