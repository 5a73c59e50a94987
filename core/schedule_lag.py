"""How late the task in progress started against its schedule: the coordinated-omission correction.

A schedule (the open model's arrivals, a paced user's grid) says when each task run should have
started. Whoever runs a scheduled task calls ``start_scheduled_task(intended)`` on the user's
greenlet just before the task and ``end_scheduled_task()`` after it (in a ``finally``: runner
greenlets are reused by other users). The recorder then records, beside each request's own
response time, the response time plus that lag: the latency a client that kept to the schedule
would have seen (wrk2's correction). A task without a schedule has no lag, so both figures are
equal and nothing more is recorded.

A paced user (``constant_pacing``) that fell behind does not burst to catch up: its late task
stands for the earliest slot it missed, and ``interval`` tells how many further slots went by
meanwhile (the next task is due at the grid's next slot: ``run_paced_task``). Each request of
that task is then also counted once per missed slot, each time with that slot's own lag, as
the requests those slots would have sent (they would have waited for the same stall), much as
HdrHistogram's expected-interval correction fills in the samples a stall kept from being taken.

A start less than ``ON_TIME_US`` after its due time counts as on time: that is the timer's
resolution, not the target, and it keeps the corrected figures of a schedule that holds as
compact as the uncorrected ones (no second histogram is sent for them).

Pure: the lag lives on the current greenlet (greenlet, not gevent: a greenlet is not an event
loop), so recording stays one read of ``late[0]`` when no task is behind, and needs no locks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, cast

from greenlet import getcurrent


class LateGreenlet(Protocol):
    """What a greenlet in a late task carries (greenlets take any attribute; set here, read by
    the recorder): the lag in µs, and for a paced user the slots it missed and their period."""

    lcore_lag_us: int
    lcore_missed: int
    lcore_interval_us: int

ON_TIME_US = 1000
"""A task that starts less than this late (µs) is on time."""

late = [0]
"""How many greenlets are in a task that started behind schedule, plus the recorders whose
interval in progress has a corrected histogram: the recorder's fast path (``late[0] == 0``:
nothing to correct, one list read per request)."""

LagSink = Callable[[str, float, int], None]
_sink: LagSink | None = None


def set_lag_sink(sink: LagSink | None) -> None:
    """Where each scheduled start is tallied: ``sink(user_class, lag_seconds, missed_slots)``
    (the process' recorder, ``RequestStats.record_schedule``)."""
    global _sink
    _sink = sink


def start_scheduled_task(
    intended: float,
    now: float | None = None,
    *,
    user_class: str | None = None,
    interval: float = 0.0,
) -> float:
    """The task about to run on this greenlet was due at ``intended`` (``time.monotonic()``).

    ``user_class``: the user's class name, to tally the lag per class in the reports (give
    it). ``interval``: the schedule's period for a user that does not catch up (pacing): the
    slots due since ``intended`` are counted as missed (see the module docstring); 0 for
    schedules where every slot is a task of its own (the open model's arrivals).

    Returns the lag in seconds (0 when on time or early)."""
    now = time.monotonic() if now is None else now
    lag = now - intended if now > intended else 0.0
    lag_us = int(lag * 1e6 + 0.5)
    missed = _missed(lag, interval)
    g = cast(LateGreenlet, getcurrent())
    was_late = getattr(g, "lcore_lag_us", 0)
    if lag_us >= ON_TIME_US or missed:
        g.lcore_lag_us = lag_us or 1
        g.lcore_missed = missed
        g.lcore_interval_us = int(interval * 1e6 + 0.5) if missed else 0
        if not was_late:
            late[0] += 1
    elif was_late:
        _clear(g)
    sink = _sink
    if sink is not None and user_class is not None:
        sink(user_class, lag, missed)
    return lag


def _missed(lag: float, interval: float) -> int:
    """The slots ``intended + k * interval`` (k >= 1) at or before ``intended + lag``."""
    if interval <= 0 or lag <= 0:
        return 0
    return int(lag / interval + 1e-9)  # the epsilon: 0.3 / 0.1 is 2.999...


def end_scheduled_task() -> None:
    """The task ended: what this greenlet records next is not late."""
    g = getcurrent()
    if getattr(g, "lcore_lag_us", 0):
        _clear(g)


def _clear(g: object) -> None:
    late_one = cast(LateGreenlet, g)
    late_one.lcore_lag_us = 0
    late_one.lcore_missed = 0
    late[0] -= 1


def lag_ms() -> float:
    """The current greenlet's lag in milliseconds (0 outside a scheduled task, or on time)."""
    return getattr(getcurrent(), "lcore_lag_us", 0) / 1000.0


def current() -> tuple[int, int, int]:
    """This greenlet's ``(lag_us, missed_slots, interval_us)``; ``(0, 0, 0)`` when on time."""
    g = cast(LateGreenlet, getcurrent())
    lag_us: int = getattr(g, "lcore_lag_us", 0)
    if not lag_us:
        return 0, 0, 0
    return lag_us, g.lcore_missed, g.lcore_interval_us


def run_paced_task(user: object, task: Callable[..., object], *args: object) -> None:
    """Run ``task(*args)`` as the scheduled task ``constant_pacing`` set up on ``user``
    (``user._lcore_due``: ``(intended, interval, grid owner)``), or plainly when none is due.

    Keeps the user's grid (``user._lcore_grid``): the next slot is the first after this
    task's start, every slot in between being one this task missed."""
    due = user._lcore_due  # type: ignore[attr-defined]
    if due is None:
        task(*args)
        return
    user._lcore_due = None  # type: ignore[attr-defined]
    intended, interval, owner = due
    lag = start_scheduled_task(intended, user_class=type(user).__name__, interval=interval)
    user._lcore_grid = (owner, intended + (_missed(lag, interval) + 1) * interval)  # type: ignore[attr-defined]
    try:
        task(*args)
    finally:
        end_scheduled_task()
