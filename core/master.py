"""The master runtime: one ROUTER socket (ipc + tcp), dispatch, ramping, merging (asyncio).

The master runs no users. Its asyncio loop runs on gevent's hub (``lcore.hub_loop``), and the
locustfile's code on the master — event listeners, message handlers, a shape's ``tick()`` —
runs on greenlets (``lcore.greenlet_calls``), never on the loop: a listener that sleeps or
blocks parks its greenlet, while heartbeats, merging, dispatch and the web server go on.
Exporters (status page, /metrics, reports) read this object; core never imports them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zmq
import zmq.asyncio

from . import bundle, report_bounds, unreported
from . import protocol as p
from ._version import PROTOCOL_VERSION, __version__
from .bundle_server import BundleServer
from .clock import Clock, SystemClock
from .curve import MasterKeys, apply_server
from .dispatch import Dispatcher, Ramp, UserClassSpec
from .exception import StopTest
from .greenlet_calls import LocustfileCalls
from .log import (
    FORWARDED_LINE,
    LOG_CONTEXT,
    MAX_MESSAGE_CHARS,
    SOURCE_ATTRIBUTE,
    ForwardedLine,
    LogBuffer,
    level_number,
)
from .master_open import SCHEDULE_LEAD, OpenModelControl
from .run_ids import new_run_id
from .runners import (
    STATE_CLEANUP,
    STATE_INIT,
    STATE_MISSING,
    STATE_RUNNING,
    STATE_SPAWNING,
    STATE_STOPPED,
    STATE_STOPPING,
    MasterRunner,
)
from .shape import ArrivalRate
from .spent import SpentSlots, snapshot
from .stats import DEFAULT_MAX_ENTRIES, DeltaError, MergedStats, StatsDelta
from .task_owner import TaskOwner

log = logging.getLogger(__name__)
# the lines workers forward, tagged with the worker's id
worker_log = logging.getLogger("lcore.workers")

# messages handled before the receive loop lets the other tasks run
RECEIVE_BATCH = 64
# Locust's cadence and threshold for events.usage_monitor / cpu_warning
USAGE_MONITOR_INTERVAL = 10.0
CPU_WARNING_THRESHOLD = 90.0
# the most task runs one lease gives a worker (-i/--iterations)
ITERATION_LEASE_MAX = 1000
# what a worker may claim in one report: more users than any test runs is not a real report
MAX_REPORTED_COUNT = 10_000_000


def format_user_counts(counts: dict[str, int]) -> str:
    """Users per class as Locust logs them: ``{"A": 2, "B": 1} (3 total users)``."""
    return f"{json.dumps(dict(sorted(counts.items())))} ({sum(counts.values())} total users)"


def _bounded_counts(counts: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    if isinstance(counts, dict):
        for name, n in list(counts.items())[:1000]:
            if isinstance(name, str) and isinstance(n, int) and 0 <= n <= MAX_REPORTED_COUNT:
                out[name] = n
    return out


@dataclass
class WorkerNode:
    id: str
    host: str
    pid: int
    cores: int
    index: int
    state: str = STATE_INIT
    last_seen: float = field(default_factory=time.monotonic)
    cpu: float = 0.0
    cpu_warning: bool = False
    user_classes_count: dict[str, int] = field(default_factory=dict)
    last_seq: int = 0
    stopped_run: int = -1
    # what bounds its reports (core/report_bounds.py): the most users per class the master
    # ever asked of it, when it joined, and the requests it reported since
    asked_most: dict[str, int] = field(default_factory=dict)
    joined: float = field(default_factory=time.monotonic)
    requests_reported: int = 0
    # what bounds its unreported requests if it is lost (core/unreported.py): the rate of its
    # last report, when that report was merged, when it was declared lost
    last_rate: float | None = None
    last_report_at: float | None = None
    lost_at: float | None = None

    @property
    def user_count(self) -> int:
        return sum(self.user_classes_count.values())


class _AuthorizedKeys:
    """ZAP credentials provider: only the authorized public keys get in; each refusal is logged once."""

    def __init__(self, authorized: set[bytes]) -> None:
        self.authorized = authorized
        self.refused: set[bytes] = set()

    def callback(self, domain: str, key: bytes) -> bool:
        if key in self.authorized:
            return True
        if key not in self.refused and len(self.refused) < 1000:
            self.refused.add(key)
            log.warning(
                "Refused a worker whose CURVE key is not authorized: %s",
                key.decode(errors="replace")[:12] + "...",
            )
        return False


class MasterRuntime(OpenModelControl, MasterRunner):
    def __init__(
        self,
        environment: Any,
        *,
        endpoints: list[str],
        digest: str,
        options_for_workers: dict[str, Any] | None = None,
        heartbeat_interval: float = 1.0,
        heartbeat_timeout: float = 3.0,
        run_time: float | None = None,
        quit_when_stopped: bool = False,
        curve: MasterKeys | None = None,
        iterations: int = 0,
        bundle_source: bundle.Source | None = None,
        max_stats_entries: int = DEFAULT_MAX_ENTRIES,
        arrival_rate: float | None = None,
        arrival_ceiling: int | None = None,
        max_rps: float | None = None,
        schedule_lead: float = SCHEDULE_LEAD,
        clock: Clock | None = None,
        run_uid: str | None = None,
    ) -> None:
        super().__init__(environment)
        # heartbeats, lost workers, the ramp and the usage monitor run on it (lcore.clock)
        self.clock: Clock = clock or SystemClock()
        # the run id of logs, pushed metrics and stored results (``run_id`` below counts the
        # tests this master started, for the protocol); a new test from the page gets a new one
        self.run_uid = run_uid or new_run_id()
        LOG_CONTEXT.run_id = self.run_uid
        self.endpoints = endpoints
        self.digest = digest
        self.options_for_workers = options_for_workers or {}
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.run_time = run_time
        self.quit_when_stopped = quit_when_stopped
        self.curve = curve
        self.bundles = BundleServer(bundle_source)
        self._auth: Any = None
        self.handshake_failures = 0
        self.client_id = "master"
        environment.stats = self.stats_merged = MergedStats(max_entries=max_stats_entries)
        self.workers: dict[str, WorkerNode] = {}
        self.lost_workers: list[WorkerNode] = []
        self.stats_reset_at = -math.inf  # monotonic: what lost workers did before is not counted
        self.refused_workers = 0
        self.refused_reports = 0  # reports claiming more than a worker could have done
        self.malformed_frames = 0
        self.dispatcher = self._make_dispatcher(None)
        self.active_classes: tuple[str, ...] | None = None  # a shape's subset, or all
        self.picked_classes: tuple[str, ...] | None = None  # the status page's pick, or all
        self.shape = environment.shape_class
        if self.shape is not None:
            self.shape.runner = self
        self.host = environment.host or ""
        self.start_time: float | None = None
        self.run_id = 0
        self._ramp: Ramp | None = None
        self._ramp_wakeup = asyncio.Event()
        # every background task of the master: one that dies stops the test, and close() says so
        self.owner = TaskOwner(self._task_died)
        self._quit_event = asyncio.Event()
        self._stopped_event = asyncio.Event()
        self._workers_changed = asyncio.Event()
        self._socket: zmq.asyncio.Socket | None = None
        self._context: zmq.asyncio.Context | None = None
        self._next_index = 0
        self._stop_task: asyncio.Task[None] | None = None
        self._quit_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._run_timer: asyncio.TimerHandle | None = None
        self.calls = LocustfileCalls()  # event listeners, in order
        self.handler_calls = LocustfileCalls()  # message handlers without concurrent=True
        self.spent = SpentSlots()
        # -i/--iterations: task runs left to lease to workers in this run (None: no limit)
        self.iterations = int(iterations or 0)
        self.iterations_left: int | None = None
        self.iterations_done: set[str] = set()
        self.listener_errors = 0  # listeners on the master that raised (exit code 2, as Locust)
        self._run_started: float | None = None  # set until test_start listeners have returned
        self.on_state_change: list[Callable[[str], None]] = []
        self.logs = LogBuffer()  # the status page's Logs view
        # the open model (--arrival-rate) and --max-rps: lcore.master_open
        self._init_open_model(arrival_rate, arrival_ceiling, max_rps, schedule_lead)

    # --- what locustfiles and exporters read -------------------------------------------
    @property
    def user_classes_count(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.workers.values():
            for name, n in node.user_classes_count.items():
                counts[name] = counts.get(name, 0) + n
        return counts

    @property
    def user_count(self) -> int:
        return sum(node.user_count for node in self.workers.values())

    @property
    def target_user_classes_count(self) -> dict[str, int]:
        names = [c.__name__ for c in self.environment.user_classes]
        counts = dict.fromkeys(names, 0)
        if self.target_user_count:
            counts.update(self.dispatcher.totals_for(self.target_user_count))
        return counts

    @property
    def worker_count(self) -> int:
        return len(self.workers)

    @property
    def clients(self) -> dict[str, WorkerNode]:
        return self.workers

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            for callback in self.on_state_change:
                callback(state)

    # --- lifecycle ----------------------------------------------------------------------
    async def serve(self) -> None:
        """Bind and start the loops; returns once the socket is listening."""
        self._context = zmq.asyncio.Context()
        sock = self._context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.MAXMSGSIZE, p.MAX_FRAME_BYTES)
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        sock.setsockopt(zmq.LINGER, 500)
        loop = asyncio.get_running_loop()
        self._loop = loop
        if self.curve is not None:
            self._start_curve(sock)
        else:
            self._warn_if_open()
        for endpoint in self.endpoints:
            sock.bind(endpoint)
        self._socket = sock
        self.owner.spawn(self._receive_loop(), "receive loop")
        self.owner.spawn(self._heartbeat_loop(), "heartbeat loop")
        self.owner.spawn(self._ramp_loop(), "ramp loop")
        self.owner.spawn(self._usage_loop(), "usage monitor")

    def _start_curve(self, sock: zmq.asyncio.Socket) -> None:
        from zmq.auth.asyncio import AsyncioAuthenticator

        assert self.curve is not None and self._context is not None
        self._auth = AsyncioAuthenticator(self._context)
        self._auth.start()
        self._auth.configure_curve_callback(
            "*", credentials_provider=_AuthorizedKeys(self.curve.authorized)
        )
        apply_server(sock, self.curve)
        events = (
            zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
            | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_AUTH
        )
        monitor = sock.get_monitor_socket(events)
        self.owner.spawn(self._watch_handshakes(monitor), "CURVE handshake monitor")

    async def _watch_handshakes(self, monitor: zmq.asyncio.Socket) -> None:
        from zmq.utils.monitor import parse_monitor_message

        while True:
            event = parse_monitor_message(await monitor.recv_multipart())
            self.handshake_failures += 1
            if self.handshake_failures == 1 or self.handshake_failures % 100 == 0:
                log.warning(
                    "Refused a connection that failed the CURVE handshake (%d so far): a worker without "
                    "a valid key, or not speaking CURVE (event %s)",
                    self.handshake_failures,
                    event.get("event"),
                )

    def _warn_if_open(self) -> None:
        for endpoint in self.endpoints:
            if endpoint.startswith("tcp://"):
                host = endpoint[len("tcp://") :].rsplit(":", 1)[0].strip("[]")
                if host not in ("127.0.0.1", "localhost", "::1"):
                    log.warning(
                        "The master listens on %s without CURVE keys: anyone who can reach this port "
                        "can join the test as a worker (see --curve-keys)",
                        endpoint,
                    )

    async def wait_quit(self) -> None:
        await self._quit_event.wait()

    async def close(self, release: bool = True) -> None:
        """Stop everything the master started; raises TaskFailed if one of its tasks died.
        ``release=False`` keeps the sockets open until ``release()``: remote workers leave
        when the master's connection closes (lcore.worker.OUTLIVE_MASTER_GRACE)."""
        try:
            await self.owner.close()
        finally:
            if release:
                self.release()

    def release(self) -> None:
        self.calls.close()
        self.handler_calls.close(timeout=0)
        self.bundles.close()
        if self._auth is not None:
            self._auth.stop()
        if self._context is not None:
            # closes the monitor and ZAP sockets too, which term() alone would wait for
            self._context.destroy(linger=500)

    async def wait_for_workers(self, count: int, max_wait: float = 0) -> bool:
        deadline = time.monotonic() + max_wait if max_wait else None
        announced = 0.0
        while len(self.workers) < count:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            if self._quit_event.is_set():
                return False
            if time.monotonic() - announced > 5:
                log.info(
                    "Waiting for workers to be ready, %d of %d connected", len(self.workers), count
                )
                announced = time.monotonic()
            await asyncio.sleep(0.05)
        return True

    # --- test control (callable from asyncio code and from greenlets on the master) ------
    def _make_dispatcher(self, names: tuple[str, ...] | None) -> Dispatcher:
        classes = [c for c in self.environment.user_classes if names is None or c.__name__ in names]
        dispatcher = Dispatcher([UserClassSpec.of(c) for c in classes])
        if hasattr(self, "workers"):
            dispatcher.set_workers(sorted(self.workers, key=lambda i: self.workers[i].index))
        return dispatcher

    def start(
        self,
        user_count: int,
        spawn_rate: float,
        wait: bool = False,
        host: str | None = None,
        user_classes: list[Any] | None = None,
    ) -> None:
        """Ramp to ``user_count`` users; ``user_classes`` (a shape's third value) limits which
        classes run — the others are stopped. With ``--arrival-rate`` (``arrival_rate``), the
        open model runs instead, ``user_count`` its ceiling of users."""
        if host:
            self.host = host
        if self.arrival_rate is not None:
            self.start_arrivals(self.arrival_rate, user_count, user_classes)
            return
        running = self.state in (STATE_SPAWNING, STATE_RUNNING)
        if running and self.open_model_on:
            log.error("A test in the open model (arrivals) cannot switch to users and a spawn rate")
            return
        names = self._class_names(user_classes)
        if names != self.active_classes:
            # a new class mix: ramp a fresh dispatcher; classes left out get zero users
            previous = self.dispatcher.user_count
            before = snapshot(self.dispatcher.assignment)
            self.active_classes = names
            self.dispatcher = self._make_dispatcher(names)
            self.dispatcher.step_to(min(previous, user_count))
            self.spent.settle(before, self.dispatcher.assignment)
            switched = True
        else:
            switched = False
        log.info("Ramping to %d users at a rate of %.2f per second", user_count, spawn_rate)
        # set first: test_start listeners read runner.target_user_count, as in Locust
        self.target_user_count = user_count
        self.spawn_rate = spawn_rate
        if self.state in (STATE_INIT, STATE_STOPPED, STATE_CLEANUP):
            self._begin_run()
        self._set_state(STATE_SPAWNING)
        self._ramp = Ramp(self.dispatcher, user_count, spawn_rate, self.clock.monotonic())
        if switched:
            self._send_targets(set(self.workers), spread=0.0)
        self._ramp_wakeup.set()

    def _class_names(self, user_classes: list[Any] | None) -> tuple[str, ...] | None:
        """The classes a start runs: those given (a shape's third value), else the page's pick."""
        if user_classes is None:
            return self.picked_classes
        return tuple(sorted(getattr(c, "__name__", str(c)) for c in user_classes))

    def pick_user_classes(self, names: list[str] | None) -> None:
        """--class-picker: the classes the next start runs (None: all); names must be among
        ``environment.user_classes``, which stays whole (every worker runs its pool of them)."""
        self.picked_classes = None if names is None else tuple(sorted(names))

    def pick_shape(self, shape: Any) -> None:
        """--class-picker: the LoadTestShape ``start_shape`` runs, or None for users and rate."""
        self.shape = self.environment.shape_class = shape
        if shape is not None:
            shape.runner = self

    def start_shape(self) -> None:
        if self.shape is None:
            return
        if self.state in (STATE_INIT, STATE_STOPPED, STATE_CLEANUP):
            self._begin_run()
        self.shape.reset_time()
        self._set_state(STATE_SPAWNING)
        self.owner.spawn(self._shape_loop(), "shape loop")

    def _begin_run(self) -> None:
        if self.run_id:  # not the first test of this master: a new run
            self.run_uid = LOG_CONTEXT.run_id = new_run_id()
        self.run_id += 1
        if self.start_time is not None:
            # a new test after a stopped one starts from zero, as in Locust's web UI
            self._reset_merged()
        self.start_time = time.time()
        self._stopped_event.clear()
        self.spent.reset()
        self.iterations_left = self.iterations or None
        self.iterations_done.clear()
        # no worker is told to spawn before the master's test_start listeners have returned
        self._run_started = time.monotonic()
        self._fire(self.environment.events.test_start, environment=self.environment)
        # with a LoadTestShape, the shape decides when the test ends (as in Locust)
        if self.run_time and self.shape is None:
            loop = asyncio.get_running_loop()
            self._run_timer = loop.call_later(self.run_time, self._run_time_up)

    def _run_time_up(self) -> None:
        # Locust's words: a headless run ends here, a run from the page only stops
        log.info("--run-time limit reached, %s", "shutting down" if self.quit_when_stopped else "stopping test")
        self.stop()

    def stop(self) -> None:
        """Stop every user; the final deltas are merged before the state becomes stopped."""
        if self.state in (STATE_STOPPING, STATE_STOPPED) or self._stop_task is not None:
            return
        if self.state == STATE_INIT:
            self._after_stopped()
            return
        self._stop_task = self.owner.spawn(self._stop(), "stop", self._running_loop())

    def quit(self) -> None:
        if self._quit_task is None:
            self._quit_task = self.owner.spawn(self._quit(), "quit", self._running_loop())

    def reset_stats(self) -> None:
        self._reset_merged()
        self._fire(self.environment.events.reset_stats)

    def _reset_merged(self) -> None:
        self.stats_merged.reset()
        self.stats_reset_at = self.clock.monotonic()

    def unreported_bound(self) -> list[unreported.Unreported]:
        """For each worker still lost: at most how many requests it made that no report
        carried (core/unreported.py)."""
        return unreported.bound(self.lost_workers, self.stats_reset_at)

    # --- locustfile code on the master: on greenlets, never on the loop --------------------
    def _fire(self, hook: Any, **kwargs: Any) -> None:
        """Fire ``hook`` after every listener call fired before it, on a greenlet."""
        if hook._handlers:
            self.calls.submit(self._fire_now, hook, kwargs)

    def _fire_now(self, hook: Any, kwargs: dict[str, Any]) -> None:
        before = hook.errors
        try:
            hook.fire(**kwargs)
        except StopTest as e:
            self._stop_test_requested(str(e) or "StopTest raised by an event listener")
        except Exception as e:  # other control flow (StopUser ...) means nothing on the master
            log.debug("ignored %r from a listener on the master", e)
        if hook.errors != before:
            self.listener_errors += hook.errors - before

    def _stop_test_requested(self, reason: str) -> None:
        """StopTest, as in Locust: headless runs quit, runs from the page stop."""
        log.error("%s", reason)
        log.warning("Stopping the test (StopTest)")
        self._call_on_loop(self.quit if self.quit_when_stopped else self.stop)

    def _task_died(self, name: str, error: BaseException) -> None:
        # logged with its traceback by the owner: the test cannot go on without it
        log.error("Stopping the test: the master's %s died (see above)", name)
        if name == "quit":
            self._quit_event.set()  # the way out itself failed: leave now
        elif self._quit_task is None:
            self._quit_task = self.owner.spawn(self._quit(), "quit")

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        """The master's loop, also from a locustfile greenlet (same thread, not inside it)."""
        return self._loop if self._loop is not None else asyncio.get_running_loop()

    def _call_on_loop(self, fn: Callable[[], None]) -> None:
        loop = self._loop
        if loop is None:
            fn()
        else:
            loop.call_soon_threadsafe(fn)

    async def _stop(self) -> None:
        if self._run_timer is not None:
            self._run_timer.cancel()
            self._run_timer = None
        self._ramp = None
        stop_at = self.end_open_model()
        self._set_state(STATE_STOPPING)
        self._fire(self.environment.events.test_stopping, environment=self.environment)
        run_id = self.run_id
        for node in self.workers.values():
            self._send(node.id, p.Stop(run_id, stop_at))
        # each worker sends its final delta, then "stopped"
        timeout = (self.environment.stop_timeout or 0) + 15
        if not await self._wait_until(
            lambda: all(n.stopped_run == run_id for n in self.workers.values()), timeout
        ):
            late = [n.id for n in self.workers.values() if n.stopped_run != run_id]
            log.warning("Workers did not confirm stopping in time: %s", ", ".join(late))
        self.dispatcher.step_to(0)
        self._stop_task = None
        self._after_stopped()

    def _after_stopped(self) -> None:
        self._set_state(STATE_STOPPED)
        self._fire(self.environment.events.test_stop, environment=self.environment)
        self._stopped_event.set()
        if self.quit_when_stopped:
            self.quit()

    async def _quit(self) -> None:
        if self.state in (STATE_SPAWNING, STATE_RUNNING):
            self.stop()
        if self._stop_task is not None:
            await self._stop_task
        for node in list(self.workers.values()):
            self._send(node.id, p.Quit(""))
        await self._wait_until(lambda: not self.workers, 5.0)
        # test_stop listeners first, then quitting's (last registered first, as in Locust):
        # what they set (process_exit_code, a summary) is there before the final report
        await self._drain_listeners("test_stop")
        self._fire(self.environment.events.quitting, environment=self.environment, reverse=True)
        await self._drain_listeners("quitting")
        self._quit_event.set()

    async def _drain_listeners(self, what: str) -> None:
        while not await self.calls.drained(timeout=10.0):
            log.warning("Waiting for the locustfile's %s listeners on the master to return", what)

    async def _wait_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``condition()`` holds (re-checked whenever a worker changes state)."""
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._workers_changed.clear()
            try:
                await asyncio.wait_for(self._workers_changed.wait(), timeout=min(remaining, 0.5))
            except asyncio.TimeoutError:
                pass
        return True

    async def wait_stopped(self) -> None:
        await self._stopped_event.wait()

    # --- custom messages ------------------------------------------------------------------
    def send_message(self, msg_type: str, data: Any = None, client_id: str | None = None) -> None:
        message = p.Custom(msg_type, data)
        if client_id is not None:
            if client_id not in self.workers:
                log.warning("send_message: no worker %s", client_id)
            self._send(client_id, message)
            return
        for node_id in list(self.workers):
            self._send(node_id, message)

    # --- the socket -----------------------------------------------------------------------
    def _send(self, node_id: str, message: p.Message) -> None:
        if self._socket is None:
            return
        try:
            self._socket.send_multipart(
                [node_id.encode(), p.encode(message, self.client_id)], zmq.NOBLOCK
            )
        except zmq.ZMQError as e:
            log.debug("could not send %s to %s: %s", message.TYPE, node_id, e)

    async def _receive_loop(self) -> None:
        assert self._socket is not None
        handled = 0
        while True:
            frames = await self._socket.recv_multipart()
            handled += 1
            if handled % RECEIVE_BATCH == 0:
                # recv_multipart completes at once while messages are queued: without this, a
                # backlog would starve heartbeats, the ramp and the web server
                await asyncio.sleep(0)
            if len(frames) != 2:
                self._malformed(f"expected 2 frames, got {len(frames)}")
                continue
            identity, frame = frames
            try:
                message, _sender = p.decode(frame)
            except p.ProtocolError as e:
                self._malformed(str(e))
                continue
            try:
                node_id = identity.decode()
            except UnicodeDecodeError:
                self._malformed("identity is not text")
                continue
            try:
                self._handle(node_id, message)
            except Exception:
                log.exception("Error handling %s from %s", message.TYPE, node_id)

    def _malformed(self, reason: str) -> None:
        self.malformed_frames += 1
        # logged, then rate-limited: a flood must not flood the log too
        if self.malformed_frames <= 10 or self.malformed_frames % 1000 == 0:
            log.warning(
                "Dropped a malformed message (%d so far): %s", self.malformed_frames, reason
            )

    def _handle(self, node_id: str, message: p.Message) -> None:
        if isinstance(message, p.Hello):
            self._hello(node_id, message)
            return
        if isinstance(message, p.BundleRequest):  # from a worker's fetch socket, before its hello
            self.bundles.answer(node_id, message, self._send)
            return
        node = self.workers.get(node_id)
        if node is None:
            node = self._maybe_rejoin(node_id, message)
            if node is None:
                return
        node.last_seen = self.clock.monotonic()
        if isinstance(message, p.Heartbeat):
            node.cpu = message.cpu
            if node.state == STATE_MISSING:
                node.state = message.state
        elif isinstance(message, p.StatsReport):
            self._stats_report(node, message)
        elif isinstance(message, p.SpawningComplete):
            counts = {str(k): int(v) for k, v in message.user_classes_count.items()}
            if self._refuse_report(node, report_bounds.users_beyond(counts, node.asked_most)):
                return
            node.user_classes_count = counts
            node.state = STATE_RUNNING
            self._check_spawning_complete()
        elif isinstance(message, p.Stopped):
            node.stopped_run = message.run_id
            node.state = STATE_STOPPED
            self._workers_changed.set()
        elif isinstance(message, p.CpuWarning):
            if not node.cpu_warning:
                log.warning(
                    "Worker %s (%s) exceeded the CPU threshold (%.0f%%): its figures may be skewed",
                    node.id, node.host, message.cpu,
                )  # fmt: skip
            node.cpu_warning = True
            self.cpu_warning_emitted = True
        elif isinstance(message, p.Custom):
            self._custom(node, message)
        elif isinstance(message, p.UsersEnded):
            if message.run_id == self.run_id:
                self.spent.ended(node.id, _bounded_counts(message.ended))
                self._check_spawning_complete()
        elif isinstance(message, p.StopTestRequest):
            if message.run_id == self.run_id and self.state in (STATE_SPAWNING, STATE_RUNNING):
                self._stop_test_requested(f"StopTest on worker {node.id}: {message.reason[:500]}")
        elif isinstance(message, p.IterationsWanted):
            self._lease_iterations(node, message)
        elif isinstance(message, p.IterationsDone):
            if message.run_id == self.run_id:
                self.iterations_done.add(node.id)
                self._check_iterations_done()
        elif isinstance(message, p.Goodbye):
            log.info("Worker %s (%s) quit", node.id, node.host)
            self._remove_worker(node)
            if not self.workers and self.state in (STATE_SPAWNING, STATE_RUNNING):
                log.info("The last worker quit, stopping test")
                self.stop()
        elif isinstance(message, p.Log):
            self._worker_log(node, message)
        else:
            log.debug("ignored %s from %s", message.TYPE, node_id)

    def _worker_log(self, node: WorkerNode, message: p.Log) -> None:
        tag = {SOURCE_ATTRIBUTE: node.id}
        if message.dropped > 0:
            self.logs.count_dropped(node.id, message.dropped)
            note = f"{message.dropped} log line(s) dropped by the worker's rate limit"
            self.logs.add(node.id, "WARNING", "lcore", note)
            worker_log.warning("[%s] %s", node.id, note, extra=tag)
        if message.message or message.traceback:
            level = level_number(message.level)
            name = message.name[:200]
            text = message.message[:MAX_MESSAGE_CHARS]
            traceback = message.traceback[:MAX_MESSAGE_CHARS]
            combined = f"{text}\n{traceback}" if traceback else text
            entry = self.logs.add(node.id, logging.getLevelName(level), name, combined)
            where = f"{node.id}] {name}:" if name else f"{node.id}]"
            # JSON logs show the line as the worker logged it: its id, logger, time, traceback
            created = message.created if 0 < message.created < 1e11 else 0.0
            line = ForwardedLine(node.id, node.host, name, text, traceback, created)
            worker_log.log(level, "[%s %s", where, entry.message, extra={**tag, FORWARDED_LINE: line})

    def _maybe_rejoin(self, node_id: str, message: p.Message) -> WorkerNode | None:
        """A worker declared lost that speaks again (e.g. after SIGSTOP/SIGCONT) is taken back."""
        for lost in self.lost_workers:
            if lost.id == node_id:
                if isinstance(message, p.StatsReport):
                    # merged once: the seq check still holds for the late delta
                    self._stats_report(lost, message)
                return None
        return None

    def _hello(self, node_id: str, hello: p.Hello) -> None:
        reason = ""
        if hello.protocol != PROTOCOL_VERSION:
            reason = (
                f"protocol version {hello.protocol} does not match the master's {PROTOCOL_VERSION}"
            )
        elif hello.version != __version__:
            reason = f"lcore version {hello.version} does not match the master's {__version__}"
        elif hello.digest != self.digest:  # a same-test check; who may join is CURVE's to say
            reason = "its locustfile differs from the master's (digest mismatch)"
        if reason:
            self.refused_workers += 1
            if self.refused_workers <= 10 or self.refused_workers % 1000 == 0:
                log.error("Refused worker %s from %s: %s", node_id, hello.host, reason)
            self._send(node_id, p.Welcome(False, reason))
            return
        node = self.workers.get(node_id)
        if node is None:
            previous = next((n for n in self.lost_workers if n.id == node_id), None)
            now = self.clock.monotonic()
            node = WorkerNode(
                node_id, hello.host, hello.pid, hello.cores, self._next_index, last_seen=now, joined=now
            )
            if previous is not None:
                node.last_seq = previous.last_seq
                node.asked_most, node.joined = previous.asked_most, previous.joined
                node.requests_reported = previous.requests_reported
                node.last_rate, node.last_report_at = previous.last_rate, previous.last_report_at
                self.lost_workers.remove(previous)
                log.info("Worker %s (%s) rejoined", node_id, hello.host)
            else:
                log.info("Worker %s (%s, pid %d) connected", node_id, hello.host, hello.pid)
            self._next_index += 1
            self.workers[node_id] = node
        self._send(
            node_id, p.Welcome(True, "", self.options_for_workers, node.index, self.run_uid)
        )
        self._fire(self.environment.events.worker_connect, client_id=node_id)
        self._rebalance()

    def _stats_report(self, node: WorkerNode, report: p.StatsReport) -> None:
        if report.seq <= node.last_seq:
            return  # a duplicate or replay: merged once, never twice
        try:
            delta = StatsDelta.from_wire(report.delta)
        except DeltaError as e:
            self._malformed(f"stats from {node.id}: {e}")
            return
        counts = {str(k): int(v) for k, v in report.user_classes_count.items()}
        requests = node.requests_reported + delta.num_requests
        why = (
            report_bounds.users_beyond(counts, node.asked_most)
            or report_bounds.requests_beyond(requests, self.clock.monotonic() - node.joined)
            or report_bounds.time_beyond(delta.end, time.time())
        )
        if self._refuse_report(node, why):
            return  # not merged; its seq is not taken either, so a replay is refused the same
        node.last_seq = report.seq
        node.requests_reported = requests
        node.user_classes_count = counts
        self.stats_merged.merge(node.id, delta)
        node.last_report_at = self.clock.monotonic()
        rate = unreported.rate_of(delta.num_requests, delta.start, delta.end)
        if rate is not None:
            node.last_rate = rate
        if report.extra:
            self._fire(self.environment.events.worker_report, client_id=node.id, data=report.extra)

    def _refuse_report(self, node: WorkerNode, why: str | None) -> bool:
        """True (and logged, rate-limited) if a worker reported more than it could have done."""
        if why is None:
            return False
        self.refused_reports += 1
        if self.refused_reports <= 10 or self.refused_reports % 1000 == 0:
            log.error(
                "Refused a report from worker %s (%s), not merged (%d so far): %s",
                node.id, node.host, self.refused_reports, why,
            )  # fmt: skip
        return True

    def _custom(self, node: WorkerNode, message: p.Custom) -> None:
        # Locust's semantics: concurrent handlers each on a greenlet of their own, the others
        # one after another — on greenlets either way, so a handler that sleeps or blocks
        # never stalls the master
        calls = self.handler_calls
        if not self._deliver_message(
            message.msg_type, message.data, node.id, spawn=calls.spawn, call=calls.submit
        ):
            log.warning(
                "Unknown message type received from worker %s: %s", node.id, message.msg_type[:60]
            )

    def _remove_worker(self, node: WorkerNode) -> None:
        self.workers.pop(node.id, None)
        self._workers_changed.set()
        self._rebalance()
        self.spent.forget(node.id)
        self._check_iterations_done()

    def _check_spawning_complete(self) -> None:
        if self.state != STATE_SPAWNING or self._ramp is not None and not self._ramp.done:
            return
        if all(
            n.user_classes_count == self._alive_target(n.id) for n in self.workers.values()
        ):
            self._set_state(STATE_RUNNING)
            log.info("All users spawned: %s", format_user_counts(self.user_classes_count))
            if self.environment.reset_stats:
                log.info("Resetting stats (--reset-stats): spawning is complete")
                self.reset_stats()
            self._fire(self.environment.events.spawning_complete, user_count=self.user_count)

    async def _wait_test_start_listeners(self) -> None:
        """Workers are told to spawn once the master's test_start listeners have returned."""
        started = self._run_started
        if not await self.calls.drained(timeout=10.0) and started is not None:
            log.warning(
                "The locustfile's test_start listeners on the master have run for %.0f s: "
                "users start when they return",
                time.monotonic() - started,
            )
            return
        self._run_started = None

    # --- -i/--iterations: task runs leased to workers, exactly N in all ---------------------
    def _lease_iterations(self, node: WorkerNode, message: p.IterationsWanted) -> None:
        if message.run_id != self.run_id or self.iterations_left is None:
            return
        granted = max(0, min(int(message.count), self.iterations_left, ITERATION_LEASE_MAX))
        self.iterations_left -= granted
        last = self.iterations_left == 0
        self._send(node.id, p.IterationsGranted(self.run_id, granted, last))
        if last:
            # everyone learns that no more will come, also workers that never asked
            for other in self.workers:
                if other != node.id:
                    self._send(other, p.IterationsGranted(self.run_id, 0, True))

    def _check_iterations_done(self) -> None:
        if self.iterations_left != 0 or self.state not in (STATE_SPAWNING, STATE_RUNNING):
            return
        if all(node_id in self.iterations_done for node_id in self.workers):
            log.info("Iteration limit reached (%d task runs), stopping the test", self.iterations)
            if self.quit_when_stopped:
                self.quit()
            else:
                self.stop()

    # --- loops ----------------------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        while True:
            await self.clock.sleep(self.heartbeat_interval)
            now = self.clock.monotonic()
            beat = p.Heartbeat(self.state, 0.0, self.user_count)
            sent = self.environment.events.heartbeat_sent
            for node in list(self.workers.values()):
                if now - node.last_seen > self.heartbeat_timeout:
                    self._lose(node, now - node.last_seen)
                else:
                    self._send(node.id, beat)
                    self._fire(sent, client_id=node.id, timestamp=time.time())

    async def _usage_loop(self) -> None:
        """events.usage_monitor (and cpu_warning above 90%) for the master process, every
        10 s, as Locust's runners do."""
        import psutil

        process = psutil.Process()
        process.cpu_percent()
        events = self.environment.events
        while True:
            await self.clock.sleep(USAGE_MONITOR_INTERVAL)
            cpu = process.cpu_percent()
            if cpu > CPU_WARNING_THRESHOLD:
                self._fire(events.cpu_warning, environment=self.environment, cpu_usage=cpu)
            self._fire(
                events.usage_monitor,
                environment=self.environment, cpu_usage=cpu, memory_usage=process.memory_info().rss,
            )  # fmt: skip

    def _lose(self, node: WorkerNode, silent: float) -> None:
        self.workers.pop(node.id, None)
        self._workers_changed.set()
        node.state = STATE_MISSING
        node.lost_at = self.clock.monotonic()
        self.lost_workers.append(node)
        remaining = len(self.workers)
        log.warning(
            "Worker %s (%s, pid %d) lost: silent for %.1f s; its %d users go to the %d remaining "
            "worker(s); what it did since its last report is missing unless it comes back",
            node.id, node.host, node.pid, silent, node.user_count, remaining,
        )  # fmt: skip
        self._rebalance()
        self.spent.forget(node.id)
        self._check_iterations_done()

    def _rebalance(self) -> None:
        self._replan_for_workers()
        before = snapshot(self.dispatcher.assignment) if self.spent else None
        changed = self.dispatcher.set_workers(
            sorted(self.workers, key=lambda i: self.workers[i].index)
        )
        if before is not None:
            changed |= self.spent.settle(before, self.dispatcher.assignment)
        if self.state in (STATE_SPAWNING, STATE_RUNNING) and not self.open_model_on:
            self._send_targets(changed, spread=0.0)

    def _worker_target(self, node_id: str) -> dict[str, int]:
        # every class named, zeros included: a worker stops the classes a shape left out
        target = dict.fromkeys((c.__name__ for c in self.environment.user_classes), 0)
        target.update(self.dispatcher.worker_target(node_id))
        return target

    def _alive_target(self, node_id: str) -> dict[str, int]:
        """The users a worker runs once spawned: its slots less the spent ones."""
        target = self._worker_target(node_id)
        for name, n in self.spent.charge(node_id).items():
            if name in target:
                target[name] = max(0, target[name] - n)
        return target

    def _send_targets(self, node_ids: set[str], spread: float) -> None:
        for node_id in node_ids:
            if node_id in self.workers:
                target = self._worker_target(node_id)
                most = self.workers[node_id].asked_most
                for name, n in target.items():
                    most[name] = max(most.get(name, 0), int(n))
                spawn = p.Spawn(
                    target, spread, self.host, self.run_id,
                    self.spent.charge(node_id), self.spent.seen(node_id), self.options_for_workers,
                    self.run_uid,
                )  # fmt: skip
                self._send(node_id, spawn)
                self.workers[node_id].state = STATE_SPAWNING

    async def _ramp_loop(self) -> None:
        while True:
            ramp = self._ramp
            if ramp is None or ramp.done or self.state not in (STATE_SPAWNING, STATE_RUNNING):
                self._ramp_wakeup.clear()
                await self._ramp_wakeup.wait()
                continue
            if self._run_started is not None:
                await self._wait_test_start_listeners()
                continue
            now = self.clock.monotonic()
            before = snapshot(self.dispatcher.assignment) if self.spent else None
            changed = ramp.advance(now)
            if before is not None:
                changed |= self.spent.settle(before, self.dispatcher.assignment)
            self._send_targets(changed, ramp.spread(now))
            if ramp.done:
                self._check_spawning_complete()
                continue
            try:
                await asyncio.wait_for(self._ramp_wakeup.wait(), timeout=ramp.pause(self.clock.monotonic()))
                self._ramp_wakeup.clear()
            except asyncio.TimeoutError:
                pass

    async def _shape_loop(self) -> None:
        shape = self.shape
        # ticks on a grid of whole seconds from the start, so that their lateness does not add
        # up (the open model's stages end on time); Locust too sleeps 1 s less the tick's time
        next_tick = time.monotonic()
        while self.state not in (STATE_STOPPING, STATE_STOPPED):
            next_tick += 1.0
            try:
                # locustfile code: on a greenlet, so a tick that sleeps never stalls the loop
                result = await self.calls.call(shape.tick)
            except StopTest as e:
                log.error("%s", e)
                result = None
            except Exception:
                log.exception("LoadTestShape.tick() raised; stopping the test")
                result = None
            # a tick that took a second or more: the next one at once, as Locust's (1 s less
            # the tick's own time, never below 0), and the grid from there
            next_tick = max(next_tick, time.monotonic())
            if result is None:
                log.info("Shape test stopping")
                if self.open_model_on:
                    # its rates apply SCHEDULE_LEAD after each tick: so does its end
                    await asyncio.sleep(self.schedule_lead)
                self.stop()
                return
            if isinstance(result, ArrivalRate):
                self._shape_arrivals(result)
                await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
                continue
            users, rate = int(result[0]), float(result[1])
            classes = list(result[2]) if len(result) > 2 and result[2] is not None else None
            wanted = self._class_names(classes)
            if (
                users != self.target_user_count
                or rate != self.spawn_rate
                or wanted != self.active_classes
            ):
                self.start(users, rate, user_classes=classes)
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
