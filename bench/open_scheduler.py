"""The open model's scheduler alone: CPU per arrival, and how late arrivals start.

Runs ``lcore.open_pool`` in this process at a given rate with users whose task does nothing
(so what is measured is the schedule, the timer, the hand-over to a free user and the lag
bookkeeping, not an HTTP client), and prints CPU microseconds per arrival and the lag
percentiles. ``python bench/open_scheduler.py --rate 1000 --seconds 10``
"""

from __future__ import annotations

import argparse
import resource
import time

from gevent import monkey

monkey.patch_all()

import gevent  # noqa: E402

from lcore import User, open_pool, task  # noqa: E402
from lcore.arrivals import Segment, Share  # noqa: E402
from lcore.env import Environment  # noqa: E402
from lcore.event import Events  # noqa: E402
from lcore.open_pool import OpenPool  # noqa: E402

LAGS: list[float] = []
_start = open_pool.start_scheduled_task


def _timed_start(intended: float, *args: object, **kwargs: object) -> float:
    # each arrival's lag as the pool measures it, to the microsecond (lag_ms() rounds below
    # 1 ms to 0: on time, for the reports)
    lag = _start(intended, *args, **kwargs)  # type: ignore[arg-type]
    LAGS.append(lag * 1000.0)
    return lag


open_pool.start_scheduled_task = _timed_start  # type: ignore[assignment]


class Idle(User):
    @task
    def nothing(self) -> None:
        pass


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--libev", action="store_true", help="libev's ms timers, not timerfd")
    args = parser.parse_args()
    if args.libev:
        from lcore import precise_timer

        precise_timer._LIBC = None
    env = Environment(user_classes=[Idle], events=Events())
    pool = OpenPool(env, {"Idle": Idle}, lambda name: None)
    gevent.sleep(0)
    before, started = cpu(), time.monotonic()
    pool.set_share(Share(Segment(time.time(), 0.0, args.rate)), 100, {"Idle": 1})
    gevent.sleep(args.seconds)
    pool.stop_all()
    used, elapsed = cpu() - before, time.monotonic() - started
    lags = sorted(LAGS)

    def q(p: float) -> float:
        return lags[min(len(lags) - 1, int(p * len(lags)))]

    print(
        f"{pool.arrived} arrivals in {elapsed:.2f} s (expected {args.rate * args.seconds:.0f}), "
        f"{pool.dropped} dropped, CPU {used:.3f} s = {used / max(1, pool.arrived) * 1e6:.1f} us per arrival "
        f"({used / elapsed * 100:.1f}% of a core); lag ms p50 {q(0.5):.3f} p90 {q(0.9):.3f} "
        f"p99 {q(0.99):.3f} max {lags[-1]:.3f}"
    )


if __name__ == "__main__":
    main()
