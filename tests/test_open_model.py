"""The open model and the rate cap end to end: real processes, and the embedded target's own
counts as the truth (--arrival-rate, dropped arrivals, shape-driven rates, --max-rps)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from conftest import wait_until
from test_engine import free_port, write

pytestmark = pytest.mark.integration

# each request names the worker that sent it, so the target counts per worker too
OPEN = """
from locust import HttpUser, task, constant

class Visitor(HttpUser):
    wait_time = constant(30)  # never slept in the open model: the schedule decides

    @task
    def index(self):
        self.client.get(f"/w{self.environment.runner.worker_index}")
"""

# the worker counts what its pool hands to RequestStats.record_dropped_arrival, and writes it
# down when the test stops
DROPPED = """
import json, os
from locust import HttpUser, task, events

class Slow(HttpUser):
    @task
    def wait(self):
        self.client.get("/delay/200")

@events.init.add_listener
def count_dropped(environment, runner, **kwargs):
    recorder = getattr(runner, "stats_recorder", None)
    if recorder is None or not hasattr(runner, "worker_index"):
        return  # the master
    dropped = {}
    record = recorder.record_dropped_arrival

    def counting(user_class, count=1):
        dropped[user_class] = dropped.get(user_class, 0) + count
        record(user_class, count)

    recorder.record_dropped_arrival = counting

    @events.test_stop.add_listener
    def write(**kw):
        with open(f"dropped-{runner.worker_index}.json", "w") as f:
            json.dump(dropped, f)
"""


def run(run_lcore, lf: Path, target, *args: str, timeout: float = 90) -> str:
    proc = run_lcore(
        "-f", str(lf), "-H", target.url, "--headless", "--master-bind-port", str(free_port()),
        "--no-web", "--only-summary", *args,
    )  # fmt: skip
    code = proc.wait(timeout)
    assert code == 0, proc.output[-4000:]
    return proc.output


def per_worker(target) -> dict[str, int]:
    return {path: n for (_, path), n in target.counts().items()}


@pytest.mark.parametrize("processes", [1, 2])
def test_the_target_counts_rate_times_duration(tmp_path, target, run_lcore, processes) -> None:
    lf = write(tmp_path, OPEN)
    run(run_lcore, lf, target, "--arrival-rate", "300", "-t", "6s", "-u", "100", "--processes", str(processes))
    counts = per_worker(target)
    assert abs(sum(counts.values()) - 1800) <= 18, counts
    if processes == 2:
        # split exactly: every other arrival on each worker
        assert abs(counts["/w0"] - counts["/w1"]) <= 2, counts


def test_a_rate_below_the_number_of_workers_is_split_evenly(tmp_path, target, run_lcore) -> None:
    lf = write(tmp_path, OPEN)
    # 1.5 arrivals/s over 3 workers: each runs every third one, half a second apart in all
    run(run_lcore, lf, target, "--arrival-rate", "1.5", "-t", "6s", "-u", "10", "--processes", "3")
    counts = per_worker(target)
    assert 8 <= sum(counts.values()) <= 10, counts
    assert sorted(counts) == ["/w0", "/w1", "/w2"] and max(counts.values()) - min(counts.values()) <= 1


def test_dropped_arrivals_are_counted_when_the_ceiling_is_reached(tmp_path, target, run_lcore) -> None:
    lf = write(tmp_path, DROPPED)
    # 100/s on at most 10 users of 200 ms each: 50/s served, the rest dropped and counted
    out = tmp_path / "out.json"
    run(
        run_lcore, lf, target, "--arrival-rate", "100", "-t", "5s", "-u", "10", "--processes", "2",
        "--json-file", str(out), "--threshold", "dropped_arrivals<1000",
    )  # fmt: skip
    served = target.total
    dropped = sum(
        sum(json.loads((tmp_path / f"dropped-{i}.json").read_text()).values()) for i in range(2)
    )
    assert 200 <= served <= 260
    assert abs(served + dropped - 500) <= 5, (served, dropped)
    # the master's report: what the workers' recorders counted, per user class
    schedules = json.loads(out.read_text())["schedules"]
    assert schedules["Slow"]["dropped_arrivals"] == dropped
    assert schedules["Slow"]["scheduled_starts"] == served


def test_no_arrival_is_dropped_when_the_ceiling_allows_it(tmp_path, target, run_lcore) -> None:
    lf = write(tmp_path, DROPPED)
    # 100/s of 200 ms each needs about 20 users: 60 allow it
    run(run_lcore, lf, target, "--arrival-rate", "100", "-t", "4s", "-u", "60", "--processes", "2")
    dropped = [json.loads((tmp_path / f"dropped-{i}.json").read_text()) for i in range(2)]
    assert dropped == [{}, {}]
    assert abs(target.total - 400) <= 4


def test_a_shape_drives_the_arrival_rate(tmp_path, target, run_lcore) -> None:
    lf = write(
        tmp_path,
        OPEN
        + """
from lcore import ArrivalRate, LoadTestShape, RampingArrivalRate

class Steps(LoadTestShape):
    def tick(self):
        t = self.get_run_time()
        if t < 2.5:
            return ArrivalRate(100, users=50)
        if t < 5.5:
            return ArrivalRate(300, users=50)
        return None
""",
    )
    run(run_lcore, lf, target, "--processes", "2")
    # ticks at 0..5 s: 100/s for 3 s, then 300/s for 3 s
    assert abs(target.total - 1200) <= 12, target.counts()


def test_a_ramping_arrival_rate_adds_up_to_its_integral(tmp_path, target, run_lcore) -> None:
    lf = write(
        tmp_path,
        OPEN
        + """
from lcore import RampingArrivalRate

class Ramp(RampingArrivalRate):
    stages = [(3, 300), (2, 300), (2, 100)]
    users = 50
""",
    )
    run(run_lcore, lf, target, "--processes", "1")
    # 0 -> 300 over 3 s (450), 300 for 2 s (600), 300 -> 100 over 2 s (400)
    assert abs(target.total - 1450) <= 15, target.counts()


CLOSED = """
from locust import HttpUser, task, constant

class Eager(HttpUser):
    wait_time = constant(0)

    @task
    def index(self):
        self.client.get("/")
"""


def measured_rate(target, proc, seconds: float = 3.0) -> float:
    """The target's own rate over ``seconds``, once requests have flowed for a second."""
    wait_until(lambda: target.total > 0 or proc.proc.poll() is not None, timeout=60)
    time.sleep(1.0)  # past the start: users starting, connections opening
    c1, t1 = target.total, time.monotonic()
    time.sleep(seconds)
    c2, t2 = target.total, time.monotonic()
    return (c2 - c1) / (t2 - t1)


def start(run_lcore, lf: Path, target, *args: str):
    return run_lcore(
        "-f", str(lf), "-H", target.url, "--headless", "--master-bind-port", str(free_port()),
        "--no-web", "--only-summary", *args,
    )  # fmt: skip


@pytest.mark.parametrize("processes", [1, 2])
def test_max_rps_caps_a_closed_model_test(tmp_path, target, run_lcore, processes) -> None:
    lf = write(tmp_path, CLOSED)
    # 100 users without waits would send thousands a second; the cap holds them, each waiting
    # for a slot of its own: 0.4 s of slots reserved ahead, so a worker the machine pauses
    # for less than that sends every slot still
    proc = start(run_lcore, lf, target, "-u", "100", "-r", "1000", "-t", "6s", "--max-rps", "250",
                 "--processes", str(processes))  # fmt: skip
    rate = measured_rate(target, proc)
    assert proc.wait(60) == 0, proc.output[-3000:]
    assert abs(rate - 250) <= 2.5, rate
    assert target.total <= 250 * 6 + processes  # never above the cap, start to end


def test_max_rps_caps_an_open_model_test(tmp_path, target, run_lcore) -> None:
    lf = write(tmp_path, OPEN)
    proc = start(run_lcore, lf, target, "--arrival-rate", "400", "-u", "200", "-t", "6s",
                 "--max-rps", "150", "--processes", "2")  # fmt: skip
    rate = measured_rate(target, proc)
    assert proc.wait(60) == 0, proc.output[-3000:]
    assert abs(rate - 150) <= 1.5, rate
    assert target.total <= 150 * 6 + 2


def test_a_worker_joining_mid_run_takes_its_share_and_the_count_stays_exact(
    tmp_path, target, run_lcore
) -> None:
    lf = write(tmp_path, OPEN)
    port = free_port()
    master = run_lcore(
        "-f", str(lf), "-H", target.url, "--master", "--headless", "--expect-workers", "1",
        "--arrival-rate", "300", "-u", "100", "-t", "6s", "--master-bind-port", str(port),
        "--no-web", "--only-summary",
    )  # fmt: skip
    worker = ["-f", str(lf), "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    first = run_lcore(*worker)
    wait_until(lambda: target.total >= 300 or master.proc.poll() is not None, timeout=60)
    second = run_lcore(*worker)
    assert master.wait(90) == 0, master.output[-3000:]
    assert first.wait(20) == 0 and second.wait(20) == 0
    counts = per_worker(target)
    assert abs(sum(counts.values()) - 1800) <= 18, counts
    # the second worker joined after a second or more: it ran every other arrival from then on
    assert 300 <= counts["/w1"] <= counts["/w0"] - 300, counts
# -- latency from the intended start: a stalling target, the truth from the schedule ------


def csv_row(path: Path, name: str = "Aggregated") -> dict[str, str]:
    import csv

    with open(path, newline="") as f:
        return next(row for row in csv.DictReader(f) if row["Name"] == name)


def nearest_rank(values: list[float], q: float) -> float:
    import math

    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


STALLED = """
from locust import HttpUser, task

class Visitor(HttpUser):
    @task
    def index(self):
        self.client.get("/")
"""


@pytest.mark.parametrize("processes", [1, 2])
def test_arrivals_against_a_stalling_target_report_the_truth(tmp_path, run_lcore, processes) -> None:
    from lcore.target import Stall, Target

    rate = 200
    stall = Stall(every=2.0, length=0.5)  # a quarter of the arrivals fall into a stall
    lf = write(tmp_path, STALLED)
    prefix = tmp_path / "run"
    with Target(stall=stall) as target:
        # 200/s, each held up to 0.5 s by a stall: about 100 users busy at once, 400 allowed;
        # the run fails (exit code 4) if a single arrival was dropped
        proc = run_lcore(
            "-f", str(lf), "-H", target.url, "--headless", "--arrival-rate", str(rate), "-u", "400",
            "-t", "9s", "--processes", str(processes), "--csv", str(prefix), "--no-web",
            "--master-bind-port", str(free_port()), "--threshold", "dropped_arrivals==0",
        )  # fmt: skip
        assert proc.wait(90) == 0, proc.output[-3000:]
        seen = target.stats()
    row = csv_row(Path(f"{prefix}_stats.csv"))
    assert int(row["Request Count"]) == seen["total"]
    assert abs(seen["total"] - 9 * rate) <= 9 * rate * 0.01
    # the truth: the arrivals of the schedule, evenly spread from the first to the last
    first, last = seen["first_request"] - target.origin, seen["last_request"] - target.origin
    service = float(row["50%"])  # ms: the target's own time when it answers at once
    truth = [w * 1000 + service for w in stall.truth(first, last, rate)]
    for column, q in (("50%", 0.5), ("90%", 0.90), ("95%", 0.95), ("98%", 0.98), ("99%", 0.99)):
        expected = nearest_rank(truth, q)
        measured = float(row[f"Corrected {column}"])
        # within 5%, or 2 ms where the truth is about nothing (the timer's own resolution)
        assert measured == pytest.approx(expected, rel=0.05, abs=2.0), (column, expected, row)
    assert "dropped_arrivals" in proc.output


def test_a_worker_leaving_mid_run_hands_its_arrivals_over(tmp_path, target, run_lcore) -> None:
    lf = write(tmp_path, OPEN)
    port = free_port()
    master = run_lcore(
        "-f", str(lf), "-H", target.url, "--master", "--headless", "--expect-workers", "2",
        "--arrival-rate", "300", "-u", "100", "-t", "6s", "--master-bind-port", str(port),
        "--no-web", "--only-summary",
    )  # fmt: skip
    worker = ["-f", str(lf), "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    first, second = run_lcore(*worker), run_lcore(*worker)
    wait_until(lambda: target.total >= 600 or master.proc.poll() is not None, timeout=60)
    second.proc.send_signal(signal.SIGTERM)  # it says goodbye; the other takes over
    assert second.wait(20) == 0
    assert master.wait(90) == 0, master.output[-3000:]
    assert first.wait(20) == 0
    counts = per_worker(target)
    # every arrival of the schedule ran, but those the leaving worker had in flight
    assert abs(sum(counts.values()) - 1800) <= 18, counts
    low, high = sorted(counts.values())  # which worker got index 0 is a race
    assert high > low + 300, counts
