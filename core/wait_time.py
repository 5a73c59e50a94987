"""Wait times, with Locust's semantics. Each returns a function called with the user (or task set)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

WaitTime = Callable[[Any], float]


def between(min_wait: float, max_wait: float) -> WaitTime:
    """A random wait, uniform in [min_wait, max_wait] seconds."""
    uniform = random.uniform
    return lambda _self: uniform(min_wait, max_wait)


def constant(wait_time: float) -> WaitTime:
    """The same wait after every task."""
    return lambda _self: wait_time


def constant_pacing(wait_time: float) -> WaitTime:
    """Wait so that a task *starts* every ``wait_time`` seconds (no wait if a task took longer).

    The tasks are due on a grid, ``wait_time`` apart from the first task on: a schedule, so
    the user's response times are also counted from those due times (``schedule_lag``). A user
    that fell behind does not burst to catch up: its next task starts at once and stands for
    the slot it missed first, the slots that went by meanwhile are counted in the corrected
    figures as missed, and the task after it is due at the grid's next slot. (Locust's own
    pacing restarts its grid from the late task instead; lcore keeps the grid, so that a stall
    cannot line every paced user up on the same beat. Called outside lcore's task loop, the
    function computes Locust's wait exactly.)
    """

    def wait_time_func(self: Any) -> float:
        # Users and task sets set _cp_last_run when created, so the first task's own
        # duration is subtracted too.
        now = time.monotonic()
        run_time = now - getattr(self, "_cp_last_run", now) - getattr(self, "_cp_last_wait", 0.0)
        # the task loop keeps the user's grid (see schedule_lag.run_paced_task): the next
        # slot after the one the task that just ended stood for
        user = getattr(self, "_user", self)  # a TaskSet's own pacing schedules its user
        grid = getattr(user, "_lcore_grid", None)
        due: float
        if grid is not None and grid[0] is wait_time_func:
            due = grid[1]
        else:
            due = now + wait_time - run_time  # Locust's: the previous start + wait_time
        wait = max(0.0, due - now)
        self._cp_last_wait = wait
        self._cp_last_run = now
        try:
            user._lcore_due = (due, wait_time, wait_time_func)
        except AttributeError:  # not a User (a test calling the function with a stand-in)
            pass
        return wait

    return wait_time_func


def constant_throughput(task_runs_per_second: float) -> WaitTime:
    """The inverse of ``constant_pacing``: at most this many task runs per second per user."""
    if task_runs_per_second <= 0:
        raise ValueError(
            f"constant_throughput() requires a positive rate, got: {task_runs_per_second}"
        )
    return constant_pacing(1.0 / task_runs_per_second)


def poisson(rate: float) -> WaitTime:
    """Exponentially distributed waits of mean ``1/rate`` s: task runs arrive as a Poisson
    process of ``rate`` per second per user (bursts and lulls, unlike constant_throughput)."""
    if rate <= 0:
        raise ValueError(f"poisson() requires a positive rate, got: {rate}")
    expovariate = random.expovariate
    return lambda _self: expovariate(rate)
