"""LoadTestShape: a class in the locustfile that drives users and spawn rate — or, in the open
model, the arrival rate — over time."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple


class ArrivalRate(NamedTuple):
    """What a shape's ``tick()`` returns to run the open model: ``rate`` task runs per second
    across the whole test (until the next tick), on at most ``users`` concurrent users (None:
    1000, or ``-u`` for a shape with ``use_common_options``), of ``user_classes`` (None: all)."""

    rate: float
    users: int | None = None
    user_classes: Sequence[type] | None = None


class LoadTestShape:
    """Subclass it and implement ``tick()`` returning ``(users, spawn_rate)``,
    ``(users, spawn_rate, user_classes)``, ``ArrivalRate(rate, users)`` for the open model, or
    ``None`` to end the test. The master calls it every second."""

    abstract: ClassVar[bool] = True
    use_common_options: ClassVar[bool] = False
    runner: Any = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "abstract" not in cls.__dict__:
            cls.abstract = False

    def __init__(self) -> None:
        self.start_time = time.perf_counter()

    def reset_time(self) -> None:
        self.start_time = time.perf_counter()

    def get_run_time(self) -> float:
        return time.perf_counter() - self.start_time

    def get_current_user_count(self) -> int:
        return self.runner.user_count if self.runner is not None else 0

    def tick(self) -> tuple[int, float] | tuple[int, float, list[type]] | ArrivalRate | None:
        raise NotImplementedError("LoadTestShape subclasses must implement tick()")


class RampingArrivalRate(LoadTestShape):
    """The open model's rate over time, as stages: ``stages = [(seconds, rate), ...]`` ramps
    linearly from ``start_rate`` to the first stage's rate over its seconds, then to the next
    one's, and so on; the test ends after the last stage. ``users`` is the ceiling of concurrent
    users (None: as for ``ArrivalRate``). A stage with the same rate as the previous one holds it.

    Each tick returns the mean rate of the coming second, so the arrivals of a ramp add up to
    its integral (stages that end within a second: what is left of them, over that second)."""

    abstract = True
    stages: ClassVar[Sequence[tuple[float, float]]] = ()
    start_rate: ClassVar[float] = 0.0
    users: ClassVar[int | None] = None

    def rate_at(self, t: float) -> float | None:
        """The rate ``t`` seconds into the test, or None after the last stage."""
        begin, rate = 0.0, float(self.start_rate)
        for seconds, target in self.stages:
            end = begin + float(seconds)
            if t < end:
                return rate + (float(target) - rate) * (t - begin) / (end - begin)
            begin, rate = end, float(target)
        return None

    def _mean_rate(self, t0: float, t1: float) -> float:
        """The rate's mean over [t0, t1]: trapezoids between the stages' ends (the rate is
        continuous and linear in between, so this is exact)."""
        ends, begin = [], 0.0
        for seconds, _ in self.stages:
            begin += float(seconds)
            ends.append(begin)
        points = sorted({t0, t1, *(e for e in ends if t0 < e < t1)})
        last = float(self.stages[-1][1])

        def rate(t: float) -> float:
            r = self.rate_at(t)
            return last if r is None else r

        area = sum((rate(a) + rate(b)) / 2 * (b - a) for a, b in zip(points, points[1:], strict=False))
        return area / (t1 - t0) if t1 > t0 else rate(t0)

    def tick(self) -> ArrivalRate | None:
        t = round(self.get_run_time())  # ticks come about every second
        if self.rate_at(t) is None:
            return None
        # the rate holds for a whole second, until the next tick: the arrivals the stages give
        # between now and then (or the end), spread over that second
        total = sum(float(s) for s, _ in self.stages)
        end = min(t + 1.0, total)
        return ArrivalRate(self._mean_rate(t, end) * (end - t), self.users)
