"""Shared fixtures: an embedded target on loopback and lcore run as real processes, always cleaned up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lcore.target import Target

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def private_results_store(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every lcore process a test starts saves its runs in a store of the test's own (the
    variable --results-db reads), never in the user's default one."""
    path = tmp_path_factory.mktemp("results-store") / "results.db"
    monkeypatch.setenv("LCORE_RESULTS_DB", str(path))
    return path


@pytest.fixture
def target() -> Iterator[Target]:
    t = Target().start()
    try:
        yield t
    finally:
        t.stop()


def lcore_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "lcore.launcher.main", *args]


class LcoreProcess:
    """An lcore command line running in its own process group (killed whole at the end)."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        # not the harness's own PYTEST_* variables (xdist's worker id, PYTEST_ADDOPTS): lcore
        # loads pytest itself for pytest-style locustfiles, and would see a parallel run
        own = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        full_env = dict(own, PYTHONUNBUFFERED="1", **(env or {}))
        self.out_path = cwd / f"lcore-{time.monotonic_ns()}.out"
        self._out = open(self.out_path, "w+b")  # noqa: SIM115 - closed in kill()
        self.proc = subprocess.Popen(
            lcore_command(*args), cwd=cwd, env=full_env, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.output
            if text in out:
                return out
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not seen within {timeout} s; output:\n{self.output[-4000:]}")

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"lcore did not exit within {timeout} s; output:\n{self.output[-4000:]}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        self._out.close()


@pytest.fixture
def run_lcore(tmp_path: Path) -> Iterator[Callable[..., LcoreProcess]]:
    started: list[LcoreProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> LcoreProcess:
        p = LcoreProcess(list(args), cwd or tmp_path, env)
        started.append(p)
        return p

    yield start
    for p in started:
        p.kill()


def wait_until(condition: Callable[[], object], timeout: float = 10.0, interval: float = 0.02) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout:.1f} s")
        time.sleep(interval)


# Tests that measure time or CPU: they run alone, after the others (run-tests.sh runs the rest
# two at a time, since most of the suite waits on real runs of a few seconds).
SERIAL_FILES = {
    "test_open_model.py": "rates within 1% and lag within 5% of a schedule",
    "test_corrected.py": "corrected percentiles within 5% of a stalling target's truth",
    "test_netns.py": "freezes and cut links timed against heartbeats",
    "test_containers.py": "image builds and a Docker engine of its own",
    "test_faults.py": "SIGSTOP/SIGKILL timed against heartbeats",
    "test_security_low.py": "waits and give-ups timed in seconds",
}
SERIAL_TESTS = {
    "test_cpu_bound_worker_warns": "a worker must saturate a core",
    "test_waiting_users_hand_their_greenlets_back_and_wake_up": "300 users parked within 0.3 s",
    "test_users_that_stop_themselves_are_never_replaced": "a 1 s ramp inside a 6 s run",
    "test_the_first_user_starts_at_once": "requests within a 1 s run",
    "test_a_remote_worker_quit_by_the_master_exits_after_it": "two processes' exit times",
    "test_healthz_answers_while_slow_connections_outnumber_the_descriptors": "1,500 connections",
    "test_locustfile_code_on_the_master_never_stalls_it": "the master's loop timing",
    "test_a_receiver_that_never_answers_does_not_hold_up_the_loop": "the master's loop timing",
    "test_a_scrape_over_a_thousand_names_does_not_hold_the_event_loop": "the loop's stalls",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        name = getattr(item, "originalname", item.name)
        if Path(str(item.fspath)).name in SERIAL_FILES or name in SERIAL_TESTS:
            item.add_marker(pytest.mark.serial)
