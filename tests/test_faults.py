"""Faults with real processes: killed and frozen workers, a killed master; nothing lost silently."""

from __future__ import annotations

import os
import re
import signal
import textwrap

import psutil
import pytest
from conftest import wait_until
from test_engine import BASIC, free_port, read_stats_csv

pytestmark = pytest.mark.integration


def locustfile(tmp_path):
    lf = tmp_path / "locustfile.py"
    lf.write_text(textwrap.dedent(BASIC))
    return lf


def worker_pids(launcher_pid: int, expected: int) -> list[int]:
    """The launcher's children minus the master (the oldest)."""
    launcher = psutil.Process(launcher_pid)
    children = wait_until(lambda: len(launcher.children()) == expected + 1 and launcher.children(), timeout=20)
    master = min(children, key=lambda c: c.create_time())
    return [c.pid for c in children if c.pid != master.pid]


def test_sigkill_local_worker_is_restarted_and_the_loss_reported(tmp_path, target, run_lcore) -> None:
    lf = locustfile(tmp_path)
    proc = run_lcore(
        "-f", str(lf), "-H", target.url, "--headless", "--processes", "2", "-u", "6", "-r", "100", "-t", "9s",
        "--master-bind-port", str(free_port()), "--no-web",
    )  # fmt: skip
    proc.wait_for_output("Ramping to 6 users", timeout=30)
    pids = worker_pids(proc.proc.pid, 2)
    # both workers run users before one dies: each of the 6 users has its own connection
    wait_until(lambda: target.connections >= 6, timeout=20)
    os.kill(pids[0], signal.SIGKILL)
    proc.wait_for_output("Restarting worker process", timeout=10)
    proc.wait_for_output(" lost: silent for", timeout=10)
    # the restarted worker joins and gets users again
    out = proc.wait_for_output("connected", timeout=20)
    assert proc.wait(60) == 0, proc.output
    # the killed one at least (a worker starved of CPU on a loaded machine may join it)
    assert re.search(r"\b[1-9]\d* worker\(s\) lost", proc.output), out


def test_sigstop_worker_is_lost_then_rejoins_and_counts_stay_exact(tmp_path, target, run_lcore) -> None:
    lf = locustfile(tmp_path)
    port = free_port()
    prefix = tmp_path / "stop"
    master = run_lcore(
        "-f", str(lf), "-H", target.url, "--master", "--headless", "--expect-workers", "2", "-u", "6", "-r", "100",
        "-t", "14s", "--csv", str(prefix), "--master-bind-port", str(port), "--no-web",
    )  # fmt: skip
    workers = [
        run_lcore("-f", str(lf), "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)) for _ in range(2)
    ]
    master.wait_for_output("Ramping to 6 users", timeout=30)
    # both workers run users: each of the 6 users has its own connection
    wait_until(lambda: target.connections >= 6, timeout=20)
    frozen = psutil.Process(workers[0].proc.pid).children()[0]
    frozen.send_signal(signal.SIGSTOP)
    try:
        master.wait_for_output(" lost: silent for", timeout=10)
        # the other worker takes the frozen one's 3 users over: 3 new connections
        wait_until(lambda: target.connections >= 9, timeout=20)
    finally:
        frozen.send_signal(signal.SIGCONT)
    workers[0].wait_for_output("Reconnected to the master", timeout=20)
    master.wait_for_output("rejoined", timeout=10)
    assert master.wait(60) == 0, master.output
    for w in workers:
        assert w.wait(20) == 0, w.output
    rows = read_stats_csv(prefix)
    # the frozen worker's late delta was merged exactly once
    assert int(rows["Aggregated"]["Request Count"]) == sum(target.counts().values()) > 0


def test_remote_worker_reconnects_to_a_new_master(tmp_path, target, run_lcore) -> None:
    lf = locustfile(tmp_path)
    port = free_port()
    first = run_lcore("-f", str(lf), "-H", target.url, "--master", "--master-bind-port", str(port), "--no-web")
    worker = run_lcore("-f", str(lf), "--worker", "--master-host", "127.0.0.1", "--master-port", str(port))
    first.wait_for_output("connected", timeout=30)
    os.killpg(first.proc.pid, signal.SIGKILL)
    worker.wait_for_output("Lost the master", timeout=10)
    worker.wait_for_output("Reconnecting", timeout=10)
    prefix = tmp_path / "second"
    second = run_lcore(
        "-f", str(lf), "-H", target.url, "--master", "--headless", "--expect-workers", "1", "-u", "2", "-r", "10",
        "-t", "2s", "--csv", str(prefix), "--master-bind-port", str(port), "--no-web",
    )  # fmt: skip
    assert second.wait(60) == 0, second.output + worker.output
    assert worker.wait(20) == 0
    rows = read_stats_csv(prefix)
    assert int(rows["Aggregated"]["Request Count"]) == sum(target.counts().values()) > 0


def test_exhausted_file_descriptors_are_failures_not_crashes(tmp_path, target) -> None:
    import resource
    import subprocess

    from conftest import lcore_command

    lf = tmp_path / "locustfile.py"
    lf.write_text(
        textwrap.dedent(
            """
            from locust import HttpUser, task, constant

            class Slow(HttpUser):
                wait_time = constant(0.01)
                @task
                def slow(self):
                    self.client.get("/delay/1500")
            """
        )
    )
    result = subprocess.run(
        lcore_command("-f", str(lf), "-H", target.url, "--headless", "-u", "150", "-r", "150", "-t", "4s",
                      "--no-web", "--master-bind-port", str(free_port())),
        capture_output=True, text=True, timeout=90, cwd=tmp_path,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (80, 80)),
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 1, out  # failures were recorded: --exit-code-on-error's default
    assert "Too many open files" in out
    assert "Traceback" not in out
    assert "quit" in out  # the worker stayed up to the end and said goodbye
