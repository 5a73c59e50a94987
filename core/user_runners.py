"""The greenlets that run users' task loops, and parking: a user waiting between tasks holds none.

A suspended greenlet costs memory whatever it waits for: a copy of its C stack and a page of
Python frame stack (greenlet gives every greenlet its own 16 KiB frame-stack chunk, of which the
first page is touched), about 7 KiB in all — more than the user itself. So when a user's loop
reaches a wait of ``PARK_AFTER`` seconds or more between tasks, it hands the wait to a
timer and returns; its greenlet (a *runner*) goes back to an idle list, and the timer gives the
user to an idle runner when the wait is over. An idle user is then its objects, its connection
and one timer.

Runners are reused rather than spawned per wake-up: a new greenlet costs an ``mmap`` and a
``munmap`` for that frame-stack chunk (~15 µs), a reused one a switch (~1 µs). At most
``IDLE_RUNNERS_MAX`` wait idle; beyond that a runner with nothing to do ends.

A top-level TaskSet is run task by task (its state is on the TaskSet object), so its waits park
too. Waits in nested TaskSets, in a TaskSet that overrides ``run`` or ``wait``, or in a user
that overrides ``run`` stay ordinary sleeps: their state is on the stack.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gevent
from gevent import GreenletExit
from gevent.hub import Waiter
from gevent.pool import Group

from .exception import StopUser
from .users import User

# a wait at least this long between top-level tasks gives the user's greenlet back
PARK_AFTER = 0.2
# idle runners kept for users waking up; enough for bursts, small next to thousands of users
IDLE_RUNNERS_MAX = 64


class UserRunners:
    def __init__(self, group: Group) -> None:
        self.group = group
        self.hub = gevent.get_hub()
        self._idle: list[tuple[Waiter[Any], gevent.Greenlet[..., Any]]] = []
        # set at the end of a test: runners that finish then end instead of idling
        self._closing = False
        # called with a user whose loop ended by itself (StopUser, StopTest, run() returned)
        self.on_ended: Callable[[User], None] | None = None

    def start(self, user: User) -> None:
        """Start a new user's loop (from any greenlet)."""
        self._closing = False
        if type(user).run is not User.run:
            # a locustfile's own run(): the loop is its own, nothing to park
            user._lifecycle.run_on(self.group.spawn(self._run_custom, user))
        else:
            user._lifecycle.run_on(self._spawn(user, False))

    def _spawn(self, user: User, resumed: bool) -> gevent.Greenlet[..., Any]:
        # the user goes in a list the runner empties: a greenlet keeps its args until it ends,
        # and a runner outlives the users it runs
        return self.group.spawn(self._runner, [user, resumed])

    def _runner(self, first: list[Any]) -> None:
        user, resumed = first
        first.clear()
        while True:
            user._lifecycle.run_on(gevent.getcurrent())
            try:
                user._run_tasks(self._park, resumed)
            except GreenletExit:
                return  # killed with its user (a stop, a shutdown): this runner ends too
            if user._lifecycle.done:
                self._ended(user)
            user = None  # an idle runner holds no user
            if self._closing or len(self._idle) >= IDLE_RUNNERS_MAX:
                return
            waiter: Waiter[Any] = Waiter()
            runner = gevent.getcurrent()
            assert isinstance(runner, gevent.Greenlet)  # spawned by _spawn
            entry = (waiter, runner)
            self._idle.append(entry)
            try:
                user, resumed = waiter.get()
            except BaseException:
                if entry in self._idle:
                    self._idle.remove(entry)
                raise

    def _park(self, user: User, seconds: float) -> bool:
        life = user._lifecycle
        if seconds < PARK_AFTER or life.stop_requested:
            return False
        timer = self.hub.loop.timer(seconds)
        life.park(timer)
        timer.start(self._wake, user)
        return True

    def _wake(self, user: User) -> None:
        # in the hub: a timer's callback
        life = user._lifecycle
        timer = life.unpark()  # running again, even before a runner has it: a stop won't kill it
        if timer is not None:
            timer.close()
        if self._idle:
            waiter, runner = self._idle.pop()
            life.run_on(runner)
            waiter.switch((user, True))
        else:
            life.run_on(self._spawn(user, True))

    def wake_now(self, user: User) -> None:
        """End a parked user's wait now (to stop it: its loop checks for that first)."""
        life = user._lifecycle
        timer = life.parked
        if timer is None:
            return
        timer.stop()
        timer.close()
        timer = self.hub.loop.timer(0)
        life.park(timer)
        timer.start(self._wake, user)

    def interrupt(self, user: User, past_deadline: bool = False, force: bool = False) -> None:
        """Raise GreenletExit in the user's loop if, when it is delivered, the user is still
        waiting (or, ``past_deadline``, outside a request) — and in this user's loop, never in
        another user's that its runner may have moved on to. ``on_stop`` is not interrupted
        unless ``force``."""
        life = user._lifecycle
        runner = life.greenlet
        if runner is None or runner.dead:
            return

        def throw() -> None:
            if life.greenlet is runner and not runner.dead and life.may_interrupt(past_deadline, force):
                runner.throw(GreenletExit)

        self.hub.loop.run_callback(throw)

    def close_idle(self) -> None:
        """End the idle runners, and the others as they finish (at the end of a test), so
        that joining the group returns."""
        self._closing = True
        idle, self._idle = self._idle, []
        for _, runner in idle:
            runner.kill(block=False)

    def _run_custom(self, user: User) -> None:
        life = user._lifecycle
        try:
            user.run()
        except StopUser as e:
            life.stopped_by(e)
        except GreenletExit:
            return
        finally:
            life.end()
            user._release()
        self._ended(user)

    def _ended(self, user: User) -> None:
        if not user._lifecycle.stop_requested and self.on_ended is not None:
            self.on_ended(user)


def is_alive(user: User) -> bool:
    return user._lifecycle.alive
