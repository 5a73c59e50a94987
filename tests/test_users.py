"""The locustfile API: task selection, task sets, tags, wait times, control-flow exceptions."""

from __future__ import annotations

import random
import time
from collections import Counter

import gevent
import pytest

from lcore import (
    InterruptTaskSet,
    RescheduleTask,
    SequentialTaskSet,
    StopUser,
    TaskSet,
    User,
    between,
    constant,
    constant_pacing,
    constant_throughput,
    tag,
    task,
)
from lcore.env import Environment
from lcore.event import Events
from lcore.users import filter_tasks_by_tags


def make_env() -> Environment:
    env = Environment(events=Events())
    env.exception_recorder = lambda msg, tb: env.__dict__.setdefault("exc", []).append((msg, tb))
    return env


def run_user(user: User, timeout: float = 5.0) -> None:
    g = gevent.spawn(user.run)
    user._lifecycle.run_on(g)
    g.join(timeout=timeout)
    assert g.dead, "user did not stop in time"


def test_task_selection_follows_weights() -> None:
    random.seed(1234)
    calls: Counter[str] = Counter()

    class U(User):
        @task(3)
        def heavy(self) -> None:
            calls["heavy"] += 1
            if sum(calls.values()) >= 4000:
                raise StopUser()

        @task(1)
        def light(self) -> None:
            calls["light"] += 1
            if sum(calls.values()) >= 4000:
                raise StopUser()

    run_user(U(make_env()))
    assert sum(calls.values()) == 4000
    share = calls["heavy"] / 4000
    assert 0.72 < share < 0.78


def test_tasks_as_dict_and_list() -> None:
    def a(user: User) -> None:
        pass

    def b(user: User) -> None:
        pass

    class D(User):
        tasks = {a: 2, b: 1}

    class L(User):
        tasks = [a, b]

    assert Counter(D.tasks) == {a: 2, b: 1}
    assert L.tasks == [a, b]


def test_sequential_taskset_runs_in_order_and_interrupts() -> None:
    order: list[str] = []

    class Seq(SequentialTaskSet):
        @task
        def first(self) -> None:
            order.append("first")

        @task
        def second(self) -> None:
            order.append("second")

        @task
        def third(self) -> None:
            order.append("third")
            if len(order) >= 6:
                self.interrupt(reschedule=False)

    class U(User):
        tasks = [Seq]

        def on_start(self) -> None:
            self.rounds = 0

    u = U(make_env())

    def stop_after_interrupt() -> None:
        while len(order) < 6:
            gevent.sleep(0.001)
        u._lifecycle.request_stop()

    gevent.spawn(stop_after_interrupt)
    run_user(u)
    assert order[:6] == ["first", "second", "third"] * 2


def test_nested_taskset_parent_user_and_on_stop() -> None:
    seen: dict[str, object] = {}

    class Inner(TaskSet):
        def on_stop(self) -> None:
            seen["inner_stopped"] = True

        @task
        def leave(self) -> None:
            seen["parent"] = self.parent
            seen["user"] = self.user
            self.interrupt()

    class Outer(TaskSet):
        tasks = [Inner]

        @task
        def done(self) -> None:
            pass

    class U(User):
        tasks = [Outer]

        def on_stop(self) -> None:
            seen["user_stopped"] = True

    random.seed(3)
    u = U(make_env())

    def stopper() -> None:
        while "inner_stopped" not in seen:
            gevent.sleep(0.001)
        u._lifecycle.request_stop()

    gevent.spawn(stopper)
    run_user(u)
    assert isinstance(seen["parent"], Outer)
    assert seen["user"] is u
    assert seen["user_stopped"] is True


def test_reschedule_task_skips_to_wait_and_exceptions_are_counted() -> None:
    calls: list[str] = []

    class U(User):
        wait_time = constant(0)

        @task
        def t(self) -> None:
            calls.append("t")
            if len(calls) == 1:
                raise RescheduleTask()
            if len(calls) == 2:
                raise ValueError("boom")
            raise StopUser()

    env = make_env()
    errors: list[BaseException] = []
    env.events.user_error.add_listener(lambda user_instance, exception, tb: errors.append(exception))
    run_user(U(env))
    assert calls == ["t", "t", "t"]
    assert len(errors) == 1 and str(errors[0]) == "boom"
    msg, tb = env.exc[0]  # type: ignore[attr-defined]
    assert msg == "boom" and "ValueError" in tb


def test_interrupt_directly_on_user_is_harmless() -> None:
    n = []

    class U(User):
        @task
        def t(self) -> None:
            n.append(1)
            if len(n) > 2:
                raise StopUser()
            raise InterruptTaskSet()

    run_user(U(make_env()))
    assert len(n) == 3


def test_tags_filter_tasks() -> None:
    class U(User):
        @tag("a")
        @task
        def ta(self) -> None:
            pass

        @tag("b")
        @task
        def tb(self) -> None:
            pass

        @task
        def untagged(self) -> None:
            pass

    names = lambda cls: sorted(t.__name__ for t in cls.tasks)  # noqa: E731
    filter_tasks_by_tags(U, ["a"], None)
    assert names(U) == ["ta"]

    class V(User):
        @tag("a")
        @task
        def ta(self) -> None:
            pass

        @tag("b")
        @task
        def tb(self) -> None:
            pass

        @task
        def untagged(self) -> None:
            pass

    filter_tasks_by_tags(V, None, ["b"])
    assert names(V) == ["ta", "untagged"]


def test_wait_times() -> None:
    random.seed(7)
    w = between(1, 3)
    values = [w(None) for _ in range(1000)]
    assert min(values) >= 1 and max(values) <= 3 and 1.8 < sum(values) / 1000 < 2.2
    assert constant(2.5)(None) == 2.5

    class Holder:
        def __init__(self) -> None:
            self._cp_last_run = time.monotonic()

    h = Holder()
    pacing = constant_pacing(1.0)
    first = pacing(h)
    assert 0.95 < first <= 1.0
    # a task that took 0.3 s leaves 0.7 s to wait
    h._cp_last_run -= 0.3 + first
    second = pacing(h)
    assert 0.6 < second < 0.75
    # a task that overran: no wait at all
    h._cp_last_run -= 5 + second
    assert pacing(h) == 0.0
    assert 0.49 < constant_throughput(2)(Holder()) <= 0.5


def test_stop_requested_while_waiting_runs_on_stop() -> None:
    stopped = []

    class U(User):
        wait_time = constant(30)

        @task
        def t(self) -> None:
            pass

        def on_stop(self) -> None:
            stopped.append(True)

    u = U(make_env())
    g = gevent.spawn(u.run)
    u._lifecycle.run_on(g)
    gevent.sleep(0.05)
    g.kill(block=True, timeout=2)
    assert stopped == [True]


def test_user_without_tasks_raises_clear_error() -> None:
    class Empty(User):
        pass

    with pytest.raises(Exception, match="No tasks defined on Empty"):
        Empty(make_env()).run()


def test_catch_exceptions_false_counts_once_and_raises() -> None:
    env = make_env()
    env.catch_exceptions = False

    class Inner(TaskSet):
        @task
        def boom(self) -> None:
            raise ValueError("boom")

    class U(User):
        tasks = [Inner]

    g = gevent.spawn(U(env).run)
    g.join(timeout=5)
    assert isinstance(g.exception, ValueError)
    assert [msg for msg, _ in env.exc] == ["boom"]


# -- Locust's API details (checked against Locust 2.47's own tests) -----------------------------


def test_sequential_taskset_runs_methods_and_a_tasks_list_in_declaration_order() -> None:
    log: list[int] = []

    class Base(SequentialTaskSet):
        @task
        def t1(self) -> None:
            log.append(1)

        tasks = [lambda ts: log.append(30)]

    class Steps(Base):
        tasks = [lambda ts: log.append(20)]

        @task
        def t2(self) -> None:
            log.append(2)

        @task
        def t3(self) -> None:
            log.append(3)
            self.interrupt(reschedule=False)

    class U(User):
        tasks = [Steps]

    with pytest.raises(RescheduleTask):
        Steps(U(make_env())).run()
    assert log == [1, 30, 20, 2, 3]


def test_taskset_wait_time_called_directly_falls_back_to_the_users() -> None:
    class U(User):
        wait_time = constant(13)

    class Plain(TaskSet):
        pass

    class Own(TaskSet):
        wait_time = between(20, 21)

    user = U(make_env())
    assert Plain(user).wait_time() == 13
    assert 20 <= Own(user).wait_time() <= 21


def test_user_fullname_leaves_out_locals() -> None:
    class Inner(User):
        pass

    assert Inner.fullname() == (
        f"{__name__}.test_user_fullname_leaves_out_locals.Inner"
    )


def test_a_task_attribute_instead_of_tasks_gets_locusts_hint() -> None:
    class U(User):
        task = [lambda user: None]  # type: ignore[assignment]

    class TS(TaskSet):
        task = [lambda ts: None]  # type: ignore[assignment]

    from lcore.users import no_tasks_message

    env = make_env()
    with pytest.raises(Exception, match="you have set a 'task' attribute on your class - maybe you meant to set 'tasks'"):
        U(env)._run_tasks(None)
    with pytest.raises(Exception, match="you have set a 'task' attribute - maybe you meant to set 'tasks'"):
        TS(User(env)).get_next_task()
    # the class alone says the same (for a launcher that checks before starting users)
    assert no_tasks_message(U) == (
        "No tasks defined on U, but you have set a 'task' attribute on your class - maybe you "
        "meant to set 'tasks'? Use the @task decorator or set the 'tasks' attribute of the User "
        "(or mark it as abstract = True if you only intend to subclass it)"
    )


def test_tag_without_a_name_is_refused() -> None:
    def f(self: object) -> None:
        pass

    with pytest.raises(ValueError, match="No tag name was supplied"):
        tag(f)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="No tag name was supplied"):
        tag()(f)


def test_tagging_a_taskset_tags_its_tasks_and_filtering_keeps_it_for_them() -> None:
    @tag("shared")
    class Shared(TaskSet):
        @task
        def inner(self) -> None:
            pass

    def untagged(ts: object) -> None:
        pass

    class Holder(TaskSet):
        tasks = [untagged, Shared]

    assert Shared.inner.locust_tag_set == {"shared"}
    filter_tasks_by_tags(Holder, tags={"shared"})
    assert Holder.tasks == [Shared]


def test_user_start_and_stop_in_a_group_as_locust() -> None:
    from gevent.pool import Group

    class U(User):
        wait_time = constant(0)
        state = 0

        @task
        def t(self) -> None:
            self.state = 1
            gevent.sleep(0.05)
            self.state = 2

    group = Group()
    user = U(make_env())
    greenlet = user.start(group)
    gevent.sleep(0)
    assert greenlet in group and user.group is group and user.state == 1
    assert user.stop(force=False) is False  # mid-task: stops once the task is done
    group.join(timeout=2)
    assert len(group) == 0 and user.state == 2
    other = U(make_env())
    other.start(group)
    gevent.sleep(0)
    assert other.stop(force=True) is True and len(group) == 0 and other.state == 1


def test_poisson_wait_times_average_one_over_the_rate() -> None:
    from lcore import poisson

    class U(User):
        wait_time = poisson(10)

    user = U(make_env())
    waits = [user.wait_time() for _ in range(5000)]
    assert abs(sum(waits) / len(waits) - 0.1) < 0.01 and min(waits) >= 0
    with pytest.raises(ValueError, match="positive rate"):
        poisson(0)
    with pytest.raises(ValueError, match="positive rate"):
        constant_throughput(0)
