"""The worker runtime: users as greenlets, stats deltas and heartbeats to the master (gevent).

The process has been monkey-patched by its entry point before this module (and the
locustfile) was imported. Everything here runs in one OS thread; the stats swap in
``take_delta`` does not yield, so a delta can neither lose nor double a request.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

import gevent
import zmq.green as zmq
from gevent.event import Event
from gevent.pool import Group
from zmq.utils.monitor import recv_monitor_message

from . import protocol as p
from ._version import PROTOCOL_VERSION, __version__
from .arrivals import Segment, Share
from .cpu import CpuMonitor
from .curve import WorkerKeys, apply_client
from .exception import StopTest
from .fd_limit import raise_open_file_limit
from .iterations import TaskRunLease
from .log import FORWARD_BURST, FORWARD_RATE, LOG_CONTEXT, LogForwarder, not_forwarded
from .memory import TRIM_INTERVAL, release_free_memory
from .open_pool import OpenPool
from .rate_cap import RateGate
from .runners import (
    STATE_INIT,
    STATE_RUNNING,
    STATE_SPAWNING,
    STATE_STOPPED,
    STATE_STOPPING,
    CustomMessage,
    WorkerRunner,
)
from .stats import MergedStats, RequestStats
from .task_tags import apply_tags
from .user_pool import UserPool

log = logging.getLogger(__name__)

__all__ = ["CustomMessage", "WorkerRuntime"]

# -i/--iterations: how long a task still running when the runs are used up may take to end
IN_TASK_MAX = 3600.0
# Locust's interval for events.usage_monitor (and cpu_warning)
USAGE_MONITOR_INTERVAL = 10.0
# A worker that has never reached its master gives up after this long, with a clear message.
FIRST_CONNECT_TIMEOUT = 60.0
RECONNECT_BACKOFF_MAX = 10.0
# A remote worker that the master quits at the end of a run exits after the master, not before:
# `docker compose up --exit-code-from master` stops the master when a worker exits first, and
# then reports the master's exit code as 0, hiding a failed threshold. The worker waits for
# the master's connection to close, then this long for its process and container to end ...
OUTLIVE_MASTER_GRACE = 1.0
# ... or at most this long after the quit (the master writes its reports and results first)
OUTLIVE_MASTER_MAX = 30.0


def make_node_id() -> str:
    suffix = uuid.uuid4().hex[:8]
    return f"{socket.gethostname()}_{os.getpid()}_{suffix}"


class WorkerRuntime(WorkerRunner):
    def __init__(
        self,
        environment: Any,
        *,
        endpoint: str,
        digest: str,
        remote: bool,
        stats_interval: float = 1.0,
        heartbeat_interval: float = 1.0,
        heartbeat_timeout: float = 3.0,
        first_connect_timeout: float = FIRST_CONNECT_TIMEOUT,
        curve: WorkerKeys | None = None,
        log_rate: float = FORWARD_RATE,
        log_burst: int = FORWARD_BURST,
    ) -> None:
        super().__init__(environment)
        self.endpoint = endpoint
        self.digest = digest
        self.remote = remote
        self.stats_interval = stats_interval
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.first_connect_timeout = first_connect_timeout
        self.curve = curve
        self._monitor: gevent.Greenlet[..., Any] | None = None
        self.client_id = make_node_id()
        self.worker_index = 0
        self.stats_recorder = RequestStats()
        # what a locustfile reads on a worker (environment.stats.total.fail_ratio in a quitting
        # hook): this worker's own cumulative figures, fed with each delta it sends
        self.local_stats = MergedStats()
        environment.record_into(self.local_stats, self.stats_recorder)
        self.pool = UserPool(environment, environment.user_classes_by_name)
        self.pool.on_spawning_complete = self._spawning_complete
        self.pool.on_user_ended = self._user_ended
        self.pool.on_stop_test = self._stop_test_raised
        # the open model's pool (--arrival-rate), made at the first Arrivals
        self.open_pool: OpenPool | None = None
        # --max-rps: this worker's slots of the test's request rate, from the master
        self.rate_gate: RateGate | None = None
        self._ended_pending = False
        self._iterations = False
        self.lease: TaskRunLease | None = None
        self.cpu = CpuMonitor()
        self._cpu_warned = False
        self._seq = 0
        self._run_id = -1
        self._socket: Any = None
        self._context: zmq.Context[Any] = zmq.Context.instance()
        self._last_master_seen = time.monotonic()
        self._quit = Event()
        # the master quit this remote worker at the end of its run: leave after it has gone
        self._outlive_master = False
        self._master_closed = Event()
        self._leave_now = Event()
        self._exit_code = 0
        self._stopper: gevent.Greenlet[..., Any] | None = None
        self._connected = Event()
        # set once the locustfile's init hooks have run: no user starts before that
        self._ready = Event()
        # warnings and errors of every logger (lcore's, the locustfile's) go to the master too
        self.log_forwarder = LogForwarder(self._send_log, rate=log_rate, burst=log_burst)

    # --- the Runner API a locustfile uses ------------------------------------------------
    @property
    def user_classes_count(self) -> dict[str, int]:
        return self._counts()

    @property
    def user_count(self) -> int:
        return self.pool.user_count + (self.open_pool.user_count if self.open_pool is not None else 0)

    def _counts(self) -> dict[str, int]:
        counts = self.pool.counts()
        if self.open_pool is not None:
            for name, n in self.open_pool.counts().items():
                counts[name] = counts.get(name, 0) + n
        return counts

    @property
    def target_user_classes_count(self) -> dict[str, int]:
        """This worker's share, as the master last sent it."""
        return dict(getattr(self, "_targets", {}))

    def send_message(self, msg_type: str, data: Any = None, client_id: str | None = None) -> None:
        self._send(p.Custom(msg_type, data))

    def quit(self) -> None:
        self._leave_now.set()  # SIGTERM too: no waiting for the master
        self._quit.set()

    def stop(self) -> None:
        self._stop_test()

    def fail(self, code: int) -> None:
        """Exit with ``code`` without starting anything (a fatal init error)."""
        self._exit_code = code
        self._quit.set()

    # --- running -----------------------------------------------------------------------
    def run(self, on_connected: Callable[[], None] | None = None) -> int:
        """Connect, call ``on_connected`` (the launcher fires ``events.init`` there), then serve
        until told to quit; returns the exit code."""
        raise_open_file_limit()
        LOG_CONTEXT.worker_id = self.client_id  # JSON log lines name this worker
        gevent.signal_handler(signal.SIGTERM, self.quit)
        self._open_socket()
        self._forward_logs(True)
        # the worker's own loops, owned here: one that dies ends the worker with an error
        services = Group()
        for loop in (self._receive_loop, self._stats_loop, self._heartbeat_loop, self._trim_loop, self._usage_loop):
            name = loop.__name__.lstrip("_").replace("_", " ")
            services.spawn(loop).link_exception(partial(self._service_died, name=name))
        try:
            if not self._connect(self.first_connect_timeout):
                if self._quit.is_set():
                    return self._exit_code  # SIGTERM, or refused (said already): not "gave up"
                host = self.endpoint.split("://", 1)[-1]
                log.error(
                    "Could not reach the master at %s: gave up after %g s",
                    host,
                    self.first_connect_timeout,
                )
                return 1
            if on_connected is not None:
                on_connected()
            if self._quit.is_set():
                return self._exit_code
            self._ready.set()
            self._quit.wait()
        finally:
            self._shutdown()
            self._forward_logs(False)
            services.kill(block=True, timeout=2)
            if self._outlive_master:
                self._wait_for_master_to_go()
            if self._monitor is not None:
                self._monitor.kill(block=False)
            # the process ends with os._exit: wait here until the goodbye (and the final delta)
            # have left, closing the monitor socket too
            # (never welcomed: nothing is owed to anyone, and what is queued goes nowhere)
            self._context.destroy(linger=2000 if self._ready.is_set() else 0)
        return self._exit_code

    def _wait_for_master_to_go(self) -> None:
        gevent.wait([self._master_closed, self._leave_now], timeout=OUTLIVE_MASTER_MAX, count=1)
        if self._master_closed.is_set():
            self._leave_now.wait(OUTLIVE_MASTER_GRACE)

    def _service_died(self, greenlet: gevent.Greenlet[..., Any], name: str) -> None:
        error = greenlet.exception
        log.error(
            "Worker %s: its %s died, stopping: %s",
            self.client_id,
            name,
            error,
            exc_info=(type(error), error, error.__traceback__) if error is not None else None,
        )
        self._exit_code = 1
        self._quit.set()

    def _shutdown(self) -> None:
        if self.state in (STATE_SPAWNING, STATE_RUNNING, STATE_STOPPING) or self.user_count:
            self._stop_test()
        if self._stopper is not None:
            self._stopper.join(timeout=30)
        self._send_stats()
        self.environment.events.quitting.fire(environment=self.environment)
        self._send(p.Goodbye("quit"))

    def _open_socket(self) -> None:
        if self._socket is not None:
            # at once: a lingering socket with this identity would reconnect too, and the
            # master's ROUTER could hand this worker's identity over to it
            self._socket.close(linger=0)
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, self.client_id.encode())
        sock.setsockopt(zmq.LINGER, 1000)
        sock.setsockopt(zmq.MAXMSGSIZE, p.MAX_FRAME_BYTES)
        if self.curve is not None:
            apply_client(sock, self.curve)
        if self._monitor is not None:
            self._monitor.kill(block=False)
        # with keys or without: a CURVE master refuses a worker without keys (and a plain master
        # one with keys) as a protocol failure, which otherwise looks like a master not there
        events = zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_DISCONNECTED
        self._monitor = gevent.spawn(self._watch_connection, sock.get_monitor_socket(events))
        sock.connect(self.endpoint)
        self._socket = sock

    def _watch_connection(self, monitor: Any) -> None:
        while True:
            try:
                event = recv_monitor_message(monitor)
            except zmq.ZMQError:
                return
            if event["event"] != zmq.EVENT_DISCONNECTED:
                break
            self._master_closed.set()
        if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            log.error("The master at %s refused this worker's CURVE key", self.endpoint)
        elif self.curve is None:
            log.error(
                "The master at %s refused this worker: it requires CURVE keys (--curve-keys)", self.endpoint
            )
        else:
            log.error(
                "The master at %s refused this worker: it has no CURVE keys, this worker has "
                "(--curve-keys on both or on neither)", self.endpoint,
            )  # fmt: skip
        if not self._connected.is_set():
            self._exit_code = 1
            self._quit.set()

    def _send(self, message: p.Message) -> bool:
        if self._socket is None:
            return False
        try:
            self._socket.send(p.encode(message, self.client_id), zmq.NOBLOCK)
        except zmq.Again:
            log.debug("master not reachable, dropped %s", message.TYPE)
            return False
        except zmq.ZMQError as e:
            log.debug("send failed: %s", e)
            return False
        return True

    def _forward_logs(self, on: bool) -> None:
        root = logging.getLogger()
        others = [h for h in root.handlers if h is not self.log_forwarder]
        if on:
            # first, so the handlers after it see which records reached the master
            root.handlers.insert(0, self.log_forwarder)
        else:
            root.removeHandler(self.log_forwarder)
        if not self.remote:
            # a local worker shares the master's terminal and log file: a line the master
            # prints, tagged with this worker, is not printed a second time here
            for handler in others:
                (handler.addFilter if on else handler.removeFilter)(not_forwarded)

    def _send_log(self, level: str, name: str, message: str, dropped: int, traceback: str) -> bool:
        # before the welcome the master would drop it (an unknown node): the line stays local
        if not self._connected.is_set():
            return False
        return self._send(p.Log(level, message, name, dropped, traceback, time.time()))

    def _hello(self) -> p.Hello:
        return p.Hello(
            PROTOCOL_VERSION,
            __version__,
            socket.gethostname(),
            os.getpid(),
            os.cpu_count() or 1,
            self.digest,
        )

    def _connect(self, timeout: float | None) -> bool:
        """Say hello until the master welcomes us; False if ``timeout`` passes first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        backoff = 1.0
        announced = False
        while not self._quit.is_set():
            self._connected.clear()
            self._send(self._hello())
            wait = backoff if deadline is None else max(0.0, min(backoff, deadline - time.monotonic()))
            # SIGTERM (quit) ends the wait at once, not after up to RECONNECT_BACKOFF_MAX
            gevent.wait([self._connected, self._quit], timeout=wait, count=1)
            if self._connected.is_set():
                return True
            if self._quit.is_set():
                break
            if deadline is not None and time.monotonic() >= deadline:
                return False
            if not announced or backoff >= RECONNECT_BACKOFF_MAX:
                log.warning("Waiting for the master at %s ...", self.endpoint)
                announced = True
            # the socket may have queued hellos to a dead peer; a fresh one reconnects cleanly
            self._open_socket()
            backoff = min(backoff * 2, RECONNECT_BACKOFF_MAX)
        return False

    def _receive_loop(self) -> None:
        while True:
            sock = self._socket
            try:
                frame = sock.recv()
            except zmq.ZMQError:
                gevent.sleep(0.05)
                continue
            try:
                message, sender = p.decode(frame)
            except p.ProtocolError as e:
                log.warning("Dropped a malformed message from the master: %s", e)
                continue
            self._last_master_seen = time.monotonic()
            try:
                self._handle(message)
            except Exception:
                log.exception("Error handling %s from the master", message.TYPE)

    def _handle(self, message: p.Message) -> None:
        if isinstance(message, p.Heartbeat):
            hook = self.environment.events.heartbeat_received
            if hook._handlers:
                hook.fire(client_id=self.client_id, timestamp=time.time())
            return
        if isinstance(message, p.IterationsGranted):
            if message.run_id == self._run_id and self.lease is not None:
                self.lease.granted(message.count, message.last)
            return
        if isinstance(message, p.Welcome):
            if not message.accepted:
                log.error("The master refused this worker: %s", message.reason)
                self._exit_code = 1
                self._quit.set()
                return
            self.worker_index = message.index
            if message.run_uid:
                LOG_CONTEXT.run_id = message.run_uid
            if not self._connected.is_set():
                log.info("Connected to the master at %s as %s", self.endpoint, self.client_id)
            self._apply_options(message.options)
            opts = self.environment.parsed_options
            # -i/--iterations, as the master says: task runs are leased from it (per run)
            self._iterations = int(getattr(opts, "iterations", 0) or 0) > 0
            if message.options.get("config_users"):
                self._use_master_user_config(message.options["config_users"])
            if "tags" in message.options or "exclude_tags" in message.options:
                self._use_master_tags(message.options.get("tags"), message.options.get("exclude_tags"))
            # a disconnection before this welcome is not the master's end of run
            self._master_closed.clear()
            self._connected.set()
        elif isinstance(message, p.Spawn):
            self._spawn(message)
        elif isinstance(message, p.Arrivals):
            self._arrivals(message)
        elif isinstance(message, p.RateCap):
            self._rate_cap(message)
        elif isinstance(message, p.Stop):
            if self.open_pool is not None and message.at:
                self.open_pool.end_at(message.at)
            if not self._stop_test():
                # nothing was running here (fewer users than workers): say so at once, or the
                # master would wait for this worker until its timeout
                self._send(p.Stopped(message.run_id))
        elif isinstance(message, p.Quit):
            if message.reason:
                log.info("The master told this worker to quit: %s", message.reason)
            elif self.remote:
                # the run is over and the master is about to exit: see OUTLIVE_MASTER_GRACE
                self._outlive_master = True
            self._quit.set()
        elif isinstance(message, p.Custom):
            self._handle_custom(message)
        else:
            log.debug("ignored %s from the master", message.TYPE)

    def _apply_options(self, options: dict[str, Any]) -> None:
        """The locustfile's options as the master has them (set on its status page): in
        ``environment.parsed_options`` before test_start fires and before any user starts."""
        opts = self.environment.parsed_options
        if opts is not None:
            for key, value in options.items():
                setattr(opts, str(key), value)

    def _use_master_user_config(self, values: Any) -> None:
        """--config-users as the master has it (applied from the declared tasks, so twice is
        the same as once)."""
        from .user_config import UserConfigError, apply

        try:
            apply(self.environment.user_classes_by_name, [c for value in values for c in value])
        except (UserConfigError, TypeError, AttributeError) as e:
            log.error("The master's --config-users cannot be applied here: %s", e)

    def _use_master_tags(self, tags: list[str] | None, exclude_tags: list[str] | None) -> None:
        """Run the tasks the master's --tags/--exclude-tags select, not this worker's own
        (Locust #1392); the Welcome comes before any Spawn, so no user runs the old filter."""
        env = self.environment
        wanted = (list(tags or []), list(exclude_tags or []))
        current = (list(env.tags or []), list(env.exclude_tags or []))
        if wanted == current:
            return  # what the tasks were filtered with already
        log.info(
            "Using the master's tags (--tags %s, --exclude-tags %s) instead of this worker's",
            " ".join(wanted[0]) or "-",
            " ".join(wanted[1]) or "-",
        )
        apply_tags(env.user_classes, tags, exclude_tags)
        env.tags, env.exclude_tags = tags, exclude_tags

    def _handle_custom(self, message: p.Custom) -> None:
        # handlers are registered by init listeners: a message sent right after the welcome
        # waits for them, as a spawn does
        self._ready.wait()
        if not self._deliver_message(message.msg_type, message.data, "master", spawn=gevent.spawn):
            log.warning("Unknown message type received from the master: %s", message.msg_type)

    def _spawn(self, message: p.Spawn) -> None:
        self._ready.wait()
        if self._stopper is not None and not self._stopper.dead:
            self._stopper.join()
        if message.host:
            self.environment.assign_host(message.host)
        self._apply_options(message.options)
        if message.run_uid:
            LOG_CONTEXT.run_id = message.run_uid
        if self.state in (STATE_INIT, STATE_STOPPED) or message.run_id != self._run_id:
            if self.state not in (STATE_INIT, STATE_STOPPED):
                self._stop_test()
            self._run_id = message.run_id
            self.pool.new_run()
            self._new_lease()
            self.state = STATE_SPAWNING
            self.environment.events.test_start.fire(environment=self.environment)
        self.state = STATE_SPAWNING
        self.target_user_count = sum(message.targets.values())
        self._targets = dict(message.targets)
        self.pool.set_targets(message.targets, message.spread, message.spent, message.ended_seen)

    # --- the open model (--arrival-rate) and the rate cap (--max-rps) -----------------------
    def _arrivals(self, message: p.Arrivals) -> None:
        self._ready.wait()
        if self._stopper is not None and not self._stopper.dead:
            self._stopper.join()
        if message.host:
            self.environment.host = message.host
            for cls in self.environment.user_classes:
                cls.host = message.host
        self._apply_options(message.options)
        new_run = self.state in (STATE_INIT, STATE_STOPPED) or message.run_id != self._run_id
        if new_run:
            if self.state not in (STATE_INIT, STATE_STOPPED):
                self._stop_test()
                if self._stopper is not None:
                    self._stopper.join()
            self._run_id = message.run_id
            self.pool.new_run()
            self.state = STATE_SPAWNING
            self.environment.events.test_start.fire(environment=self.environment)
        if self.open_pool is None:
            self.open_pool = OpenPool(
                self.environment,
                self.environment.user_classes_by_name,
                self.stats_recorder.record_dropped_arrival,
            )
            self.open_pool.on_stop_test = self._stop_test_raised
        segment = Segment(message.start, message.position, message.rate)
        share = Share(segment, message.slot, message.slots)
        self.target_user_count = message.ceiling
        self.open_pool.set_share(share, message.ceiling, message.weights)
        if message.end:
            self.open_pool.end_at(message.end)  # -t: the schedule's end, known from the start
        if new_run:
            # no ramp in the open model: users start as arrivals need them
            self.state = STATE_RUNNING
            self.environment.events.spawning_complete.fire(user_count=self.user_count)

    def _rate_cap(self, message: p.RateCap) -> None:
        share = Share(Segment(message.start, message.position, message.rate), message.slot, message.slots)
        if self.rate_gate is None:
            self.rate_gate = self.environment.rate_gate = RateGate()
        self.rate_gate.add(share)

    # --- users that end themselves, StopTest, -i/--iterations -------------------------------
    def _user_ended(self, user: Any) -> None:
        ended_by = user._lifecycle.ended_by
        if isinstance(ended_by, StopTest):
            self._stop_test_raised(str(ended_by) or "StopTest raised by a user")
        if not self._ended_pending:
            # one message for all the users that end in this turn of the hub
            self._ended_pending = True
            gevent.get_hub().loop.run_callback(self._send_ended)

    def _send_ended(self) -> None:
        self._ended_pending = False
        self._send(p.UsersEnded(self._run_id, dict(self.pool.ended)))

    def _stop_test_raised(self, reason: str) -> None:
        log.error("%s", reason)
        log.warning("Stopping the test (StopTest)")
        self._send(p.StopTestRequest(self._run_id, reason[:2000]))

    def _new_lease(self) -> None:
        if not self._iterations:
            return
        run_id = self._run_id
        lease = TaskRunLease(
            lambda count: self._send(p.IterationsWanted(run_id, count)),
            lambda: self.pool.user_count,
        )
        lease.on_exhausted = lambda: gevent.spawn(self._iterations_exhausted, lease, run_id)
        self.lease = self.environment.task_lease = lease

    def _iterations_exhausted(self, lease: TaskRunLease, run_id: int) -> None:
        """This worker's share of -i is used up: users waiting stop now, those in a task once
        it is over; then the master learns this worker is done."""
        self.pool.stop_all(timeout=IN_TASK_MAX)
        if run_id == self._run_id:
            self._send_stats()
            self._send(p.IterationsDone(run_id, lease.ran))

    def _spawning_complete(self, counts: dict[str, int]) -> None:
        if self.state != STATE_SPAWNING:
            return
        self.state = STATE_RUNNING
        self.environment.events.spawning_complete.fire(user_count=sum(counts.values()))
        self._send(p.SpawningComplete(counts))

    def _stop_test(self) -> bool:
        """Stop every user in the background; False when there was nothing to stop."""
        if self._stopper is not None and not self._stopper.dead:
            return True
        if self.state in (STATE_INIT, STATE_STOPPED) and not self.user_count:
            return False
        self.environment.events.test_stopping.fire(environment=self.environment)
        self.state = STATE_STOPPING
        self._stopper = gevent.spawn(self._stop_users)
        return True

    def _stop_users(self) -> None:
        if self.open_pool is not None:
            self.open_pool.stop_all()
        self.pool.stop_all()
        self.state = STATE_STOPPED
        # the final delta goes before "stopped", so the master has everything when it sees it
        self._send_stats()
        self.environment.events.test_stop.fire(environment=self.environment)
        self._send(p.Stopped(self._run_id))

    def _send_stats(self) -> None:
        self._seq += 1
        extra: dict[str, Any] = {}
        self.environment.events.report_to_master.fire(client_id=self.client_id, data=extra)
        delta = self.stats_recorder.take_delta()
        self.local_stats.merge(self.client_id, delta)
        self._send(p.StatsReport(self._seq, delta.to_wire(), self._counts(), extra))

    def _stats_loop(self) -> None:
        while True:
            gevent.sleep(self.stats_interval)
            if self._connected.is_set():
                self._send_stats()

    def _usage_loop(self) -> None:
        """events.usage_monitor every 10 s, and cpu_warning while above the threshold, as in
        Locust (the log warning and the master's metric come from the heartbeat's samples)."""
        import psutil

        process = psutil.Process()
        process.cpu_percent()
        while True:
            gevent.sleep(USAGE_MONITOR_INTERVAL)
            cpu = process.cpu_percent()
            events = self.environment.events
            if cpu > self.cpu.threshold:
                events.cpu_warning.fire(environment=self.environment, cpu_usage=cpu)
            events.usage_monitor.fire(
                environment=self.environment, cpu_usage=cpu, memory_usage=process.memory_info().rss
            )

    def _trim_loop(self) -> None:
        while release_free_memory():
            gevent.sleep(TRIM_INTERVAL)

    def _heartbeat_loop(self) -> None:
        while True:
            gevent.sleep(self.heartbeat_interval)
            cpu = self.cpu.sample()
            self._check_cpu(cpu)
            if not self._connected.is_set():
                continue
            self.log_forwarder.flush_dropped()
            self._send(p.Heartbeat(self.state, cpu, self.user_count))
            if time.monotonic() - self._last_master_seen > self.heartbeat_timeout:
                self._master_lost()

    def _check_cpu(self, cpu: float) -> None:
        if self.cpu.saturated and not self._cpu_warned:
            self._cpu_warned = True
            self.cpu_warning_emitted = True
            log.warning(
                "Worker %s is using %.0f%% CPU: its response times and rates may be skewed; "
                "add workers or reduce users per worker",
                self.client_id,
                cpu,
            )
            self._send(p.CpuWarning(cpu))
        elif not self.cpu.saturated and cpu < self.cpu.threshold - 10:
            self._cpu_warned = False

    def _master_lost(self) -> None:
        log.warning(
            "Lost the master at %s (silent for %.0f s): stopping users",
            self.endpoint,
            self.heartbeat_timeout,
        )
        self._connected.clear()
        self._stop_test()
        if not self.remote:
            self._exit_code = 1
            self._quit.set()
            return
        gevent.spawn(self._reconnect)

    def _reconnect(self) -> None:
        if self._stopper is not None:
            self._stopper.join()
        log.warning("Reconnecting to the master at %s with backoff ...", self.endpoint)
        # the first hello goes on the same socket, behind the final delta still queued there
        # (a master that declared this worker lost merges it once); _connect opens a fresh
        # socket if no welcome comes
        if self._connect(None):
            self._last_master_seen = time.monotonic()
            self.state = STATE_INIT
            log.info("Reconnected to the master at %s", self.endpoint)
