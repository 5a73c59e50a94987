"""How late the task in progress started against its schedule: the coordinated-omission correction.

A schedule (the open model's arrivals, a paced user's grid) says when each task run should have
started. Whoever runs a scheduled task calls ``start_scheduled_task(intended)`` on the user's
greenlet just before the task; the recorder then records, beside each request's own response
time, the response time plus that lag: the latency a client that kept to the schedule would have
seen (wrk2's correction). A task without a schedule has no lag, so both figures are equal.

Pure: the lag lives on the current greenlet (greenlet, not gevent: a greenlet is not an event
loop), so recording stays one attribute read and needs no locks.
"""

from __future__ import annotations

import time

from greenlet import getcurrent

# the attribute each greenlet carries its lag on: set and read by name, since a greenlet's type
# declares no such field
_LAG_ATTRIBUTE = "lcore_lag_ms"


def start_scheduled_task(intended: float, now: float | None = None) -> float:
    """The task about to run on this greenlet was due at ``intended`` (``time.monotonic()``).

    Returns the lag in seconds (0 when on time or early)."""
    now = time.monotonic() if now is None else now
    lag = now - intended if now > intended else 0.0
    setattr(getcurrent(), _LAG_ATTRIBUTE, lag * 1000.0)
    return lag


def end_scheduled_task() -> None:
    """The task ended: what this greenlet records next is not late."""
    setattr(getcurrent(), _LAG_ATTRIBUTE, 0.0)


def lag_ms() -> float:
    """The current greenlet's lag in milliseconds (0 outside a scheduled task)."""
    lag: float = getattr(getcurrent(), _LAG_ATTRIBUTE, 0.0)
    return lag
