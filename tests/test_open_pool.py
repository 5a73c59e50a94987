"""The open model's pool on a worker, in process: arrivals on free users, users on demand,
one task per arrival (TaskSets entered and left), dropped arrivals counted, clean stops."""

from __future__ import annotations

import time
from collections import Counter

import gevent

from lcore import TaskSet, User, constant, task
from lcore.arrivals import Segment, Share
from lcore.env import Environment
from lcore.event import Events
from lcore.open_pool import OpenPool
from lcore.schedule_lag import lag_ms


def make_pool(*classes: type[User], dropped: Counter[str] | None = None) -> OpenPool:
    env = Environment(user_classes=list(classes), events=Events())
    env.stop_timeout = 0.0
    env.exception_recorder = lambda msg, tb: env.__dict__.setdefault("exc", []).append(msg)
    sink = dropped if dropped is not None else Counter()
    return OpenPool(env, {c.__name__: c for c in classes}, lambda name: sink.update([name]))


def run_for(pool: OpenPool, rate: float, ceiling: int, seconds: float, **weights: int) -> None:
    pool.set_share(Share(Segment(time.time(), 0.0, rate)), ceiling, weights or {n: 1 for n in pool.user_classes})
    gevent.sleep(seconds)


def test_arrivals_run_one_task_each_on_users_started_on_demand() -> None:
    started: Counter[int] = Counter()
    runs: Counter[int] = Counter()
    stopped: Counter[int] = Counter()

    class Quick(User):
        wait_time = constant(60)  # never slept in the open model

        def on_start(self) -> None:
            started[id(self)] += 1

        @task
        def work(self) -> None:
            runs[id(self)] += 1
            gevent.sleep(0.02)

        def on_stop(self) -> None:
            stopped[id(self)] += 1

    pool = make_pool(Quick)
    run_for(pool, 200.0, 50, 1.0)
    pool.stop_all()
    # 200/s for 1 s, each task 20 ms: about 4 users busy at a time, a few more at most
    assert 195 <= sum(runs.values()) <= 205
    assert 3 <= len(started) <= 12
    assert set(started.values()) == {1} and started.keys() == stopped.keys() == runs.keys()
    assert set(stopped.values()) == {1}
    assert pool.dropped == 0 and pool.user_count == 0 and len(pool.group) == 0


def test_arrivals_beyond_the_ceiling_are_dropped_and_counted() -> None:
    dropped: Counter[str] = Counter()

    class Slow(User):
        @task
        def work(self) -> None:
            gevent.sleep(0.5)

    pool = make_pool(Slow, dropped=dropped)
    run_for(pool, 100.0, 5, 1.0)
    pool.stop_all()
    # 5 users each busy for 0.5 s: the first 5 arrivals get one, the next 45 in that half
    # second are dropped, then 5 more get them back ... about 90 of the 100
    assert pool.arrived >= 99
    assert dropped["Slow"] == pool.dropped
    served = pool.arrived - pool.dropped
    assert 5 <= served <= 15


def test_the_task_knows_how_late_it_started() -> None:
    lags: list[float] = []

    class Blocked(User):
        @task
        def work(self) -> None:
            lags.append(lag_ms())

    pool = make_pool(Blocked)
    pool.set_share(Share(Segment(time.time(), 0.0, 1000.0)), 300, {"Blocked": 1})
    time.sleep(0.2)  # the hub is blocked: 200 arrivals come due meanwhile
    gevent.sleep(0.1)
    pool.stop_all()
    assert len(lags) >= 250
    assert max(lags) > 150.0  # the first ones ran 200 ms late, and know it
    assert lags[-1] < 50.0


def test_a_taskset_is_entered_run_one_task_per_arrival_and_left() -> None:
    seen: list[str] = []

    class Inner(TaskSet):
        def on_start(self) -> None:
            seen.append("enter")

        @task
        def step(self) -> None:
            seen.append("step")
            if seen.count("step") % 3 == 0:
                self.interrupt()

        def on_stop(self) -> None:
            seen.append("leave")

    class Shopper(User):
        tasks = [Inner]

    pool = make_pool(Shopper)
    run_for(pool, 40.0, 1, 0.5)
    pool.stop_all()
    arrivals = pool.arrived
    assert seen.count("step") in (arrivals, arrivals - 1)
    # enter, step, step, step, leave, enter, ...: one task function per arrival
    assert seen[:6] == ["enter", "step", "step", "step", "leave", "enter"]


def test_classes_get_arrivals_by_weight() -> None:
    counts: Counter[str] = Counter()

    class A(User):
        @task
        def a(self) -> None:
            counts["A"] += 1

    class B(User):
        @task
        def b(self) -> None:
            counts["B"] += 1

    pool = make_pool(A, B)
    run_for(pool, 400.0, 10, 0.5, A=3, B=1)
    pool.stop_all()
    total = counts["A"] + counts["B"]
    assert total >= 190
    assert abs(counts["A"] - 0.75 * total) <= 5


def test_a_user_that_stops_itself_frees_its_place() -> None:
    started: list[int] = []

    class Once(User):
        def on_start(self) -> None:
            started.append(id(self))

        @task
        def work(self) -> None:
            from lcore import StopUser

            raise StopUser()

    pool = make_pool(Once)
    run_for(pool, 100.0, 1, 0.5)
    pool.stop_all()
    # a ceiling of one user, and a new one for nearly every arrival (on a busy machine two
    # arrivals may come due at once: the second finds the first's user still starting)
    assert pool.arrived >= 45
    assert len(started) + pool.dropped == pool.arrived
    assert len(started) >= pool.arrived * 0.7


def test_the_precise_timer_fires_at_its_deadline_never_before() -> None:
    from lcore import precise_timer

    for libc in (precise_timer._LIBC, None):  # timerfd, then libev's timer as the fallback
        saved, precise_timer._LIBC = precise_timer._LIBC, libc
        try:
            fired: list[float] = []

            def fire(fired: list[float] = fired) -> None:
                fired.append(time.monotonic())

            timer = precise_timer.PreciseTimer(gevent.get_hub().loop, fire)
            assert timer.precise == (libc is not None)
            deadline = time.monotonic() + 0.05
            timer.set(deadline + 10)  # replaced by the next set
            timer.set(deadline)
            gevent.sleep(0.3)
            assert len(fired) == 1 and deadline <= fired[0] < deadline + 0.2
            timer.set(time.monotonic() + 0.05)
            timer.cancel()
            gevent.sleep(0.1)
            assert len(fired) == 1
            timer.close()
        finally:
            precise_timer._LIBC = saved


def test_a_sequential_taskset_advances_one_task_per_arrival() -> None:
    from lcore import SequentialTaskSet

    seen: list[str] = []

    class Steps(SequentialTaskSet):
        @task
        def first(self) -> None:
            seen.append("first")

        @task
        def second(self) -> None:
            seen.append("second")

        @task
        def third(self) -> None:
            seen.append("third")

    class Walker(User):
        tasks = [Steps]

    pool = make_pool(Walker)
    run_for(pool, 50.0, 1, 0.3)
    pool.stop_all()
    assert len(seen) >= 10 and len(seen) in (pool.arrived, pool.arrived - 1)
    assert seen[:6] == ["first", "second", "third"] * 2


def test_an_arrival_held_by_the_rate_cap_is_that_much_later() -> None:
    from lcore import schedule_lag
    from lcore.rate_cap import RateGate

    gate = RateGate()
    gate.add(Share(Segment(time.time(), 0.0, 10.0)))  # a slot every 100 ms
    seen = {}

    def request_twice(scheduled: bool) -> None:
        g = gevent.getcurrent()
        g.lcore_arrival_due = time.monotonic() if scheduled else None
        try:
            gate.wait()
            gate.wait()  # the next slot: about 100 ms later
            seen[scheduled] = schedule_lag.current()[0] / 1000.0
        finally:
            schedule_lag.end_scheduled_task()

    gevent.spawn(request_twice, True).join(timeout=5)
    gevent.spawn(request_twice, False).join(timeout=5)
    assert 80.0 <= seen[True] <= 400.0  # an arrival: its corrected times count the wait
    assert seen[False] == 0.0  # a user without a schedule has no lag to add it to
    assert schedule_lag.late[0] == 0
