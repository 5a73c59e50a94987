"""A remote worker that the master quits at the end of a run exits after the master: tools that
pass on the master's exit code (`docker compose up --exit-code-from master`) lose it when a
worker's exit makes them stop a master that is still writing its reports."""

from __future__ import annotations

import signal
import time
from typing import Any

from conftest import wait_until
from test_engine import common, free_port, write

LOCUSTFILE = """
import time
from locust import User, constant, events, task
from locust.runners import MasterRunner

class Quiet(User):
    wait_time = constant(0.1)

    @task
    def nothing(self):
        pass

@events.quitting.add_listener
def slow_final_report(environment, **kwargs):
    if isinstance(environment.runner, MasterRunner):
        time.sleep(2)  # a master still busy after it has quit its workers
"""


def exit_times(*procs, timeout: float) -> list[float]:
    """When each process was first seen to have exited (polled every 10 ms)."""
    ended: dict[int, float] = {}
    deadline = time.monotonic() + timeout
    while len(ended) < len(procs):
        assert time.monotonic() < deadline, "processes still running"
        for i, proc in enumerate(procs):
            if i not in ended and proc.proc.poll() is not None:
                ended[i] = time.monotonic()
        time.sleep(0.01)
    return [ended[i] for i in range(len(procs))]


def master_and_worker(tmp_path, run_lcore, source: str) -> tuple[Any, Any]:
    """A headless master (2 users, 1 s) and one remote worker over TCP."""
    lf = write(tmp_path, source)
    port = free_port()
    master = run_lcore(
        "-f", str(lf), "--master", "--headless", "--expect-workers", "1", "-u", "2", "-r", "2",
        "-t", "1s", *common(port),
    )  # fmt: skip
    worker = run_lcore("-f", str(lf), "--worker", "--master-host", "127.0.0.1", "--master-port", str(port))
    return master, worker


def test_a_remote_worker_quit_by_the_master_exits_after_it(tmp_path, run_lcore) -> None:
    master, worker = master_and_worker(tmp_path, run_lcore, LOCUSTFILE)
    master_ended, worker_ended = exit_times(master, worker, timeout=60)
    assert master.proc.returncode == 0, master.output
    assert worker.proc.returncode == 0, worker.output
    # after the master, and not long after (its connection closing tells the worker)
    assert master_ended <= worker_ended < master_ended + 5, (master_ended, worker_ended)


def test_sigterm_ends_a_worker_waiting_for_its_master(tmp_path, run_lcore) -> None:
    slow = LOCUSTFILE.replace("time.sleep(2)", "print('master quitting', flush=True); time.sleep(15)")
    master, worker = master_and_worker(tmp_path, run_lcore, slow)
    wait_until(lambda: "master quitting" in master.output, timeout=30)
    assert worker.proc.poll() is None, worker.output  # waiting for the master to go
    worker.proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert worker.proc.wait(10) == 0, worker.output
    assert time.monotonic() - started < 3
    assert master.proc.poll() is None  # still in its quitting listener
