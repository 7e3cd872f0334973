"""The read budget: waiters resume once the total is back under half the limit."""

from __future__ import annotations

from tidings.queue.budget import ReadBudget


def test_waiters_resume_below_half() -> None:
    budget = ReadBudget(100)
    resumed: list[int] = []
    budget.change(150)
    assert budget.over()
    budget.wait(1, lambda: resumed.append(1))
    budget.wait(2, lambda: resumed.append(2))
    budget.forget(2)
    budget.change(-60)  # 90: under the limit, not under half
    assert not budget.over() and resumed == []
    budget.change(-50)  # 40
    assert resumed == [1]
    budget.change(-10)
    assert resumed == [1]  # resumed once only
