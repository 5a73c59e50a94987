"""MarkovTaskSet: the chain is followed by weight, starts at the first state, is checked early."""

from __future__ import annotations

import logging
import random
from collections import Counter

import gevent
import pytest

from lcore import MarkovTaskSet, StopUser, User, constant, tag, task, transition, transitions
from lcore.env import Environment
from lcore.event import Events
from lcore.markov import (
    InvalidTransitionError,
    MarkovTaskTagError,
    NoMarkovTasksError,
    NonMarkovTaskTransitionError,
)
from lcore.users import filter_tasks_by_tags


def run(user_class: type[User]) -> None:
    user = user_class(Environment(events=Events()))
    g = gevent.spawn(user.run)
    g.join(timeout=10)
    assert g.dead, "user did not stop"


def test_chain_follows_weights_from_the_first_state() -> None:
    random.seed(7)
    steps: list[str] = []

    class Chain(MarkovTaskSet):
        @transition("b")
        def a(self) -> None:
            steps.append("a")

        @transitions({"a": 1, "c": 3})
        def b(self) -> None:
            steps.append("b")

        @transitions(["a", ("b", 2)])
        def c(self) -> None:
            steps.append("c")
            if len(steps) >= 20_000:
                raise StopUser()

        @task
        def ignored(self) -> None:
            steps.append("ignored")

    class U(User):
        tasks = [Chain]

    run(U)
    assert steps[0] == "a" and "ignored" not in steps
    pairs = Counter(zip(steps, steps[1:], strict=False))
    assert pairs[("a", "b")] == sum(1 for s in steps[:-1] if s == "a")  # a always goes to b
    after_b = pairs[("b", "a")] + pairs[("b", "c")]
    assert pairs[("b", "c")] / after_b == pytest.approx(0.75, abs=0.03)
    after_c = pairs[("c", "a")] + pairs[("c", "b")]
    assert pairs[("c", "b")] / after_c == pytest.approx(2 / 3, abs=0.03)


def test_wait_time_applies_after_every_step() -> None:
    slept: list[float] = []

    class Chain(MarkovTaskSet):
        wait_time = constant(0.001)

        @transition("a")
        def a(self) -> None:
            if len(slept) >= 5:
                raise StopUser()

    class U(User):
        tasks = [Chain]

        def _sleep(self, seconds: float) -> None:
            slept.append(seconds)
            super()._sleep(seconds)

    run(U)
    assert slept == [0.001] * 5


def test_broken_chains_fail_when_the_class_is_created(caplog) -> None:
    with pytest.raises(NoMarkovTasksError):

        class Empty(MarkovTaskSet):
            @task
            def t(self) -> None:
                pass

    with pytest.raises(InvalidTransitionError, match="Transition to nowhere from a"):

        class Typo(MarkovTaskSet):
            @transition("nowhere")
            def a(self) -> None:
                pass

    with pytest.raises(NonMarkovTaskTransitionError):

        class Dead(MarkovTaskSet):
            @transition("b")
            def a(self) -> None:
                pass

            def b(self) -> None:
                pass

    with pytest.raises(MarkovTaskTagError):

        class Tagged(MarkovTaskSet):
            @tag("x")
            @transition("a")
            def a(self) -> None:
                pass

    with caplog.at_level(logging.WARNING):

        class Island(MarkovTaskSet):
            @transition("a")
            def a(self) -> None:
                pass

            @transition("a")
            def b(self) -> None:
                pass

    assert "unreachable" in caplog.text and "'b'" in caplog.text


def test_exclude_tags_keep_a_markov_task_set() -> None:
    class Chain(MarkovTaskSet):
        @transition("a")
        def a(self) -> None:
            pass

    class U(User):
        tasks = [Chain]

        @tag("slow")
        @task
        def slow(self) -> None:
            pass

    filter_tasks_by_tags(U, None, ["slow"])
    assert U.tasks == [Chain]
