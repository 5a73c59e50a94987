"""Latency from the intended start (coordinated omission): the recorder, the wire, the merge.

In memory: lags are given with explicit times, so nothing here sleeps.
"""

from __future__ import annotations

import gc
import math
import random
from typing import Any

import msgpack
import pytest

from lcore import schedule_lag
from lcore.histogram import Histogram
from lcore.stats import MergedStats
from lcore.stats_delta import DeltaError, RequestStats, StatsDelta


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _no_lag_left() -> Any:
    yield
    schedule_lag.end_scheduled_task()
    gc.collect()  # recorders dropped in a late interval give the fast path back
    assert schedule_lag.late[0] == 0, "a test left a greenlet behind schedule"


def late_by(seconds: float, interval: float = 0.0, user_class: str | None = None) -> float:
    """Start a scheduled task on this greenlet ``seconds`` behind its due time."""
    return schedule_lag.start_scheduled_task(
        100.0 - seconds, now=100.0, interval=interval, user_class=user_class
    )


def test_without_a_schedule_nothing_more_is_recorded_or_sent() -> None:
    stats = RequestStats(now=0.0)
    stats.record("GET", "/", 5.0, 10, None)
    late_by(0.0005)  # within the timer's resolution: on time
    stats.record("GET", "/", 6.0, 10, None)
    schedule_lag.end_scheduled_task()
    delta = stats.take_delta(now=1.0)
    assert delta.entries[("GET", "/")].corrected is None
    wire = delta.to_wire()
    assert wire[9:] == [[], [], [], [], []]  # no corrected histogram, nothing dropped
    merged = MergedStats(clock=FakeClock())
    merged.merge("w", StatsDelta.decode(delta.encode()))
    entry = merged.get("/", "GET")
    assert not entry.is_corrected and not merged.fell_behind
    assert entry.corrected_histogram is entry.histogram
    assert entry.get_corrected_response_time_percentiles([0.5, 1.0]) == [5.0, 6.0]


def test_a_late_task_adds_its_lag_and_earlier_requests_count_as_they_were() -> None:
    stats = RequestStats(now=0.0)
    stats.record("GET", "/", 5.0, 0, None)  # on time, before the stall
    assert late_by(0.2) == pytest.approx(0.2)
    assert schedule_lag.lag_ms() == pytest.approx(200.0)
    stats.record("GET", "/", 7.0, 0, None)
    stats.record("GET", "/other", 1.0, 0, None)
    schedule_lag.end_scheduled_task()
    stats.record("GET", "/", 3.0, 0, None)  # on time again
    tally = stats.entries[("GET", "/")]
    assert (tally.histogram.count, tally.histogram.sum) == (3, 15_000)
    assert tally.corrected is not None
    assert tally.corrected.count == 3 and tally.corrected.sum == 5000 + 207_000 + 3000
    assert (tally.corrected.min, tally.corrected.max) == (3000, 207_000)
    assert stats.entries[("GET", "/other")].corrected.max == 201_000  # type: ignore[union-attr]


def test_a_paced_user_behind_counts_each_missed_slot_with_its_own_lag() -> None:
    stats = RequestStats(now=0.0)
    schedule_lag.set_lag_sink(stats.record_schedule)
    try:
        # due 0.45 s ago on a 50 ms grid: this task stands for that slot, 9 more went by since
        late_by(0.45, interval=0.05, user_class="Paced")
        stats.record("GET", "/", 2.0, 0, None)
        schedule_lag.end_scheduled_task()
    finally:
        schedule_lag.set_lag_sink(None)
    corrected = stats.entries[("GET", "/")].corrected
    assert corrected is not None
    values = sorted(v for low, _, n in corrected.buckets() for v in [low] * n)
    expected = [2000 + 450_000 - k * 50_000 for k in range(10)]
    assert corrected.count == 10 and corrected.sum == sum(expected)
    assert values == pytest.approx(sorted(expected), rel=1 / 64)
    assert stats.schedules["Paced"].missed == 9
    assert stats.schedules["Paced"].lag.max == 450_000


def test_lag_and_dropped_arrivals_per_user_class_travel_and_add_up() -> None:
    schedule_lag.set_lag_sink(None)
    merged = MergedStats(clock=FakeClock())
    for worker in ("w1", "w2"):
        stats = RequestStats(now=0.0)
        schedule_lag.set_lag_sink(stats.record_schedule)
        for lag in (0.0, 0.002, 0.3):
            late_by(lag, user_class="Open")
            stats.record("GET", "/", 1.0, 0, None)
            schedule_lag.end_scheduled_task()
        stats.record_dropped_arrival("Open", 4)
        stats.record_dropped_arrival("Other")
        merged.merge(worker, StatsDelta.decode(stats.take_delta(now=1.0).encode()))
    schedule_lag.set_lag_sink(None)
    assert merged.dropped_arrivals == {"Open": 8, "Other": 2}
    lag = merged.schedules["Open"].lag
    assert (lag.count, lag.min, lag.max, lag.sum) == (6, 0, 300_000, 2 * 302_000)
    entry = merged.get("/", "GET")
    assert entry.num_requests == 6 and entry.corrected_histogram.count == 6
    assert entry.corrected_histogram.sum == 2 * (1000 + 3000 + 301_000)


def random_worker_deltas(seed: int) -> tuple[list[tuple[str, StatsDelta]], dict[Any, Histogram]]:
    """Deltas of three workers over a few intervals, some requests late; and the exact
    corrected histograms per entry, built independently."""
    rng = random.Random(seed)
    truth: dict[Any, Histogram] = {}
    deltas = []
    for interval in range(6):
        for worker in ("w1", "w2", "w3"):
            stats = RequestStats(now=float(interval))
            for _ in range(rng.randrange(0, 60)):
                name = f"/e{rng.randrange(5)}"
                value = rng.randrange(100, 200_000)
                lag = rng.choice([0, 0, 0, 0, 5000, 400_000]) if worker != "w3" else 0
                if lag:
                    late_by(lag / 1e6)
                stats.record("GET", name, value / 1000, 0, None)
                schedule_lag.end_scheduled_task()
                truth.setdefault((name, "GET"), Histogram()).record(value + lag)
            deltas.append((worker, stats.take_delta(now=interval + 1.0)))
    return deltas, truth


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_master_merges_corrected_histograms_exactly(seed: int) -> None:
    deltas, truth = random_worker_deltas(seed)
    clock = FakeClock()
    merged = MergedStats(clock=clock)
    for worker, delta in deltas:
        clock.now += 0.3
        merged.merge(worker, StatsDelta.decode(delta.encode()))
    total = Histogram()
    for key, expected in truth.items():
        assert merged.entries[key].corrected_histogram == expected
        total.merge(expected)
    assert merged.total.corrected_histogram == total
    assert merged.fell_behind and merged.total.is_corrected


def test_corrected_figures_fold_into_the_overflow_row_too() -> None:
    merged = MergedStats(clock=FakeClock(), max_entries=1)
    stats = RequestStats(now=0.0)
    stats.record("GET", "/a", 1.0, 0, None)
    stats.record("GET", "/b", 2.0, 0, None)
    late_by(0.1)
    stats.record("GET", "/c", 3.0, 0, None)
    schedule_lag.end_scheduled_task()
    merged.merge("w", StatsDelta.decode(stats.take_delta(now=1.0).encode()))
    rows = {key[0]: e for key, e in merged.entries.items()}
    other = next(e for name, e in rows.items() if name.startswith("Other"))
    assert other.num_requests == 2
    assert sorted(other.corrected_histogram.quantiles([0.0, 1.0])) == [2000, 103_000]
    assert not rows["/a"].is_corrected


def good_late_wire() -> list[Any]:
    stats = RequestStats(now=0.0)
    schedule_lag.set_lag_sink(stats.record_schedule)
    try:
        stats.record("GET", "/a", 1.0, 0, None)
        late_by(0.3, interval=0.1, user_class="U")
        stats.record("GET", "/b", 2.0, 0, None)
        schedule_lag.end_scheduled_task()
        stats.record_dropped_arrival("U", 3)
    finally:
        schedule_lag.set_lag_sink(None)
    return msgpack.unpackb(msgpack.packb(stats.take_delta(now=1.0).to_wire()))


def test_a_late_delta_survives_the_wire() -> None:
    wire = good_late_wire()
    delta = StatsDelta.from_wire(wire)
    assert delta.to_wire() == wire
    assert delta.entries[("GET", "/b")].corrected.count == 4  # type: ignore[union-attr]
    assert delta.entries[("GET", "/a")].corrected is None
    assert delta.dropped_arrivals == {"U": 3}
    assert delta.schedules["U"].missed == 3


def set_at(path: tuple[int, ...], value: Any) -> Any:
    def apply(wire: list[Any]) -> list[Any]:
        target = wire
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        return wire

    return apply


BAD = [
    ("corrected of no entry", set_at((9, 0), 7)),
    ("corrected index negative", set_at((9, 0), -1)),
    ("corrected fewer than its entry", set_at((9, 1), 0)),
    ("corrected float", set_at((9, 2), 1.5)),
    ("corrected sum out of range", set_at((9, 2), 10**15)),
    ("corrected size disagrees", set_at((10, 0), 9)),
    ("corrected bucket zero", set_at((11, 1), 0)),
    ("corrected twice", lambda w: [*w[:9], w[9] * 2, w[10] * 2, w[11] * 2, *w[12:]]),
    ("corrected not a list", set_at((9,), "x")),
    ("dropped zero", set_at((12, 1), 0)),
    ("dropped class not text", set_at((12, 0), 5)),
    ("dropped odd", lambda w: [*w[:12], w[12][:1], w[13]]),
    ("schedule missed negative", set_at((13, 1), -1)),
    ("schedule lag garbled", set_at((13, 2, 0), 99)),
    ("schedule lag not a list", set_at((13, 2), 3)),
    ("schedule twice", lambda w: [*w[:13], w[13] * 2]),
]


@pytest.mark.parametrize(("what", "mutate"), BAD, ids=[b[0] for b in BAD])
def test_garbled_corrected_parts_are_refused(what: str, mutate: Any) -> None:
    with pytest.raises(DeltaError):
        StatsDelta.from_wire(mutate(good_late_wire()))


# -- closed model: constant_pacing's grid -------------------------------------------------


def run_paced_user(stall_at: int, stall: float, pace: float, tasks: int) -> Any:
    import time

    import gevent

    from lcore import StopUser, User, constant_pacing, task
    from lcore.env import Environment
    from lcore.event import Events

    env = Environment(events=Events())
    done = []

    class Paced(User):
        wait_time = constant_pacing(pace)

        @task
        def work(self) -> None:
            start = time.monotonic()
            if len(done) == stall_at:
                gevent.sleep(stall)  # the target stalls during this request
            done.append(start)
            self.environment.events.request.fire(
                request_type="GET",
                name="/",
                response_time=(time.monotonic() - start) * 1000,
                response_length=0,
                exception=None,
            )
            if len(done) >= tasks:
                raise StopUser()

    user = Paced(env)
    g = gevent.spawn(user.run)
    g.join(timeout=10)
    assert g.dead
    return env.stats


def test_a_paced_user_after_a_stall_is_charged_from_its_grid() -> None:
    stats = run_paced_user(stall_at=3, stall=0.4, pace=0.05, tasks=12)
    entry = stats.get("/", "GET")
    assert entry.num_requests == 12  # no burst to catch up: Locust's pacing
    assert entry.max_response_time == pytest.approx(400, abs=60)
    corrected = entry.corrected_histogram
    schedule = stats.schedules["Paced"]
    # the task after the stall was due 350 ms before it started; 6 slots more went by
    assert schedule.lag.max / 1000 == pytest.approx(350, abs=60)
    assert schedule.missed in (5, 6, 7)
    assert corrected.count == 12 + schedule.missed
    # from the grid, the slots in the stall waited 400, 350, 300, ... ms: the mean of the
    # corrected times is that of the truth, not of the sent requests'
    truth = [400 - 50 * k for k in range(8)]
    assert corrected.sum / 1000 == pytest.approx(sum(truth), rel=0.15)
    assert entry.total_response_time == pytest.approx(400, abs=60)
    assert schedule_lag.late[0] == 0


def test_users_without_pacing_record_nothing_corrected() -> None:
    import gevent

    from lcore import StopUser, User, constant, task
    from lcore.env import Environment
    from lcore.event import Events

    env = Environment(events=Events())

    class Plain(User):
        wait_time = constant(0)

        @task
        def work(self) -> None:
            gevent.sleep(0.01)
            self.environment.events.request.fire(
                request_type="GET", name="/", response_time=10.0, response_length=0, exception=None
            )
            if env.stats.num_requests >= 3:
                raise StopUser()

    g = gevent.spawn(Plain(env).run)
    g.join(timeout=5)
    assert not env.stats.fell_behind and not env.stats.schedules


# -- end to end: a stalling target, the truth from the schedule ----------------------------

PACED_LOCUSTFILE = """
from lcore import HttpUser, constant_throughput, task


class Paced(HttpUser):
    wait_time = constant_throughput({rate})

    @task
    def root(self):
        self.client.get("/")
"""


def csv_row(path: Any, name: str = "Aggregated") -> dict[str, str]:
    import csv

    with open(path, newline="") as f:
        return next(row for row in csv.DictReader(f) if row["Name"] == name)


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


@pytest.mark.parametrize("processes", [1, 2])
def test_paced_users_against_a_stalling_target_report_the_truth(
    tmp_path: Any, run_lcore: Any, processes: int
) -> None:
    from lcore.target import Stall, Target

    users, rate = 10, 20  # 200 requests/s intended
    stall = Stall(every=2.0, length=0.5)  # a quarter of the schedule falls into a stall
    lf = tmp_path / "locustfile.py"
    lf.write_text(PACED_LOCUSTFILE.format(rate=rate))
    prefix = tmp_path / "run"
    with Target(stall=stall) as target:
        lcore = run_lcore(
            "-f", str(lf), "-H", target.url, "--headless", "-u", str(users), "-r", "100",
            "-t", "9s", "--processes", str(processes), "--csv", str(prefix), "--no-web",
        )  # fmt: skip
        assert lcore.wait(timeout=90) == 0, lcore.output[-3000:]
        seen = target.stats()
    row = csv_row(f"{prefix}_stats.csv")
    # the truth: every slot of the users' schedules, from the first request to the last
    first, last = seen["first_request"] - target.origin, seen["last_request"] - target.origin
    service = float(row["50%"])  # ms, the target's own time when it answers
    truth = [w * 1000 + service for w in stall.truth(first, last, users * rate)]
    for column, q in (("90%", 0.90), ("95%", 0.95), ("98%", 0.98), ("99%", 0.99)):
        expected = nearest_rank(truth, q)
        measured = float(row[f"Corrected {column}"])
        assert measured == pytest.approx(expected, rel=0.05), (column, expected, row)
    # from the send (Locust's meaning), the stalls hide: one request per user and stall
    assert float(row["90%"]) < nearest_rank(truth, 0.9) / 10
    assert float(row["Corrected 50%"]) == pytest.approx(nearest_rank(truth, 0.5), abs=5)
    # Locust's columns: what was sent, as Locust counts it (no burst after a stall)
    assert int(row["Request Count"]) == seen["total"]
    out = lcore.output
    assert "Users fell behind their schedule" in out, out[-3000:]
    assert "(corrected)" in out
