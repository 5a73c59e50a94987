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

    The next task is due ``wait_time`` after the previous one started: a schedule, so the
    user's response times are also counted from those due times (``schedule_lag``). A user
    that fell behind does not burst to catch up (Locust's pacing): its next task starts at
    once and stands for the slot it missed first, the slots that went by meanwhile are
    counted in the corrected figures as missed, and the grid then starts again from there.
    """

    def wait_time_func(self: Any) -> float:
        # Users and task sets set _cp_last_run when created, so the first task's own
        # duration is subtracted too.
        now = time.monotonic()
        run_time = now - getattr(self, "_cp_last_run", now) - getattr(self, "_cp_last_wait", 0.0)
        wait = max(0.0, wait_time - run_time)
        self._cp_last_wait = wait
        self._cp_last_run = now
        # the next task is due wait_time after the previous one's (intended) start; a
        # TaskSet's own pacing schedules its user's next task all the same
        user = getattr(self, "_user", self)
        try:
            user._lcore_due = (now + wait_time - run_time, wait_time)
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
