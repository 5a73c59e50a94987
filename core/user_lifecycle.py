"""A user's lifecycle: where it is (running a task, waiting, stopping, ended), whether it has
been asked to stop, and therefore when the engine may kill it. Pure: no gevent, no clock.

Every module that changes a user's state does it through these transitions, so the answer to
"when may this user be killed?" is here, in ``may_interrupt``::

    running ──begin_wait──▶ waiting ──end_wait──▶ running      (a wait in the user's greenlet)
    running ──park──▶ waiting, on a timer, no greenlet ──unpark──▶ running   (user_runners)
    running / waiting ──begin_stopping──▶ stopping (on_stop runs) ──end──▶ ended
    (stopped_by records the StopUser / StopTest that ended it)

    request_stop()      stop before the next task (and, ``requests_too``, the next request)
    deadline_passed()   the stop timeout is over: no new request, except on_stop's own
    enter_request() / leave_request()   inside a request, a user is let finish it

A waiting user may be killed at once; a running one only once the stop deadline has passed
and it is outside a request; a stopping one (running ``on_stop``, a logout) only when forced.

The object is one per user, with slots: the HTTP client reads and writes it on every request.
"""

from __future__ import annotations

from typing import Any

from .exception import StopUser

# the states, as Locust names them (its User._state)
LOCUST_STATE_RUNNING, LOCUST_STATE_WAITING, LOCUST_STATE_STOPPING = [
    "running",
    "waiting",
    "stopping",
]


class UserLifecycle:
    __slots__ = (
        "state",
        "stop_requested",
        "requests_refused",
        "in_request",
        "greenlet",
        "parked",
        "done",
        "ended_by",
    )

    def __init__(self) -> None:
        self.state = LOCUST_STATE_RUNNING
        # stop before the next task
        self.stop_requested = False
        # stop before the next request too (the HTTP client and contrib clients check it)
        self.requests_refused = False
        self.in_request = False
        # the greenlet running the user's loop; None while parked (see user_runners)
        self.greenlet: Any = None
        # the timer that resumes a parked user
        self.parked: Any = None
        # the loop has ended: the user is gone
        self.done = False
        # the StopUser (or StopTest) that ended it
        self.ended_by: BaseException | None = None

    # -- asking a user to stop -----------------------------------------------------------
    def request_stop(self, requests_too: bool = False) -> None:
        """Stop before the next task; with ``requests_too``, before the next request."""
        self.stop_requested = True
        if requests_too:
            self.requests_refused = True

    def deadline_passed(self) -> None:
        """The stop timeout is over: no new request, except those of ``on_stop`` (a logout)."""
        if self.state != LOCUST_STATE_STOPPING:
            self.requests_refused = True

    # -- requests (the HTTP client's hot path) -------------------------------------------
    def check_request(self) -> None:
        """Raise StopUser if the user may make no new request."""
        if self.requests_refused:
            raise StopUser()

    def enter_request(self) -> None:
        self.in_request = True

    def leave_request(self) -> None:
        self.in_request = False

    # -- waits -----------------------------------------------------------------------------
    def begin_wait(self) -> None:
        self.state = LOCUST_STATE_WAITING

    def end_wait(self) -> None:
        """Back from a wait; StopUser if a stop was asked meanwhile is the caller's to raise
        (``stop_requested``), after the wait has been left."""
        self.state = LOCUST_STATE_RUNNING

    def park(self, timer: Any) -> None:
        """The wait goes to ``timer``; the user holds no greenlet until ``unpark``."""
        self.state = LOCUST_STATE_WAITING
        self.greenlet = None
        self.parked = timer

    def unpark(self) -> Any:
        """The wait is over (or cut short): running again, even before a greenlet takes the
        user, so that a stop does not kill it. Returns the timer, for the caller to close."""
        timer, self.parked = self.parked, None
        self.state = LOCUST_STATE_RUNNING
        return timer

    def run_on(self, greenlet: Any) -> None:
        """``greenlet`` runs the user's loop from now on."""
        self.greenlet = greenlet
        self.state = LOCUST_STATE_RUNNING

    # -- the end -----------------------------------------------------------------------------
    def begin_stopping(self) -> None:
        """``on_stop`` runs: its own requests (a logout) must go through."""
        self.state = LOCUST_STATE_STOPPING
        self.requests_refused = False

    def stopped_by(self, error: BaseException) -> None:
        """The loop is ending because of ``error``, a StopUser (a StopTest ends the whole
        test: the runtime that learns of the end tells)."""
        self.ended_by = error

    def end(self) -> None:
        """The loop has ended (``on_stop`` included): the user is gone."""
        self.done = True

    # -- questions ---------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        if self.done:
            return False
        if self.parked is not None:
            return True
        runner = self.greenlet
        # a greenlet killed before it started never ran the loop that would have said "done"
        return runner is not None and not runner.dead

    @property
    def waiting(self) -> bool:
        return self.state == LOCUST_STATE_WAITING

    @property
    def stopping(self) -> bool:
        return self.state == LOCUST_STATE_STOPPING

    def may_interrupt(self, past_deadline: bool = False, force: bool = False) -> bool:
        """May the engine kill the user's loop now? When it waits; once the stop deadline
        has passed, also when it runs outside a request; never while ``on_stop`` runs, nor
        after the end, unless ``force`` (a request that never ends must not hold a test)."""
        if self.done:
            return False
        if force:
            return True
        state = self.state
        if state == LOCUST_STATE_STOPPING:
            return False
        return state == LOCUST_STATE_WAITING or (past_deadline and not self.in_request)


def lifecycle_of(user: Any) -> UserLifecycle | None:
    """The lifecycle of an lcore User; None for another object passed as a client's user."""
    return getattr(user, "_lifecycle", None)
