"""The master's side of the results store: every run saved when it ends, checkpointed while it
runs.

A ``ResultsRecorder`` follows the master's state: a run begins when the master leaves
init/stopped for spawning (headless, or a start on the page) and ends when it is stopped (the
page) or when the headless master has its exit code (``finish``). While it runs, once a second
it takes a history point, and every ``checkpoint_interval`` seconds a snapshot of the merged
results (``results_record.take_results``: numbers copied on the loop, microseconds per
endpoint). Encoding and the database write happen on a real OS thread (the master is patched
by gevent, whose ``threading`` would be a greenlet on the master's own thread); a checkpoint
due while the previous one is still being written is skipped, so a slow disk or database
never queues work on the master. A killed master loses at most one interval.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import logging
import os
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from lcore.run_ids import new_run_id
from lcore.runners import STATE_SPAWNING, STATE_STOPPED

from . import results_db, results_record

__all__ = ["CHECKPOINT_INTERVAL", "ResultsRecorder", "os_thread_executor"]

log = logging.getLogger("lcore.results")

CHECKPOINT_INTERVAL = 2.0
"""Seconds between two checkpoints of a running run (what a killed master can lose), at least:
a checkpoint that cost C seconds of CPU (snapshot and write) waits COST_FACTOR * C before the
next, so the store stays near 1/COST_FACTOR of a core however many endpoints a test has."""
COST_FACTOR = 50
HISTORY_INTERVAL = 1.0
SNAPSHOT_SLICE = 100
"""Endpoints copied per turn of the master's loop: a long table never stalls it for long."""


def os_thread_executor() -> concurrent.futures.Executor:
    """One real OS thread, also in a process gevent has patched."""
    monkey: ModuleType | None
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        monkey = None
    if monkey is not None and monkey.is_module_patched("threading"):
        from gevent.threadpool import ThreadPoolExecutor

        return ThreadPoolExecutor(max_workers=1)
    return concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="lcore-results")


class ResultsRecorder:
    """Saves the runs of one master into the store at ``where``."""

    def __init__(
        self,
        where: str,
        runtime: Any,
        options: argparse.Namespace,
        *,
        labels: dict[str, str] | None = None,
        checkpoint_interval: float = CHECKPOINT_INTERVAL,
        clock: Any = time.time,
        outcome: Callable[[], tuple[int | None, Any]] | None = None,
    ) -> None:
        self.where = where
        self.runtime = runtime
        self.options = options
        self.labels = dict(labels or {})
        self.checkpoint_interval = checkpoint_interval
        self.clock = clock
        # a run from the page: its exit code and threshold results when it stops
        self.outcome = outcome
        # a headless run is saved by ``finish`` once the master has its exit code; runs
        # started on the page (--autostart's too) when they stop
        self.headless = bool(getattr(options, "headless", False))
        self.info: results_record.RunInfo | None = None
        self.saved: list[str] = []  # ids of the runs saved, in order
        self._run_number = 0
        self._peak_users = 0  # the most users seen running: what the run is remembered by
        self._history: list[dict[str, Any]] = []
        self._executor = os_thread_executor()
        self._store: results_db.Store | None = None
        self._pending: concurrent.futures.Future[Any] | None = None
        self._failed_once = False
        # CPU seconds the latest checkpoint cost: its snapshot on the loop, its write
        self._snapshot_cpu = 0.0
        self._write_cpu = 0.0
        self._git_commit = results_record.git_commit(getattr(options, "locustfile", None))
        self._secret = _secret_dests(options)

    # -- wiring --

    def attach(self) -> None:
        """Follow the runtime's state and start the periodic sampler under its task owner."""
        self.runtime.on_state_change.append(self._state_changed)
        self.runtime.owner.spawn(self._loop(), "results store")

    async def _loop(self) -> None:
        last_checkpoint = time.monotonic()
        while True:
            await asyncio.sleep(HISTORY_INTERVAL)
            if self.info is None:
                continue
            try:
                users = self.runtime.user_count
                self._peak_users = max(self._peak_users, users)
                self._history.append(results_record.history_point(self.runtime.stats_merged, users, self.clock()))
                if time.monotonic() - last_checkpoint >= self.interval:
                    last_checkpoint = time.monotonic()
                    await self._checkpoint_in_slices()
            except Exception:
                log.exception("Could not checkpoint the run into the results store")

    @property
    def interval(self) -> float:
        """Seconds until the next checkpoint: CHECKPOINT_INTERVAL, or longer when they cost."""
        return max(self.checkpoint_interval, COST_FACTOR * (self._snapshot_cpu + self._write_cpu))

    async def _checkpoint_in_slices(self) -> None:
        """``checkpoint``, with the endpoints copied SNAPSHOT_SLICE at a time between turns
        of the loop (a run that ends meanwhile is left to ``finish``)."""
        info = self.info
        if info is None or (self._pending is not None and not self._pending.done()):
            return
        stats = self.runtime.stats_merged
        spent = 0.0
        started = time.thread_time()
        entries = list(stats.entries.values())
        taken: list[list[Any]] = []
        for first in range(0, len(entries), SNAPSHOT_SLICE):
            taken += [results_record.entry_results(e) for e in entries[first : first + SNAPSHOT_SLICE]]
            if first + SNAPSHOT_SLICE < len(entries):
                spent += time.thread_time() - started
                await asyncio.sleep(0)
                if self.info is not info:
                    return
                started = time.thread_time()
        results = results_record.take_results(stats, taken)
        self._submit(self._row("running", None, None), results)
        self._snapshot_cpu = spent + time.thread_time() - started

    def _submit(self, row: dict[str, Any], results: dict[str, Any]) -> None:
        history, self._history = self._history, []
        self._pending = self._executor.submit(self._write, row, results, history)

    def _state_changed(self, state: str) -> None:
        runtime = self.runtime
        if state == STATE_SPAWNING and runtime.run_id != self._run_number:
            if self.info is not None:
                self.finish(None, ())
            self._begin(runtime.run_id)
        elif state == STATE_STOPPED and self.info is not None and not self.headless:
            # a run from the page: its figures are final once the master says stopped
            code, thresholds = self.outcome() if self.outcome is not None else (None, None)
            self.finish(code, thresholds, wait=False)

    # -- a run --

    def _begin(self, run_number: int) -> None:
        runtime, options = self.runtime, self.options
        self._run_number = run_number
        started = runtime.start_time or self.clock()
        self.info = results_record.RunInfo(
            # the id the test's log lines and pushed metrics carry too (lcore.run_ids)
            id=getattr(runtime, "run_uid", None) or new_run_id(started),
            started=started,
            locustfile=str(getattr(options, "locustfile", "") or ""),
            digest=getattr(runtime, "digest", ""),
            target=runtime.host or getattr(runtime.environment, "host", "") or "",
            git_commit=self._git_commit,
            labels=self.labels,
            options=results_record.effective_options(options, self._secret),
            headless=self.headless,
        )
        self._history = []
        self._peak_users = 0
        log.info("Saving this run as %s in %s", self.info.id, results_db.redact(self.where))
        self.checkpoint()

    @property
    def run_id(self) -> str | None:
        return self.info.id if self.info is not None else None

    def _row(self, status: str, exit_code: int | None, thresholds: Any) -> dict[str, Any]:
        assert self.info is not None
        runtime = self.runtime
        stats = runtime.stats_merged
        info = self.info.to_json()
        row = {
            **info,
            "status": status,
            "ended": self.clock() if status == "finished" else None,
            "updated": self.clock(),
            "exit_code": exit_code,
            "users": max(self._peak_users, runtime.user_count),
            "user_classes": dict(runtime.user_classes_count) or dict(runtime.target_user_classes_count),
            "summary": results_record.summary(stats),
            # the master's pid: `lcore runs` on this host tells a killed run from a running one
            "span": {"start": stats.start_time, "last_end": stats.last_request_timestamp, "pid": os.getpid()},
        }

        if thresholds is not None:
            row["thresholds"] = thresholds
        return row

    def checkpoint(self) -> None:
        """Save what the run has so far, unless the previous save is still being written."""
        if self.info is None or (self._pending is not None and not self._pending.done()):
            return
        results = results_record.take_results(self.runtime.stats_merged)
        self._submit(self._row("running", None, None), results)

    def finish(
        self, exit_code: int | None, thresholds: Any, timeout: float = 30.0, wait: bool = True
    ) -> str | None:
        """The run's final save (waited for, unless ``wait`` is false); returns the run's id."""
        if self.info is None:
            return None
        self._wait_pending(timeout)
        self._history.append(
            results_record.history_point(self.runtime.stats_merged, self.runtime.user_count, self.clock())
        )
        results = results_record.take_results(self.runtime.stats_merged)
        row = self._row("finished", exit_code, thresholds)
        history, self._history = self._history, []
        run_id = self.info.id
        self.info = None
        self._pending = self._executor.submit(self._write, row, results, history)
        if wait:
            self._wait_pending(timeout)
        self.saved.append(run_id)
        return run_id

    def _wait_pending(self, timeout: float) -> None:
        pending = self._pending
        if pending is None:
            return
        try:
            pending.result(timeout=timeout)
        except Exception:
            log.error("The results store did not finish writing within %g s", timeout)

    # -- on the writer's thread --

    def _write(self, row: dict[str, Any], results: dict[str, Any], history: list[dict[str, Any]]) -> None:
        started = time.thread_time()
        try:
            if self._store is None:
                self._store = results_db.open_store(self.where)
            self._store.save(row, results, history)
            self._failed_once = False
            self._write_cpu = time.thread_time() - started
        except Exception as e:
            if self._store is not None:
                self._store.close()
                self._store = None
            if not self._failed_once or row["status"] == "finished":
                log.error("Could not save run %s into the results store: %s", row["id"], " ".join(str(e).split()))
            self._failed_once = True

    def close(self) -> None:
        self._wait_pending(30.0)
        store, self._store = self._store, None
        if store is not None:
            self._executor.submit(store.close).result(timeout=10)
        self._executor.shutdown(wait=False)


def _secret_dests(options: argparse.Namespace) -> frozenset[str]:
    return frozenset(o.dest for o in getattr(options, "_custom_options", None) or () if getattr(o, "is_secret", False))
