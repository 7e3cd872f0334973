"""The task of an owned loop: one task however often started, gone once stopped."""

from __future__ import annotations

import asyncio

from tidings.core.loop_task import LoopTask


class Ticker:
    """A loop that counts its turns and remembers how it ended."""

    def __init__(self) -> None:
        self.runs = 0
        self.turns = 0
        self.cancelled = False

    async def loop(self) -> None:
        self.runs += 1
        try:
            while True:
                self.turns += 1
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            self.cancelled = True
            raise


def named_tasks(name: str) -> list[asyncio.Task[object]]:
    return [task for task in asyncio.all_tasks() if task.get_name() == name]


async def test_start_runs_one_named_task_however_often_called() -> None:
    ticker = Ticker()
    task = LoopTask(ticker.loop, "ticker")
    task.start()
    task.start()
    await asyncio.sleep(0.01)
    assert task.running
    assert ticker.runs == 1
    assert ticker.turns > 0
    assert len(named_tasks("ticker")) == 1
    await task.stop()


async def test_stop_cancels_and_waits_for_the_loop() -> None:
    ticker = Ticker()
    task = LoopTask(ticker.loop, "ticker")
    task.start()
    await asyncio.sleep(0.01)
    await task.stop()
    assert ticker.cancelled  # it ran its way out before stop() returned
    assert not task.running
    assert named_tasks("ticker") == []
    turns = ticker.turns
    await asyncio.sleep(0.01)
    assert ticker.turns == turns


async def test_stop_before_start_does_nothing_and_a_stopped_loop_starts_again() -> None:
    ticker = Ticker()
    task = LoopTask(ticker.loop, "ticker")
    await task.stop()
    assert ticker.runs == 0
    task.start()
    await asyncio.sleep(0.01)
    await task.stop()
    task.start()
    await asyncio.sleep(0.01)
    assert ticker.runs == 2
    await task.stop()
