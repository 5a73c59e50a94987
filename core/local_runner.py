"""Running users in this process without master or workers: Locust's library mode.

``Environment.create_local_runner()`` returns a ``LocalRuntime``; ``start(users, rate)`` ramps
them up, ``stop()`` / ``quit()`` end the test, and ``runner.greenlet.join()`` waits for
``quit()``, as with Locust. The process must be monkey-patched by the script (``from gevent
import monkey; monkey.patch_all()``) before anything else, since lcore patches nothing on import.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent

from .dispatch import Dispatcher, Ramp, UserClassSpec
from .exception import LocustError, StopTest
from .runners import LOCAL, STATE_INIT, STATE_RUNNING, STATE_SPAWNING, STATE_STOPPED, LocalRunner
from .stats import MergedStats
from .user_pool import UserPool

log = logging.getLogger(__name__)


class LocalRuntime(LocalRunner):
    def __init__(self, environment: Any, stats_interval: float = 1.0) -> None:
        super().__init__(environment)  # env.stats counts every request as soon as it completes
        self.stats_interval = stats_interval
        # built at the first start: an Environment may get its user classes after this
        self.pool: UserPool | None = None
        self.dispatcher: Dispatcher | None = None
        self._ramper: gevent.Greenlet[..., Any] | None = None
        # runs until quit(): what `runner.greenlet.join()` waits for
        self.greenlet = gevent.spawn(self._flush_loop)

    @property
    def user_classes_count(self) -> dict[str, int]:
        return self.pool.counts() if self.pool is not None else {}

    @property
    def spawning_greenlet(self) -> gevent.Greenlet[..., Any] | None:
        """Locust's: the greenlet ramping to the last start's users (it ends once they have
        all been started); None before the first start."""
        return self._ramper

    @property
    def user_count(self) -> int:
        return self.pool.user_count if self.pool is not None else 0

    def _prepare(self) -> tuple[UserPool, Dispatcher]:
        if self.pool is None or self.dispatcher is None:
            environment = self.environment
            if not environment.user_classes:
                raise LocustError("No User classes to run: Environment(user_classes=[...]) has none")
            environment.assign_host()
            self.pool = UserPool(environment, environment.user_classes_by_name)
            self.pool.on_spawning_complete = self._spawned
            self.pool.on_user_ended = self._user_ended
            self.pool.on_stop_test = self._stop_test
            self.dispatcher = Dispatcher([UserClassSpec.of(c) for c in environment.user_classes])
            self.dispatcher.set_workers([LOCAL])
        return self.pool, self.dispatcher

    def _flush_loop(self) -> None:
        while True:
            gevent.sleep(self.stats_interval)
            self.flush()

    def start(self, user_count: int, spawn_rate: float, wait: bool = False) -> None:
        _, dispatcher = self._prepare()
        if self.state in (STATE_INIT, STATE_STOPPED):
            self.merged.reset()
            self.environment.events.test_start.fire(environment=self.environment)
        self.state = STATE_SPAWNING
        self.target_user_count, self.spawn_rate = user_count, spawn_rate
        if self._ramper is not None:
            self._ramper.kill(block=True)
        self._ramper = gevent.spawn(self._ramp, Ramp(dispatcher, user_count, spawn_rate, time.monotonic()))
        if wait:
            self._ramper.join()

    def _ramp(self, ramp: Ramp) -> None:
        pool, dispatcher = self._prepare()
        while True:
            now = time.monotonic()
            if ramp.advance(now):
                pool.set_targets(dispatcher.worker_target(LOCAL), ramp.spread(now))
            if ramp.done:
                pool.join_spawning()  # as Locust's spawning_greenlet: over once all are started
                # the spawner's own report came while this ramp was still alive: say it now
                self._spawned(pool.counts())
                return
            gevent.sleep(ramp.pause(time.monotonic()))

    def _user_ended(self, user: Any) -> None:
        ended_by = user._lifecycle.ended_by
        if isinstance(ended_by, StopTest):
            self._stop_test(str(ended_by) or "StopTest raised by a user")

    def _stop_test(self, reason: str) -> None:
        """StopTest ends the run, as Locust's runners do (from a greenlet of its own: the
        user that raised it is still on its way out)."""
        log.error("%s", reason)
        log.warning("Stopping the test (StopTest)")
        gevent.spawn(self.quit)

    def _spawned(self, counts: dict[str, int]) -> None:
        if self.state == STATE_SPAWNING and (self._ramper is None or self._ramper.dead or self._ramper is gevent.getcurrent()):
            self.state = STATE_RUNNING
            self.environment.events.spawning_complete.fire(user_count=sum(counts.values()))

    def stop(self) -> None:
        if self.state in (STATE_INIT, STATE_STOPPED):
            return
        if self._ramper is not None:
            self._ramper.kill(block=True)
        if self.pool is not None and self.dispatcher is not None:
            self.pool.stop_all()
            self.dispatcher.step_to(0)
        self.flush()
        self.state = STATE_STOPPED
        self.environment.events.test_stop.fire(environment=self.environment)

    def quit(self) -> None:
        self.stop()
        self.environment.events.quitting.fire(environment=self.environment)
        self.greenlet.kill(block=False)


def stats_printer(stats: MergedStats, interval: float = 2.0) -> Any:
    """For ``gevent.spawn(stats_printer(env.stats))``: a line per endpoint every ``interval`` s."""

    def printer() -> None:
        while True:
            gevent.sleep(interval)
            lines = [f"{'Name':<40} {'# reqs':>8} {'# fails':>8} {'Avg':>8} {'Med':>8} {'req/s':>8}"]
            for entry in [*stats.sorted_entries(), stats.total]:
                lines.append(
                    f"{(entry.method + ' ' + entry.name).strip()[:40]:<40} {entry.num_requests:>8} "
                    f"{entry.num_failures:>8} {entry.avg_response_time:>8.1f} "
                    f"{entry.median_response_time:>8.1f} {entry.current_rps:>8.1f}"
                )
            print("\n".join(lines), flush=True)

    return printer


def stats_history(runner: Any, interval: float = 1.0) -> None:
    """For ``gevent.spawn(stats_history, env.runner)``: a sample of the totals every second in
    ``runner.stats.history``, as Locust keeps it."""
    while True:
        gevent.sleep(interval)
        total = runner.stats.total
        runner.stats.history.append(
            {
                "time": time.time(),
                "user_count": runner.user_count,
                "current_rps": total.current_rps,
                "current_fail_per_sec": total.current_fail_per_sec,
                "response_time_percentile_0.5": total.get_current_response_time_percentile(0.5),
                "response_time_percentile_0.95": total.get_current_response_time_percentile(0.95),
                "total_avg_response_time": total.avg_response_time,
            }
        )
