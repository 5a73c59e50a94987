"""A user's lifecycle in memory: which transitions lead where, and when a kill is allowed."""

from __future__ import annotations

import pytest

from lcore.exception import StopUser
from lcore.user_lifecycle import (
    LOCUST_STATE_RUNNING,
    LOCUST_STATE_STOPPING,
    LOCUST_STATE_WAITING,
    UserLifecycle,
)


class FakeGreenlet:
    def __init__(self, dead: bool = False) -> None:
        self.dead = dead


def running() -> UserLifecycle:
    life = UserLifecycle()
    life.run_on(FakeGreenlet())
    return life


def test_a_waiting_user_may_be_killed_a_running_one_not_before_the_deadline() -> None:
    life = running()
    assert life.state == LOCUST_STATE_RUNNING
    assert not life.may_interrupt()
    life.begin_wait()
    assert life.waiting
    assert life.may_interrupt()
    life.end_wait()
    assert not life.may_interrupt()
    assert life.may_interrupt(past_deadline=True)


def test_inside_a_request_a_user_finishes_it_unless_forced() -> None:
    life = running()
    life.enter_request()
    assert not life.may_interrupt(past_deadline=True)
    assert life.may_interrupt(past_deadline=True, force=True)
    life.leave_request()
    assert life.may_interrupt(past_deadline=True)


def test_on_stop_is_not_interrupted_unless_forced_and_an_ended_user_never() -> None:
    life = running()
    life.begin_stopping()
    assert life.stopping
    assert not life.may_interrupt(past_deadline=True)
    assert life.may_interrupt(force=True)
    life.end()
    assert not life.alive
    assert not life.may_interrupt(force=True)


def test_stop_requests_refuse_new_requests_but_on_stop_may_make_them() -> None:
    life = running()
    life.check_request()
    life.request_stop()
    assert life.stop_requested
    life.check_request()  # the current task's requests still go: only the next task is refused
    life.request_stop(requests_too=True)
    with pytest.raises(StopUser):
        life.check_request()
    life.begin_stopping()
    life.check_request()  # a logout in on_stop
    life.deadline_passed()
    life.check_request()  # the deadline does not refuse on_stop's requests either


def test_the_deadline_refuses_requests_of_a_running_user() -> None:
    life = running()
    life.request_stop()
    life.deadline_passed()
    with pytest.raises(StopUser):
        life.check_request()


def test_a_parked_user_is_alive_without_a_greenlet_and_running_once_unparked() -> None:
    life = running()
    timer = object()
    life.park(timer)
    assert life.greenlet is None
    assert life.state == LOCUST_STATE_WAITING
    assert life.alive
    assert life.unpark() is timer
    # running before a runner has taken it: a stop must not kill it in between
    assert life.state == LOCUST_STATE_RUNNING
    assert not life.may_interrupt()
    assert not life.alive  # no greenlet, no timer: nothing will run it
    life.run_on(FakeGreenlet())
    assert life.alive


def test_a_greenlet_killed_before_it_ran_is_not_alive() -> None:
    life = UserLifecycle()
    assert not life.alive
    life.run_on(FakeGreenlet(dead=True))
    assert not life.alive


def test_stopped_by_records_the_cause_and_end_ends() -> None:
    life = running()
    error = StopUser()
    life.stopped_by(error)
    assert life.alive and life.ended_by is error
    life.end()
    assert life.done and not life.alive
    assert LOCUST_STATE_STOPPING == "stopping"
