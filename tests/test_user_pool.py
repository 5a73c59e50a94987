"""The user pool: users parked off their greenlets while they wait, woken, stopped, counted."""

from __future__ import annotations

import time
from collections import Counter

import gevent
from conftest import wait_until

from lcore import TaskSet, User, constant, task
from lcore.env import Environment
from lcore.event import Events
from lcore.user_pool import UserPool
from lcore.user_runners import IDLE_RUNNERS_MAX


def make_pool(*classes: type[User], stop_timeout: float = 0.0) -> UserPool:
    env = Environment(user_classes=list(classes), events=Events())
    env.stop_timeout = stop_timeout
    env.exception_recorder = lambda msg, tb: env.__dict__.setdefault("exc", []).append(msg)
    return UserPool(env, {c.__name__: c for c in classes})


def live_greenlets(pool: UserPool) -> int:
    # a greenlet that has just ended leaves its Group only when the hub runs its link callbacks
    # (seen in CI: 44 ended runners still listed); the cap is on runners kept alive
    return sum(not g.dead for g in pool.group)


def gevent_wait(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        gevent.sleep(0.01)


def test_waiting_users_hand_their_greenlets_back_and_wake_up() -> None:
    runs: Counter[int] = Counter()
    stops: Counter[int] = Counter()

    class Waiter(User):
        wait_time = constant(0.3)

        @task
        def work(self) -> None:
            runs[id(self)] += 1

        def on_stop(self) -> None:
            stops[id(self)] += 1

    pool = make_pool(Waiter)
    pool.set_targets({"Waiter": 300})
    users = pool.users["Waiter"]
    gevent_wait(lambda: len(runs) == 300)
    # between tasks every user is parked, and no more runners are kept than the idle cap
    gevent_wait(lambda: sum(u._lifecycle.parked is not None for u in users) == 300)
    assert live_greenlets(pool) <= IDLE_RUNNERS_MAX
    # ... and each one comes back for its next tasks
    gevent_wait(lambda: min(runs[id(u)] for u in users) >= 3)
    assert pool.user_count == 300
    started = time.monotonic()
    pool.stop_all()
    assert time.monotonic() - started < 2.0
    assert pool.user_count == 0 and len(pool.group) == 0
    assert sorted(stops.values()) == [1] * 300
    before = sum(runs.values())
    gevent.sleep(0.5)
    assert sum(runs.values()) == before, "a stopped user ran again"


def test_a_parked_user_stops_at_once_despite_stop_timeout() -> None:
    stopped: list[float] = []

    class Slow(User):
        wait_time = constant(60)

        @task
        def work(self) -> None:
            pass

        def on_stop(self) -> None:
            stopped.append(time.monotonic())

    pool = make_pool(Slow, stop_timeout=30)
    pool.set_targets({"Slow": 5})
    gevent_wait(lambda: all(u._lifecycle.parked is not None for u in pool.users["Slow"]) and pool.user_count)
    started = time.monotonic()
    pool.stop_all()
    assert len(stopped) == 5
    assert max(stopped) - started < 1.0


def test_stopping_some_users_leaves_the_others_running() -> None:
    runs: Counter[str] = Counter()
    stops: Counter[str] = Counter()

    class A(User):
        wait_time = constant(0.25)

        @task
        def work(self) -> None:
            runs["A"] += 1
            gevent.sleep(0.01)  # a wait inside a task: an ordinary sleep on the runner

        def on_stop(self) -> None:
            stops["A"] += 1

    class B(User):
        wait_time = constant(0.25)

        @task
        def work(self) -> None:
            runs["B"] += 1
            gevent.sleep(0.01)

        def on_stop(self) -> None:
            stops["B"] += 1

    pool = make_pool(A, B)
    pool.set_targets({"A": 40, "B": 40})
    gevent_wait(lambda: runs["A"] >= 80 and runs["B"] >= 80)
    pool.set_targets({"A": 0, "B": 40})
    gevent_wait(lambda: stops["A"] == 40)
    b_before, a_before = runs["B"], runs["A"]
    gevent_wait(lambda: runs["B"] >= b_before + 80)
    assert runs["A"] == a_before and stops["B"] == 0
    assert pool.counts() == {"A": 0, "B": 40}
    pool.stop_all()
    assert stops == {"A": 40, "B": 40}


def test_a_user_with_its_own_run_method_runs_it() -> None:
    loops: list[int] = []

    class Custom(User):
        wait_time = constant(1)

        @task
        def never(self) -> None:
            raise AssertionError("run() is overridden")

        def run(self) -> None:
            while True:
                loops.append(1)
                gevent.sleep(0.05)

    pool = make_pool(Custom)
    pool.set_targets({"Custom": 3})
    gevent_wait(lambda: len(loops) >= 30)
    assert pool.user_count == 3
    pool.stop_all()
    assert pool.user_count == 0 and len(pool.group) == 0


def test_user_that_stops_itself_while_others_are_parked() -> None:
    class Once(User):
        wait_time = constant(0.3)
        done = 0

        @task
        def work(self) -> None:
            Once.done += 1
            if Once.done > 10:
                from lcore import StopUser

                raise StopUser()

    pool = make_pool(Once)
    pool.set_targets({"Once": 10})
    # users stop themselves one by one as they wake up; the pool's count follows
    wait_until(lambda: (gevent.sleep(0.02), pool.user_count)[1] == 0, timeout=10)
    pool.stop_all()
    assert len(pool.group) == 0


def test_users_waiting_inside_a_task_set_park_too() -> None:
    events: Counter[str] = Counter()

    class Browse(TaskSet):
        wait_time = constant(0.25)

        def on_start(self) -> None:
            events["set start"] += 1

        @task
        def page(self) -> None:
            events["page"] += 1
            self.pages = getattr(self, "pages", 0) + 1
            if self.pages == 3:
                self.interrupt()  # back to the user's own tasks, then in again

        def on_stop(self) -> None:
            events["set stop"] += 1

    class Visitor(User):
        wait_time = constant(0.25)
        tasks = [Browse]

        def on_stop(self) -> None:
            events["user stop"] += 1

    pool = make_pool(Visitor)
    pool.set_targets({"Visitor": 50})
    users = pool.users["Visitor"]
    gevent_wait(lambda: events["page"] >= 50)
    gevent_wait(lambda: sum(u._lifecycle.parked is not None and u._taskset is not None for u in users) == 50)
    assert live_greenlets(pool) <= IDLE_RUNNERS_MAX
    # the interrupt leaves the set (its on_stop runs) and the user enters a fresh one
    gevent_wait(lambda: events["set start"] >= 100, timeout=15)
    assert events["set stop"] >= 50
    pool.stop_all()
    assert events["user stop"] == 50
    assert events["set stop"] == events["set start"]  # every set entered was left, once
    assert pool.user_count == 0 and len(pool.group) == 0


def test_on_stop_runs_to_its_end_when_users_are_woken_to_stop() -> None:
    # many parked users woken at once need new runners; none may be killed inside on_stop
    finished: list[int] = []

    class Leaving(User):
        wait_time = constant(60)

        @task
        def work(self) -> None:
            pass

        def on_stop(self) -> None:
            gevent.sleep(0.05)  # a logout request, say
            finished.append(1)

    for stop_timeout in (0, 10):
        finished.clear()
        pool = make_pool(Leaving, stop_timeout=stop_timeout)
        pool.set_targets({"Leaving": 500})
        gevent_wait(lambda p=pool: sum(u._lifecycle.parked is not None for u in p.users["Leaving"]) == 500)
        pool.stop_all()
        assert len(finished) == 500, stop_timeout


def test_stop_all_during_a_ramp_down_returns_promptly_and_frees_the_users() -> None:
    import gc
    import weakref

    class Busy(User):
        wait_time = constant(0.3)

        @task
        def work(self) -> None:
            gevent.sleep(0.2)

    pool = make_pool(Busy)
    pool.set_targets({"Busy": 20})
    gevent_wait(lambda: all(u._lifecycle.parked is not None for u in pool.users["Busy"]) and pool.user_count)
    gone = [weakref.ref(u) for u in pool.users["Busy"]]
    pool.set_targets({"Busy": 3})  # 17 stop in the background
    # once the stopping is over, nothing holds the stopped users (idle runners included)
    gevent_wait(lambda: pool.user_count == 3 and not gc.collect() and sum(
        ref() is not None for ref in gone) == 3)
    pool.set_targets({"Busy": 0})
    started = time.monotonic()
    pool.stop_all()
    assert time.monotonic() - started < 2.0
    assert len(pool.group) == 0


def test_a_new_target_never_interrupts_a_user_constructor() -> None:
    # a constructor that blocks (a database connect, as MilvusUser's) when the master sends a
    # new target: it was killed half-way (GreenletExit inside locustfile code, the user lost)
    started, interrupted = [], []

    class Slow(User):
        wait_time = constant(1)

        def __init__(self, environment) -> None:
            super().__init__(environment)
            try:
                gevent.sleep(0.2)
            except BaseException:
                interrupted.append(self)
                raise
            started.append(self)

        @task
        def work(self) -> None:
            pass

    pool = make_pool(Slow)
    done: list[dict[str, int]] = []
    pool.on_spawning_complete = done.append
    pool.set_targets({"Slow": 2})
    gevent_wait(lambda: "Slow" in pool._constructing.values())
    pool.set_targets({"Slow": 3})  # mid-constructor: the user being built counts
    gevent_wait(lambda: pool.user_count == 3 and pool._spawner is None)
    assert interrupted == [] and len(started) == 3
    pool.set_targets({"Slow": 1})
    assert pool.user_count == 1
    # a smaller target while one is built: that one is not started at all
    pool.set_targets({"Slow": 2})
    gevent_wait(lambda: "Slow" in pool._constructing.values())
    pool.set_targets({"Slow": 1})
    gevent_wait(lambda: not pool._constructing)
    assert interrupted == [] and pool.user_count == 1
    assert done[-1] == {"Slow": 1}
    pool.stop_all()
