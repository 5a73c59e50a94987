"""``-i/--iterations N``: exactly N task runs in the whole test, leased to workers (gevent side).

The master holds the count; a worker leases task runs in chunks (``lease.take()`` is called by
a user before each task function it runs — a TaskSet given as a task is not a run, its tasks
are, as in locust-plugins) and asks for more before it runs out, so the total is exact and no
worker idles while another holds runs. When the master has no more and this worker's lease is
used up, ``on_exhausted`` fires once; a user that asks then stops (StopUser).
"""

from __future__ import annotations

from collections.abc import Callable

from gevent.event import Event

from .exception import StopUser


class TaskRunLease:
    def __init__(self, ask: Callable[[int], object], users: Callable[[], int]) -> None:
        self._ask = ask  # sends the master a request for this many more runs
        self._users = users  # how many users this worker runs now (sizes the chunks)
        self.left = 0
        self.last = False  # the master has no more to give
        self.ran = 0
        self._asked = False
        self._granted = Event()
        self.on_exhausted: Callable[[], object] | None = None
        self._exhausted = False

    def take(self) -> None:
        """One task run, or StopUser when the test's runs are all taken."""
        while self.left <= 0:
            if self.last:
                self._check_exhausted()
                raise StopUser()
            self._request()
            self._granted.clear()
            self._granted.wait()
        self.left -= 1
        self.ran += 1
        if self.left <= self._users() and not self.last:
            self._request()
        if self.left == 0 and self.last:
            self._check_exhausted()

    def granted(self, count: int, last: bool) -> None:
        self.left += max(0, count)
        self._asked = False
        if last:
            self.last = True
        self._granted.set()
        if self.last and self.left == 0:
            self._check_exhausted()

    def _request(self) -> None:
        if self._asked:
            return
        self._asked = True
        self._ask(max(8, 2 * self._users()))

    def _check_exhausted(self) -> None:
        if not self._exhausted:
            self._exhausted = True
            if self.on_exhausted is not None:
                self.on_exhausted()
