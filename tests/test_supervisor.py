"""The launcher's supervisor in memory: fake processes on a fake clock, signals queued rather
than sent (as uvicorn's supervisor tests do). Each test runs in milliseconds; the real forks
and signals are covered by tests/test_engine.py and tests/test_faults.py."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Iterator

import pytest

from lcore.launcher.supervisor import EXIT_FATAL, MAX_RESTARTS_PER_MINUTE, Child, Supervisor


def exited(code: int) -> int:
    """The wait status of a process that exited with ``code``."""
    return code << 8


def killed(signum: int) -> int:
    """The wait status of a process killed by ``signum``."""
    return signum


assert os.WEXITSTATUS(exited(3)) == 3 and os.WTERMSIG(killed(9)) == 9


class FakeProcesses:
    """Children that live in a dict; time that moves only when the supervisor sleeps.

    ``at(t, action)`` runs ``action`` once the fake time reaches ``t``; ``answers_term[role]``
    is what a child of that role does on SIGTERM (exit with that status, or None: ignore it).
    """

    def __init__(self) -> None:
        self.now = 0.0
        self._next_pid = 1000
        self.alive: dict[int, Child] = {}
        self._ended: dict[int, int] = {}  # pid -> wait status, not reaped yet
        self.forks: list[tuple[str, int, int]] = []  # (role, index, pid)
        self.sent: list[tuple[str, int, int]] = []  # (role, pid, signal)
        self.answers_term: dict[str, int | None] = {"master": exited(0), "worker": exited(0)}
        self.on_fork: Callable[[Child], None] | None = None
        self._schedule: list[tuple[float, Callable[[], None]]] = []

    # --- the Processes protocol ----------------------------------------------------------
    def fork(self, child: Child, parent_pid: int) -> int:
        self._next_pid += 1
        child.pid = self._next_pid
        self.alive[child.pid] = child
        self.forks.append((child.role, child.index, child.pid))
        if self.on_fork is not None:
            self.on_fork(child)
        return child.pid

    def waitpid(self, pid: int, options: int) -> tuple[int, int]:
        if pid == -1:
            if self._ended:
                first = next(iter(self._ended))
                return first, self._ended.pop(first)
            if not self.alive:
                raise ChildProcessError
        elif pid in self._ended:
            return pid, self._ended.pop(pid)
        elif pid not in self.alive:
            raise ChildProcessError
        assert options & os.WNOHANG, "a blocking wait on a live child would never return here"
        return 0, 0

    def kill(self, pid: int, signum: int) -> None:
        child = self.alive.get(pid)
        if child is None:
            if pid in self._ended:
                return  # a zombie takes signals and ignores them
            raise ProcessLookupError(pid)
        self.sent.append((child.role, pid, signum))
        if signum == signal.SIGKILL:
            self.end(pid, killed(signal.SIGKILL))
        elif signum == signal.SIGTERM and self.answers_term[child.role] is not None:
            self.end(pid, self.answers_term[child.role] or 0)

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        due = [(t, a) for t, a in self._schedule if t <= self.now]
        self._schedule = [(t, a) for t, a in self._schedule if t > self.now]
        for _, action in sorted(due, key=lambda e: e[0]):
            action()
        assert self.now < 600, "the supervisor never finished (10 fake minutes)"

    def monotonic(self) -> float:
        return self.now

    # --- what tests script ---------------------------------------------------------------
    def at(self, when: float, action: Callable[[], None]) -> None:
        self._schedule.append((when, action))

    def end(self, pid: int, status: int) -> None:
        del self.alive[pid]
        self._ended[pid] = status

    def pid_of(self, role: str, index: int) -> int:
        return next(pid for pid, c in self.alive.items() if c.role == role and c.index == index)

    def forks_of(self, role: str, index: int) -> list[int]:
        return [pid for r, i, pid in self.forks if (r, i) == (role, index)]

    def signals_to(self, role: str) -> list[int]:
        return [s for r, _, s in self.sent if r == role]


def never() -> int:
    raise AssertionError("a fake child's target never runs")


@pytest.fixture(autouse=True)
def _keep_signal_handlers() -> Iterator[None]:
    """Supervisor.run() installs its handlers for good (the launcher exits after it)."""
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    saved = {s: signal.getsignal(s) for s in handled}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def local_run(workers: int = 2) -> tuple[Supervisor, FakeProcesses]:
    """A master already started (it said it listens) and its local workers, not forked yet."""
    fake = FakeProcesses()
    master = Child("master", 0, never)
    fake.fork(master, os.getpid())
    supervisor = Supervisor(master, [Child("worker", i, never) for i in range(workers)], processes=fake)
    return supervisor, fake


def test_first_signal_asks_the_master_to_stop_and_its_exit_code_ends_the_run(caplog) -> None:
    supervisor, fake = local_run()
    fake.answers_term["master"] = exited(2)  # it wrote its report: some requests failed
    fake.at(0.2, lambda: supervisor.signal_queue.append(signal.SIGINT))
    with caplog.at_level(logging.INFO, logger="lcore.launcher"):
        assert supervisor.run() == 2
    assert fake.signals_to("master") == [signal.SIGTERM]
    # the master tells its workers to quit; the ones still there when it has gone get SIGTERM
    assert fake.signals_to("worker") == [signal.SIGTERM, signal.SIGTERM]
    assert not fake.alive and fake.now < 1
    assert "Shutting down (press Ctrl-C again to stop at once)" in caplog.text


def test_a_second_signal_kills_everything_at_once(caplog) -> None:
    supervisor, fake = local_run()
    fake.answers_term["master"] = None  # busy writing a huge report
    fake.at(0.2, lambda: supervisor.signal_queue.append(signal.SIGINT))
    fake.at(0.4, lambda: supervisor.signal_queue.append(signal.SIGINT))
    with caplog.at_level(logging.INFO, logger="lcore.launcher"), pytest.raises(SystemExit) as exit_:
        supervisor.run()
    assert exit_.value.code == 128 + signal.SIGINT
    assert fake.signals_to("master") == [signal.SIGTERM, signal.SIGKILL]
    assert fake.signals_to("worker") == [signal.SIGKILL, signal.SIGKILL]
    assert not fake.alive and all(c.pid == 0 for c in supervisor.workers)
    assert "Stopping at once" in caplog.text


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_are_queued_like_ctrl_c(signum: int) -> None:
    supervisor, fake = local_run()
    fake.at(0.1, lambda: supervisor._record_signal(signum, None))  # what the handler does
    assert supervisor.run() == 0
    assert fake.signals_to("master") == [signal.SIGTERM]


def test_a_killed_local_worker_is_restarted_and_reported_with_its_pid(caplog) -> None:
    supervisor, fake = local_run()
    fake.at(0.5, lambda: fake.end(fake.pid_of("worker", 1), killed(signal.SIGKILL)))
    fake.at(1.0, lambda: fake.end(fake.pid_of("master", 0), exited(0)))
    with caplog.at_level(logging.INFO, logger="lcore.launcher"):
        assert supervisor.run() == 0
    first, second = fake.forks_of("worker", 1)
    assert first != second
    assert f"Worker process 1 (pid {first}) ended: killed by SIGKILL" in caplog.text
    assert "Restarting worker process 1" in caplog.text
    assert len(fake.forks_of("worker", 0)) == 1


def test_a_worker_that_keeps_dying_is_restarted_ten_times_a_minute_then_left_dead(caplog) -> None:
    supervisor, fake = local_run(workers=1)

    def crash_soon(child: Child) -> None:
        if child.role == "worker":
            fake.at(fake.now + 0.1, lambda pid=child.pid: fake.end(pid, exited(1)))

    fake.on_fork = crash_soon
    fake.at(5.0, lambda: fake.end(fake.pid_of("master", 0), exited(0)))
    with caplog.at_level(logging.INFO, logger="lcore.launcher"):
        assert supervisor.run() == 0
    assert len(fake.forks_of("worker", 0)) == 1 + MAX_RESTARTS_PER_MINUTE
    assert "Worker process 0 keeps dying; not restarting it again" in caplog.text


def test_a_worker_that_cannot_start_ends_the_run_with_exit_code_1() -> None:
    supervisor, fake = local_run()
    fake.at(0.3, lambda: fake.end(fake.pid_of("worker", 0), exited(EXIT_FATAL)))
    assert supervisor.run() == 1
    assert fake.signals_to("master") == [signal.SIGTERM]
    assert len(fake.forks_of("worker", 0)) == 1  # not restarted: it said why it could not start


def test_the_master_dying_stops_the_workers(caplog) -> None:
    supervisor, fake = local_run()
    fake.at(0.3, lambda: fake.end(fake.pid_of("master", 0), killed(signal.SIGKILL)))
    with caplog.at_level(logging.INFO, logger="lcore.launcher"):
        assert supervisor.run() == 128 + signal.SIGKILL
    assert fake.signals_to("worker") == [signal.SIGTERM, signal.SIGTERM]
    assert "The master process died (killed by SIGKILL)" in caplog.text


def test_workers_that_ignore_sigterm_get_sigkill_five_seconds_later() -> None:
    supervisor, fake = local_run()
    fake.answers_term["worker"] = None
    fake.at(0.3, lambda: fake.end(fake.pid_of("master", 0), exited(0)))
    assert supervisor.run() == 0
    assert fake.signals_to("worker") == [signal.SIGTERM] * 2 + [signal.SIGKILL] * 2
    assert 5.3 <= fake.now < 6  # graceful for 5 s, then forceful


def test_on_a_worker_box_a_worker_that_exits_stays_down_and_a_killed_one_is_restarted() -> None:
    fake = FakeProcesses()
    supervisor = Supervisor(None, [Child("worker", i, never) for i in range(2)], processes=fake)
    # worker 0 was refused by the master (said why, exit 1); worker 1 was OOM-killed
    fake.at(0.2, lambda: fake.end(fake.pid_of("worker", 0), exited(1)))
    fake.at(0.4, lambda: fake.end(fake.pid_of("worker", 1), killed(signal.SIGKILL)))
    fake.at(0.6, lambda: fake.end(fake.pid_of("worker", 1), exited(0)))
    assert supervisor.run() == 1
    assert len(fake.forks_of("worker", 0)) == 1 and len(fake.forks_of("worker", 1)) == 2


def test_on_a_worker_box_ctrl_c_stops_the_workers() -> None:
    fake = FakeProcesses()
    supervisor = Supervisor(None, [Child("worker", i, never) for i in range(2)], processes=fake)
    fake.at(0.2, lambda: supervisor.signal_queue.append(signal.SIGINT))
    assert supervisor.run() == 0
    assert fake.signals_to("worker") == [signal.SIGTERM, signal.SIGTERM]
    assert len(fake.forks) == 2  # none restarted while stopping
