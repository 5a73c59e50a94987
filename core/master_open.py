"""The master's side of the open model (``--arrival-rate``) and of ``--max-rps``.

The schedule itself is pure (``lcore.arrivals.ArrivalPlan``: segments split across workers
with phase offsets); this part of the master decides when a plan starts (after the master's
test_start listeners, so that no arrival runs before them), changes its rate (a shape's
``ArrivalRate`` ticks), re-plans it when workers join or leave, ends it on ``-t``'s arrival
index, and sends each worker its share (``Arrivals``, ``RateCap``).

It is a part of ``MasterRuntime`` (a mixin), not an object of its own: starting the open
model is starting a run, and it shares the run's state, timer, workers and sends. The names
it uses from the runtime are declared below.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import protocol as p
from .arrivals import ArrivalPlan
from .runners import STATE_CLEANUP, STATE_INIT, STATE_RUNNING, STATE_SPAWNING, STATE_STOPPED
from .shape import ArrivalRate

if TYPE_CHECKING:
    from .dispatch import Dispatcher
    from .master import WorkerNode
    from .task_owner import TaskOwner

log = logging.getLogger("lcore.master")

# a new open-model segment (a rate change, a worker joining or leaving) applies this long after
# the master decides it, so that every worker has it in time and none runs an arrival twice
SCHEDULE_LEAD = 0.2
# --arrival-rate without -u: the ceiling of concurrent users
DEFAULT_ARRIVAL_CEILING = 1000


class OpenModelControl:
    # -- what this part uses of MasterRuntime ---------------------------------------------
    if TYPE_CHECKING:
        environment: Any
        workers: dict[str, WorkerNode]
        state: str
        owner: TaskOwner
        dispatcher: Dispatcher
        run_id: int
        run_time: float | None
        host: str
        options_for_workers: dict[str, Any]
        active_classes: tuple[str, ...] | None
        target_user_count: int
        quit_when_stopped: bool
        _run_started: float | None
        _run_timer: asyncio.TimerHandle | None

        @property
        def user_count(self) -> int: ...
        def _begin_run(self) -> None: ...
        def _set_state(self, state: str) -> None: ...
        def _send(self, node_id: str, message: p.Message) -> None: ...
        def _fire(self, hook: Any, **kwargs: Any) -> None: ...
        def _call_on_loop(self, fn: Callable[[], None]) -> None: ...
        def _class_names(self, user_classes: list[Any] | None) -> tuple[str, ...] | None: ...
        def _run_time_up(self) -> None: ...
        async def _wait_test_start_listeners(self) -> None: ...
        def quit(self) -> None: ...
        def stop(self) -> None: ...

    def _init_open_model(
        self,
        arrival_rate: float | None,
        arrival_ceiling: int | None,
        max_rps: float | None,
        schedule_lead: float,
    ) -> None:
        # --arrival-rate makes start() run arrivals, -u their ceiling
        self.arrival_rate = arrival_rate
        # the ceiling when a shape's ArrivalRate gives none: -u, else DEFAULT_ARRIVAL_CEILING
        self.arrival_ceiling = arrival_ceiling if arrival_ceiling else DEFAULT_ARRIVAL_CEILING
        self.current_arrival_rate: float | None = None
        self.arrival_plan: ArrivalPlan | None = None  # the run's schedule, while one is on
        self._open_pending: tuple[float, int, float] | None = None  # (rate, ceiling, at)
        self._open_end: float | None = None  # -t's end of the schedule (wall clock)
        self.schedule_lead = schedule_lead
        # --max-rps: the test's request slots, shared by all workers (lcore.rate_cap)
        self.rate_cap_plan = (
            ArrivalPlan(max_rps, 1, (), time.time()) if max_rps is not None and max_rps > 0 else None
        )

    @property
    def open_model_on(self) -> bool:
        """The run is in the open model (its plan is on, or starts once listeners return)."""
        return self.arrival_plan is not None or self._open_pending is not None

    def start_arrivals(
        self,
        rate: float,
        ceiling: int | None = None,
        user_classes: list[Any] | None = None,
        at: float | None = None,
    ) -> None:
        """Run ``rate`` task runs per second across all workers (the open model), on at most
        ``ceiling`` concurrent users. A running test changes rate from ``at`` (wall clock;
        default: a little ahead of now, see SCHEDULE_LEAD)."""
        if not 0 <= rate < float("inf"):
            raise ValueError(f"arrival rate must be a finite number >= 0, not {rate!r}")
        ceiling = self.arrival_ceiling if ceiling is None else int(ceiling)
        self.active_classes = self._class_names(user_classes)
        self.target_user_count = ceiling
        self.current_arrival_rate = rate
        if self.state in (STATE_INIT, STATE_STOPPED, STATE_CLEANUP):
            self._begin_run()
            self.arrival_plan = None
        elif not self.open_model_on and self.dispatcher.requested:
            log.error("A test with users and a spawn rate cannot switch to the open model (arrivals)")
            return
        if self.arrival_plan is None:
            starting = self._open_pending is not None
            self._open_pending = (rate, ceiling, time.time() if at is None else at)
            if not starting:
                self._set_state(STATE_SPAWNING)
                self.owner.spawn(self._open_start(), "open model start")
            return
        when = time.time() + self.schedule_lead if at is None else at
        self.arrival_plan.change(when, rate=rate, ceiling=ceiling)
        self._send_arrivals()

    async def _open_start(self) -> None:
        while self._run_started is not None:
            # workers start no arrival before the master's test_start listeners have returned
            await self._wait_test_start_listeners()
        pending, self._open_pending = self._open_pending, None
        if pending is None or self.state != STATE_SPAWNING:
            return  # stopped meanwhile
        rate, ceiling, at = pending
        if not any(w > 0 for w in self._arrival_weights().values()):
            log.error("The open model has no user class to run: every class has weight 0")
            self._call_on_loop(self.quit if self.quit_when_stopped else self.stop)
            return
        start = max(at, time.time())
        self.arrival_plan = ArrivalPlan(rate, ceiling, self._worker_ids(), start)
        if self._run_timer is not None and self.run_time:
            # -t is the schedule's length: from its first arrival, whatever the test_start
            # listeners took, to the arrival index that ends it (see end_open_model)
            self._run_timer.cancel()
            loop = asyncio.get_running_loop()
            self._run_timer = loop.call_later(start + self.run_time - time.time(), self._run_time_up)
            self._open_end = start + self.run_time
        self._send_arrivals()
        self._set_state(STATE_RUNNING)
        self._fire(self.environment.events.spawning_complete, user_count=self.user_count)

    def end_open_model(self) -> float:
        """The run is stopping: no more arrivals; returns when its workers stop (wall clock).
        The open model ends on schedule: no arrival due after the planned end runs, however
        late the loop ran the timer."""
        self.arrival_plan = None
        self._open_pending = None
        stop_at = min(time.time(), self._open_end) if self._open_end else time.time()
        self._open_end = None
        return stop_at

    def _worker_ids(self) -> list[str]:
        return sorted(self.workers, key=lambda i: self.workers[i].index)

    def _arrival_weights(self) -> dict[str, int]:
        names = self.active_classes
        return {
            c.__name__: int(getattr(c, "weight", 1))
            for c in self.environment.user_classes
            if names is None or c.__name__ in names
        }

    def _send_arrivals(self) -> None:
        plan = self.arrival_plan
        if plan is None:
            return
        weights = self._arrival_weights()
        for node_id, (share, part) in plan.shares().items():
            node = self.workers.get(node_id)
            if node is None:
                continue
            for name in weights:  # what bounds its reports: users up to its part of the ceiling
                node.asked_most[name] = max(node.asked_most.get(name, 0), part)
            seg = share.segment
            self._send(node_id, p.Arrivals(
                self.run_id, seg.start, seg.position, seg.rate, share.slot, share.slots, part,
                weights, self.host, self.options_for_workers, self._open_end or 0.0,
            ))  # fmt: skip
            node.state = STATE_RUNNING

    def _send_rate_cap(self) -> None:
        plan = self.rate_cap_plan
        if plan is None:
            return
        for node_id, (share, _) in plan.shares().items():
            seg = share.segment
            self._send(node_id, p.RateCap(seg.start, seg.position, seg.rate, share.slot, share.slots))

    def _replan_for_workers(self) -> None:
        """Workers joined or left: the rate cap's slots and the arrivals are re-split."""
        workers = self._worker_ids()
        when = time.time() + self.schedule_lead
        if self.rate_cap_plan is not None and tuple(workers) != self.rate_cap_plan.workers:
            # every worker's slots change: ahead of now, so that no slot is used twice (at once
            # when workers only left: theirs would go unused until then)
            gone = set(workers) <= set(self.rate_cap_plan.workers)
            self.rate_cap_plan.change(time.time() if gone else when, workers=workers, ceiling=len(workers))
            self._send_rate_cap()
        if self.arrival_plan is not None and tuple(workers) != self.arrival_plan.workers:
            # a worker that left runs nothing more: the others take its arrivals over at once
            # (ahead of now, they would be lost until then); with one joining, the new slots
            # wait for the lead, so that no arrival runs on two workers
            gone = set(workers) <= set(self.arrival_plan.workers)
            self.arrival_plan.change(time.time() if gone else when, workers=workers)
            if self.state in (STATE_SPAWNING, STATE_RUNNING):
                self._send_arrivals()

    def _shape_arrivals(self, result: ArrivalRate) -> None:
        """A shape's tick in the open model: its rate applies from SCHEDULE_LEAD after now."""
        classes = list(result.user_classes) if result.user_classes is not None else None
        ceiling = result.users if result.users is not None else self.arrival_ceiling
        if (
            result.rate != self.current_arrival_rate
            or ceiling != self.target_user_count
            or self._class_names(classes) != self.active_classes
            or not self.open_model_on
        ):
            self.start_arrivals(
                float(result.rate), ceiling, classes, at=time.time() + self.schedule_lead
            )
