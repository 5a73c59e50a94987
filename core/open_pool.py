"""The open model on a worker: arrivals on schedule, each on a free user of a pool (gevent side).

One hub timer (``lcore.precise_timer``: to the microsecond, where libev's are to the
millisecond) stands for the next arrival of this worker's schedule (``lcore.arrivals``). When
it fires, every arrival due by then is handed out: to a free user of its class, which runs one
task (``lcore.open_tasks``); else to a new user if the pool is under its ceiling (created on
its own greenlet, ``on_start`` once, then the task); else it is *dropped* and counted as such
(``RequestStats.record_dropped_arrival``) — never skipped silently. Each arrival's due time is
computed from its segment's start and index, so a late timer makes arrivals late (and the
recorder adds that lag to their response times, ``lcore.schedule_lag``) but never fewer.

A user keeps its greenlet while free (it waits on a ``Waiter`` the hub switches to), so an
arrival costs a switch, not a spawn. The pool owns its greenlets (one ``gevent.pool.Group``)
and stops graceful then forceful, as the closed model's pool does.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast

import gevent
from gevent import GreenletExit
from gevent.hub import Waiter
from gevent.pool import Group

from .arrivals import ClassMix, Share, WorkerSchedule, shifted
from .exception import StopTest, StopUser
from .open_tasks import run_one_task
from .precise_timer import PreciseTimer
from .schedule_lag import end_scheduled_task, start_scheduled_task
from .users import User, no_tasks_message

log = logging.getLogger(__name__)

# how long a user inside a request may take to finish it once the stop timeout has passed
IN_REQUEST_GRACE = 30.0
# arrivals handed out in one timer callback before the hub gets a turn (others are still due)
BATCH = 256
# the timer wakes the hub at most once per this many seconds: at high rates several arrivals
# share a wake-up (each costs tens of microseconds), and none starts more than this late for it
# — half the 1 ms under which a start counts as on time (lcore.schedule_lag.ON_TIME_US)
MIN_WAKE_GAP = 0.0005

_STOP = object()  # what a free user is switched to when it must end


class _ArrivalGreenlet(Protocol):
    """The greenlet running an arrival's task carries when it was due (a greenlet takes any
    attribute): lcore.rate_cap's wait reads it."""

    lcore_arrival_due: float | None


class OpenPool:
    def __init__(
        self,
        environment: Any,
        user_classes: Mapping[str, type[User]],
        on_dropped: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.environment = environment
        self.user_classes = dict(user_classes)
        self.on_dropped = on_dropped
        self.clock = clock
        self.hub = gevent.get_hub()
        self.group = Group()
        self.schedule = WorkerSchedule()
        self.mix: ClassMix | None = None
        self._asked = ""  # a class the master asked for (what a drop is counted under)
        self.ceiling = 0
        self.alive: dict[str, int] = dict.fromkeys(self.user_classes, 0)
        self._total = 0  # sum(alive.values()), kept as it changes (read at every arrival)
        self._free: dict[str, list[tuple[Waiter[Any], User]]] = {n: [] for n in self.user_classes}
        self._users: set[User] = set()
        self._timer: PreciseTimer | None = None  # stands for the next arrival
        self._running = False
        self._end = float("inf")  # no arrival due at or after this runs (end_at)
        self._offset: float | None = None
        self._woke = float("-inf")  # when the timer last fired
        self._failed_classes: set[str] = set()
        self.on_stop_test: Callable[[str], None] | None = None
        # counters for tests and benchmarks
        self.arrived = 0
        self.dropped = 0

    # --- what the worker reads -----------------------------------------------------------
    def counts(self) -> dict[str, int]:
        return {name: n for name, n in self.alive.items()}

    @property
    def user_count(self) -> int:
        return self._total

    # --- the schedule ----------------------------------------------------------------------
    def set_share(self, share: Share, ceiling: int, weights: Mapping[str, float]) -> None:
        """Take a (new) share of the test's arrivals; ``share``'s start is on the wall clock."""
        known = {n: w for n, w in weights.items() if n in self.user_classes}
        unknown = set(weights) - set(known)
        if unknown:
            log.error("Asked to run unknown user classes: %s", ", ".join(sorted(unknown)))
        try:
            self.mix = ClassMix(known)
        except ValueError:
            self.mix = None  # nothing this worker can run: every arrival is dropped
        self._asked = next(iter(weights), "")
        self.ceiling = ceiling
        if not self._running:
            self._end = float("inf")  # a new run
        # the wall clock to this process's monotonic one: one offset for a share and the end
        self._offset = self.clock() - time.time()
        self.schedule.add(shifted(share, self._offset))
        self._running = True
        self._retire_free()
        self._arm()

    def end_at(self, wall: float) -> None:
        """No arrival due after ``wall`` (wall clock) runs: the master's stop, however late
        its message comes."""
        offset = self._offset if self._offset is not None else self.clock() - time.time()
        # a microsecond early: the end is exclusive, and the two clocks' sums round apart
        self._end = min(self._end, wall + offset - 1e-6)

    def _arm(self) -> None:
        due = self.schedule.next_due() if self._running else None
        if due is None:
            if self._timer is not None:
                self._timer.cancel()
            return
        if self._timer is None:
            self._timer = PreciseTimer(self.hub.loop, self._fire)
        self._timer.set(max(due, self._woke + MIN_WAKE_GAP))

    def _fire(self) -> None:
        # in the hub: a timer's callback
        now = self._woke = self.clock()
        schedule = self.schedule
        for _ in range(BATCH):
            if not self._running:
                return
            due = schedule.next_due()
            if due is None or due > now:
                break
            if due >= self._end:  # the end is exclusive: -t 20 at 1,000/s is 20,000
                self._running = False
                return
            k, intended = schedule.pop()
            self._arrive(k, intended)
        self._arm()

    def _arrive(self, k: int, intended: float) -> None:
        self.arrived += 1
        mix = self.mix
        if mix is None:
            self.dropped += 1
            self.on_dropped(self._asked)
            return
        name = mix.class_of(k)
        free = self._free[name]
        if free:
            waiter, _user = free.pop()
            waiter.switch(intended)  # runs its task until it first blocks
            return
        if self._total < self.ceiling:
            self.alive[name] += 1
            self._total += 1
            self.group.spawn(self._user_main, name, intended)
            return
        self.dropped += 1
        self.on_dropped(name)

    # --- a user's life -------------------------------------------------------------------
    def _user_main(self, name: str, intended: float) -> None:
        user = self._create(name)
        if user is None:
            self.alive[name] -= 1
            self._total -= 1
            return
        self._users.add(user)
        life = user._lifecycle
        life.run_on(gevent.getcurrent())
        try:
            try:
                user.on_start()
            except (StopUser, GreenletExit):
                raise
            except Exception as e:
                user._task_failed(e)
            greenlet = cast(_ArrivalGreenlet, gevent.getcurrent())
            while True:
                start_scheduled_task(intended, user_class=name)
                greenlet.lcore_arrival_due = intended  # for a rate cap's wait (lcore.rate_cap)
                try:
                    run_one_task(user)
                finally:
                    greenlet.lcore_arrival_due = None
                    end_scheduled_task()
                if life.stop_requested or self._total > self.ceiling:
                    break
                waiter: Waiter[Any] = Waiter()
                entry = (waiter, user)
                self._free[name].append(entry)
                life.begin_wait()
                try:
                    got = waiter.get()  # the hub took it off the free list to switch here
                except BaseException:
                    free = self._free[name]
                    if entry in free:  # killed while free
                        free.remove(entry)
                    raise
                finally:
                    life.end_wait()
                if got is _STOP:
                    break
                intended = got
        except StopUser as e:
            life.stopped_by(e)
            if isinstance(e, StopTest) and self.on_stop_test is not None:
                self.on_stop_test(str(e) or "StopTest raised by a user")
        except GreenletExit:
            pass
        finally:
            try:
                user._finish()
            finally:
                life.end()
                self._users.discard(user)
                self.alive[name] -= 1
                self._total -= 1

    def _create(self, name: str) -> User | None:
        cls = self.user_classes[name]
        try:
            user = cls(self.environment)
            if not user.tasks:
                from .exception import LocustError

                raise LocustError(no_tasks_message(user))
        except StopTest as e:
            if self.on_stop_test is not None:
                self.on_stop_test(str(e) or "StopTest raised when starting a user")
            return None
        except Exception as e:
            recorder = getattr(self.environment, "exception_recorder", None)
            if recorder is not None:
                recorder(str(e) or repr(e), traceback.format_exc())
            if name not in self._failed_classes:
                self._failed_classes.add(name)
                log.exception("Could not start a %s user", name)
            return None
        if type(user).run is not User.run and name not in self._failed_classes:
            self._failed_classes.add(name)
            log.warning(
                "%s overrides run(): the open model runs one of its tasks per arrival and never "
                "calls its run()", name,
            )  # fmt: skip
        return user

    def _retire_free(self) -> None:
        """Free users beyond a lowered ceiling end now (busy ones after their task)."""
        excess = self._total - self.ceiling
        for free in self._free.values():
            while excess > 0 and free:
                waiter, _ = free.pop()
                self.hub.loop.run_callback(waiter.switch, _STOP)
                excess -= 1

    # --- stopping ------------------------------------------------------------------------
    def stop_all(self, timeout: float | None = None) -> None:
        """No more arrivals; every user ends (``on_stop``) and this returns once all have."""
        self._running = False
        self._arm()
        stop_timeout = (self.environment.stop_timeout or 0) if timeout is None else timeout
        for user in list(self._users):
            user._lifecycle.request_stop(requests_too=stop_timeout <= 0)
        for free in self._free.values():
            for waiter, _ in free:
                self.hub.loop.run_callback(waiter.switch, _STOP)
            free.clear()
        deadline = time.monotonic() + stop_timeout
        last_resort = deadline + IN_REQUEST_GRACE
        while self._users or len(self.group):
            now = time.monotonic()
            past_deadline, force = now >= deadline, now >= last_resort
            for user in list(self._users):
                life = user._lifecycle
                if past_deadline:
                    life.deadline_passed()  # on_stop's own requests still go through
                # a free user was switched to its end above; one in a task finishes it, or
                # the request it is in once the deadline has passed (see user_lifecycle)
                greenlet = life.greenlet
                if greenlet is not None and not greenlet.dead and past_deadline:
                    if life.may_interrupt(past_deadline, force):
                        greenlet.kill(block=False)
            if now >= last_resort + 5:
                break
            gevent.sleep(0.01)
        self.group.kill(block=True, timeout=5)
        self.schedule = WorkerSchedule()
        if self._timer is not None:
            self._timer.close()
            self._timer = None
