"""Forks the master and the workers and watches them (the launcher never runs an event loop).

Signal handlers only record the signal (``signal_queue``); the supervisor's loop acts on it.
First Ctrl-C or SIGTERM: the master is asked to stop the test and quit (it writes the final
report and tells its workers to quit). Second: everything is killed at once. A local worker
that dies is restarted; on a --worker box (no master here), one killed by a signal is.
Children die with the launcher, whatever kills it (PR_SET_PDEATHSIG).

What the supervisor does to processes (fork, wait, signal) and time goes through one
``Processes`` object: ``SystemProcesses`` for real, a fake in tests, which queue a signal on
``signal_queue`` instead of sending one (uvicorn's supervisor tests do the same).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger("lcore.launcher")

PR_SET_PDEATHSIG = 1
# A worker that exits with this could not start as asked (an init listener raised): it is not
# restarted, and the run ends with exit code 1.
EXIT_FATAL = 78
# A local worker that keeps dying this fast is not restarted forever.
MAX_RESTARTS_PER_MINUTE = 10


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"killed by {name}"
    return f"exit code {os.WEXITSTATUS(status)}"


def exit_code_of(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


@dataclass
class Child:
    role: str  # "master" or "worker"
    index: int
    target: Callable[[], int]
    pid: int = 0
    restarts: list[float] = field(default_factory=list)


def fork_child(child: Child, ready_fd: int | None = None, parent_pid: int | None = None) -> int:
    """Fork and run ``child.target`` in the new process; returns the pid (in the parent)."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        child.pid = pid
        return pid
    # --- in the child ---
    code = 1
    try:
        _die_with_parent()
        if parent_pid is not None and os.getppid() != parent_pid:
            os._exit(1)  # the launcher died between fork and prctl
        # Ctrl-C reaches the whole process group; only the launcher acts on it
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        code = child.target()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class Processes(Protocol):
    """What the supervisor does to processes, and its clock."""

    def fork(self, child: Child, parent_pid: int) -> int:
        """Start ``child.target`` in a new process, set ``child.pid`` and return it."""
        ...

    def waitpid(self, pid: int, options: int) -> tuple[int, int]:
        """``os.waitpid``: (pid, wait status), (0, 0) if none has ended (WNOHANG);
        ChildProcessError when there is no such child (no child at all, for -1)."""
        ...

    def kill(self, pid: int, signum: int) -> None:
        """``os.kill``: ProcessLookupError if it is gone."""
        ...

    def sleep(self, seconds: float) -> None: ...

    def monotonic(self) -> float: ...


class SystemProcesses:
    """The real ones."""

    def fork(self, child: Child, parent_pid: int) -> int:
        return fork_child(child, parent_pid=parent_pid)

    def waitpid(self, pid: int, options: int) -> tuple[int, int]:
        return os.waitpid(pid, options)

    def kill(self, pid: int, signum: int) -> None:
        os.kill(pid, signum)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def monotonic(self) -> float:
        return time.monotonic()


class Supervisor:
    def __init__(
        self,
        master: Child | None,
        workers: list[Child],
        *,
        restart_workers: bool = True,
        processes: Processes | None = None,
    ) -> None:
        self.master = master
        self.workers = workers
        self.restart_workers = restart_workers
        self.processes: Processes = processes or SystemProcesses()
        # signals received and not acted on yet, oldest first (the handlers only append here)
        self.signal_queue: list[int] = []
        self._stopping = False
        self._fatal = False  # a worker exited with EXIT_FATAL
        self._pid = os.getpid()

    def _record_signal(self, signum: int, _frame: object) -> None:
        self.signal_queue.append(signum)

    def _children(self) -> list[Child]:
        return [c for c in ([self.master] if self.master else []) + self.workers if c.pid]

    def start_master(self) -> bool:
        """Fork the master and wait until it says it is listening (or dies trying)."""
        assert self.master is not None
        read_fd, write_fd = os.pipe()
        os.set_inheritable(write_fd, True)
        target = self.master.target

        def run_master() -> int:
            os.close(read_fd)
            os.environ["LCORE_READY_FD"] = str(write_fd)
            return target()

        self.master.target = run_master
        self.processes.fork(self.master, self._pid)
        self.master.target = target
        os.close(write_fd)
        try:
            # one byte once it listens; end of file if it exits first
            ready = os.read(read_fd, 1)
        finally:
            os.close(read_fd)
        return bool(ready)

    def run(self) -> int:
        """Supervise until the master (or, without a master, every worker) has exited."""
        # kept until the launcher exits: a Ctrl-C while it cleans up is recorded, not raised
        signal.signal(signal.SIGINT, self._record_signal)
        signal.signal(signal.SIGTERM, self._record_signal)
        signal.signal(signal.SIGHUP, self._record_signal)
        processes = self.processes
        for worker in self.workers:
            if not worker.pid:
                processes.fork(worker, self._pid)
        exit_code = 0
        try:
            while True:
                self._handle_signals()
                try:
                    pid, status = processes.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    return exit_code
                if pid == 0:
                    processes.sleep(0.05)
                    continue
                if self.master is not None and pid == self.master.pid:
                    self.master.pid = 0
                    exit_code = exit_code_of(status)
                    if os.WIFSIGNALED(status):
                        log.error("The master process died (%s)", describe_exit(status))
                    self._stop_workers()
                    # a worker that could not start (it may have exited just before the master)
                    return max(exit_code, 1) if self._fatal else exit_code
                dead = next((w for w in self.workers if w.pid == pid), None)
                if dead is None:
                    continue
                dead_pid, dead.pid = dead.pid, 0
                code = exit_code_of(status)
                if code == EXIT_FATAL:
                    # it said why (an init listener raised): the run cannot go on as asked
                    code = 1
                    exit_code = 1
                    self._fatal = True
                    if not self._stopping:
                        self._stop_everything()
                restarted = (
                    code != 0 and not self._stopping and self._worker_died(dead, status, dead_pid)
                )
                if self.master is None and not restarted:
                    exit_code = max(exit_code, code)
                if self.master is None and not any(w.pid for w in self.workers):
                    return exit_code
        finally:
            self._kill_all()

    def _worker_died(self, worker: Child, status: int, pid: int) -> bool:
        """Say so, and restart it if it should be; True if it was."""
        log.warning("Worker process %d (pid %d) ended: %s", worker.index, pid, describe_exit(status))
        if not self.restart_workers:
            return False
        if self.master is None and not os.WIFSIGNALED(status):
            # workers only (a remote box): one that exited by itself said why (the master is
            # gone, refused it, never answered); restarting it would only say that again. One
            # killed (SIGKILL, the OOM killer, a crash) is restarted, as a local one is.
            return False
        now = self.processes.monotonic()
        worker.restarts = [t for t in worker.restarts if now - t < 60] + [now]
        if len(worker.restarts) > MAX_RESTARTS_PER_MINUTE:
            log.error("Worker process %d keeps dying; not restarting it again", worker.index)
            return False
        log.info("Restarting worker process %d", worker.index)
        self.processes.fork(worker, self._pid)
        return True

    def _stop_everything(self) -> None:
        self._stopping = True
        if self.master is not None and self.master.pid:
            self._signal(self.master.pid, signal.SIGTERM)
        else:
            self._stop_workers()

    def _handle_signals(self) -> None:
        while self.signal_queue:
            signum = self.signal_queue.pop(0)
            if not self._stopping:
                self._stopping = True
                log.info("Shutting down (press Ctrl-C again to stop at once)")
                target = self.master if self.master and self.master.pid else None
                if target is not None:
                    self._signal(target.pid, signal.SIGTERM)
                else:
                    self._stop_workers()
            else:
                log.warning("Stopping at once")
                self._kill_all()
                raise SystemExit(128 + signum)

    def _stop_workers(self, timeout: float = 5.0) -> None:
        """The master has gone: workers that are still here get SIGTERM, then SIGKILL."""
        self._stopping = True
        processes = self.processes
        alive = [w for w in self.workers if w.pid]
        for w in alive:
            self._signal(w.pid, signal.SIGTERM)
        deadline = processes.monotonic() + timeout
        while alive and processes.monotonic() < deadline:
            for w in alive:
                try:
                    pid, status = processes.waitpid(w.pid, os.WNOHANG)
                except ChildProcessError:
                    pid, status = w.pid, 0
                if pid:
                    w.pid = 0
                    if exit_code_of(status) == EXIT_FATAL:
                        self._fatal = True
            alive = [w for w in alive if w.pid]
            processes.sleep(0.02)

    def _kill_all(self) -> None:
        for child in self._children():
            self._signal(child.pid, signal.SIGKILL)
            try:
                self.processes.waitpid(child.pid, 0)
            except ChildProcessError:
                pass
            child.pid = 0

    def _signal(self, pid: int, signum: int) -> None:
        try:
            self.processes.kill(pid, signum)
        except ProcessLookupError:
            pass


def notify_ready() -> None:
    """Called in the master once it listens: the launcher may now fork workers."""
    fd = os.environ.pop("LCORE_READY_FD", None)
    if fd is not None:
        try:
            os.write(int(fd), b"1")
            os.close(int(fd))
        except OSError:
            pass
