"""``--max-rps``: the whole test's request rate capped, across every worker (gevent side).

The master lays out the cap as a schedule of request slots, ``max_rps`` per second, shared by
the workers as the open model shares arrivals (``lcore.arrivals``: slot ``s`` of ``slots``
runs the slots ``k ≡ s``), so the merged slots are evenly spaced. A request takes the next free
slot of its worker at or after now and is sent at that slot's time; a slot nobody used is
gone (no credit is saved up for a burst). So in any span of ``D`` seconds the test sends at most
``max_rps * D`` requests plus one per worker, and exactly that many while users ask for more.

An open-model arrival held here is that much later against its schedule: the wait is added to
its lag, so its requests' corrected times count it (``lcore.schedule_lag``).

HTTP users wait here before each request (``HttpSession.request``, redirects included); a
client of another protocol calls ``environment.rate_gate.wait()`` itself when it is set.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import gevent
from greenlet import getcurrent

from . import schedule_lag
from .arrivals import Share, WorkerSchedule, shifted


class RateGate:
    def __init__(
        self, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = gevent.sleep
    ) -> None:
        self.clock = clock
        self.sleep = sleep
        self.schedule = WorkerSchedule()
        self.waited = 0.0  # seconds requests spent here, in all

    def add(self, share: Share) -> None:
        """A (new) share of the cap's slots; its start is on the wall clock."""
        self.schedule.add(shifted(share, self.clock() - time.time()))

    def wait(self) -> float:
        """Block until this request's slot; returns how long that took (seconds)."""
        schedule = self.schedule
        now = self.clock()
        schedule.skip_until(now)
        due = schedule.next_due()
        while due is None:
            # no slot here (this worker's share is empty, or not come yet): wait for one
            self.sleep(0.05)
            schedule.skip_until(self.clock())
            due = schedule.next_due()
        schedule.pop()
        waited = 0.0
        while True:
            left = due - self.clock()
            if left <= 0:
                break
            self.sleep(left)
        waited = self.clock() - now
        self.waited += waited
        if waited > 0 and getattr(getcurrent(), "lcore_arrival_due", None) is not None:
            # an open-model arrival held here is that much later against its schedule: its
            # requests from now on count it in their corrected times (lcore.schedule_lag)
            lag_us = schedule_lag.current()[0]
            schedule_lag.start_scheduled_task(time.monotonic() - lag_us / 1e6 - waited)
        return waited
