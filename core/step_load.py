"""Locust 1.x's Step Load mode as a built-in LoadTestShape (``--step-load``).

Start with ``step_users`` users, add ``step_users`` more every ``step_time`` seconds until
``users``, then hold; each step ramps at ``spawn_rate``. Being a shape, it runs on the master,
which spreads every step over the workers as it does any ramp.

Locust 1.x stopped at the last whole step below ``-u`` when ``-u`` was not a multiple of the
step (``-u 100 --step-users 30`` held 90 users); here the last step tops up to ``users``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .shape import LoadTestShape


class StepLoadShape(LoadTestShape):
    """``(users of the current step, spawn_rate)`` every tick; ``None`` after ``time_limit``
    seconds (``-t``), if one is given, so the test ends as Locust 1.x's did.

    Given ``options`` (the parsed options), every tick reads ``num_users``, ``spawn_rate``
    and ``run_time`` from them again, as a Locust shape with ``use_common_options`` does: a
    status page that starts the test with other values sets them there."""

    # it reads -u, -r and -t (Locust's name for a shape that honours the common options)
    use_common_options = True

    def __init__(
        self,
        *,
        users: int,
        step_users: int,
        step_time: float,
        spawn_rate: float,
        time_limit: float | None = None,
        options: Any = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if step_users < 1 or step_time <= 0 or users < 1 or spawn_rate <= 0:
            raise ValueError("step load needs users, step_users, step_time and spawn_rate > 0")
        self.users = users
        self.step_users = step_users
        self.step_time = step_time
        self.spawn_rate = spawn_rate
        self.time_limit = time_limit
        self.options = options
        self._clock = clock
        super().__init__()
        self.reset_time()

    def reset_time(self) -> None:
        self.start_time = self._clock()

    def get_run_time(self) -> float:
        return self._clock() - self.start_time

    def users_at(self, run_time: float) -> int:
        """The user count of the step that ``run_time`` falls in."""
        step = int(run_time // self.step_time) + 1
        return min(step * self.step_users, self.users)

    def _read_options(self) -> None:
        get = self.options.__dict__.get
        if get("num_users") and get("num_users") > 0:
            self.users = int(get("num_users"))
        if get("spawn_rate") and get("spawn_rate") > 0:
            self.spawn_rate = float(get("spawn_rate"))
        self.time_limit = get("run_time") or None

    def tick(self) -> tuple[int, float] | None:
        if self.options is not None:
            self._read_options()
        run_time = self.get_run_time()
        if self.time_limit is not None and run_time >= self.time_limit:
            return None
        return self.users_at(run_time), self.spawn_rate

    def describe(self) -> str:
        """One line for the log, naming today's Locust equivalent."""
        return (
            f"Step load (Locust 1.x's --step-load; today's Locust writes a LoadTestShape): "
            f"{self.step_users} more users every {self.step_time:g} s up to {self.users}, "
            f"spawn rate {self.spawn_rate:g}/s"
        )


def from_options(options: Any) -> StepLoadShape | None:
    """The step shape ``--step-load`` asks for (options already validated), else None."""
    if not getattr(options, "step_load", False):
        return None
    return StepLoadShape(
        users=options.num_users,
        step_users=options.step_users,
        step_time=options.step_time,
        spawn_rate=options.spawn_rate if options.spawn_rate is not None else 1.0,
        time_limit=options.run_time or None,
        options=options,
    )
