"""Latency from the intended start (coordinated omission): the recorder, the wire, the merge.

In memory: lags are given with explicit times, so nothing here sleeps.
"""

from __future__ import annotations

import csv
import gc
import json
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
import json, os, time

from lcore import HttpUser, constant_throughput, events, task

# each user's schedule as it really is, for the test's truth: its grid starts when the user is
# made (constant_pacing's anchor), and ends with the last task it started
SCHEDULES = {{}}
WALL = time.time() - time.monotonic()


class Paced(HttpUser):
    wait_time = constant_throughput({rate})

    def on_start(self):
        SCHEDULES[id(self)] = [WALL + self._cp_last_run, None]

    @task
    def root(self):
        SCHEDULES[id(self)][1] = time.time()
        self.client.get("/")


@events.test_stop.add_listener
def keep_schedules(**kwargs):
    with open(f"schedules-{{os.getpid()}}.json", "w") as f:
        json.dump(list(SCHEDULES.values()), f)
"""


def csv_row(path: Any, name: str = "Aggregated") -> dict[str, str]:
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
    stall = Stall(every=3.0, length=1.0)  # a third of the schedule falls into a stall
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
    schedules = [s for p in tmp_path.glob("schedules-*.json") for s in json.loads(p.read_text())]
    assert len(schedules) == users
    service = float(row["50%"])  # ms, the target's own time when it answers
    grids = [(first - target.origin, last - target.origin) for first, last in schedules]
    truth = [w * 1000 + service for w in stall.grid_truth(grids, 1 / rate)]
    for column, q in (("90%", 0.90), ("95%", 0.95), ("98%", 0.98), ("99%", 0.99)):
        expected = nearest_rank(truth, q)
        measured = float(row[f"Corrected {column}"])
        assert measured == pytest.approx(expected, rel=0.05), (column, expected, row)
    # from the send (Locust's meaning), the stalls hide: one request per user and stall
    assert float(row["90%"]) < nearest_rank(truth, 0.9) / 10
    assert float(row["Corrected 50%"]) == pytest.approx(nearest_rank(truth, 0.5), abs=5)
    # Locust's columns: what was sent, as Locust counts it (no burst after a stall)
    assert int(row["Request Count"]) == seen["total"]
    with open(f"{prefix}_stats_history.csv", newline="") as f:
        history = list(csv.DictReader(f))[-1]  # the last seconds: stalls in them
    assert float(history["Corrected 90%"]) > 10 * float(history["90%"]) > 0
    out = lcore.output
    assert "Users fell behind their schedule" in out, out[-3000:]
    assert "(corrected)" in out


# -- every report: CSV, console, JSON, HTML, /metrics, status page, thresholds -------------


def late_run_stats() -> MergedStats:
    """/slow had a task 300 ms behind (and one that missed 2 slots of 100 ms); /fast was on
    time; 3 arrivals of Open were dropped."""
    merged = MergedStats(clock=FakeClock())
    stats = RequestStats(now=999.0)
    schedule_lag.set_lag_sink(stats.record_schedule)
    try:
        for i in range(50):
            stats.record("GET", "/fast", 2.0 + i % 3, 10, None)
            late_by(0.0, user_class="Paced")
            stats.record("GET", "/slow", 4.0, 10, None)
            schedule_lag.end_scheduled_task()
        late_by(0.3, user_class="Paced")
        stats.record("GET", "/slow", 5.0, 10, None)
        schedule_lag.end_scheduled_task()
        late_by(0.25, interval=0.1, user_class="Paced")
        stats.record("GET", "/slow", 5.0, 10, None)
        schedule_lag.end_scheduled_task()
        stats.record_dropped_arrival("Open", 3)
    finally:
        schedule_lag.set_lag_sink(None)
    merged.merge("w1", StatsDelta.decode(stats.take_delta(now=1000.0).encode()))
    return merged


def test_csv_appends_corrected_percentiles_equal_without_a_schedule(tmp_path: Any) -> None:
    from lcore.exporters import report_csv

    stats = late_run_stats()
    prefix = str(tmp_path / "run")
    report_csv.write_csv_files(stats, prefix)
    fast, slow = csv_row(f"{prefix}_stats.csv", "/fast"), csv_row(f"{prefix}_stats.csv", "/slow")
    for p in ("50%", "90%", "99%", "100%"):
        assert fast[f"Corrected {p}"] == fast[p]
    assert slow["100%"] == "5" and float(slow["Corrected 100%"]) == pytest.approx(305, rel=0.01)
    assert slow["Corrected 50%"] == slow["50%"]
    with report_csv.StatsHistoryWriter(prefix) as history:
        history.write(stats, 3, now=1000.5)
    row = csv_row(f"{prefix}_stats_history.csv")
    assert float(row["Corrected 100%"]) == pytest.approx(305, rel=0.01)
    assert float(row["100%"]) == pytest.approx(5.0)


def test_the_console_says_who_fell_behind_and_by_how_much() -> None:
    from lcore.exporters import report_console

    assert report_console.schedule_report(MergedStats()) == ""
    text = report_console.schedule_report(late_run_stats())
    lines = text.splitlines()
    assert lines[0].startswith("Users fell behind their schedule, by up to 300 ms, 2 slots missed")
    assert "3 arrivals dropped" in text
    paced = next(line for line in lines if line.startswith("Paced "))
    assert paced.split()[1:3] == ["52", "2"]  # starts, late ones
    assert paced.split()[-2:] == ["2", "0"]  # missed slots, dropped
    assert next(line for line in lines if line.startswith("Open ")).split()[-1] == "3"
    slow = [line for line in lines if "/slow" in line]
    assert len(slow) == 2 and "(corrected)" in slow[1]
    assert slow[1].split()[-1] == "305" and slow[0].split()[-1] == "5.00"
    assert any("Aggregated (corrected)" in line for line in lines)


def test_json_carries_corrected_figures_and_schedules() -> None:
    from lcore.exporters import report_json

    stats = late_run_stats()
    document = {d["name"]: d for d in report_json.stats_to_json(stats)}
    slow, fast = document["/slow"], document["/fast"]
    assert slow["corrected_num_requests"] == 54 and slow["num_requests"] == 52
    assert slow["corrected_max_response_time"] == pytest.approx(305, rel=0.01)
    assert fast["corrected_response_time_percentiles"] == fast["response_time_percentiles"]
    schedules = report_json.schedules_to_json(stats)
    assert schedules["Paced"]["scheduled_starts"] == 52
    assert schedules["Paced"]["late_starts"] == 2 and schedules["Paced"]["missed_slots"] == 2
    assert schedules["Paced"]["max_lag"] == pytest.approx(300, rel=0.01)
    assert schedules["Open"] == {
        "scheduled_starts": 0,
        "late_starts": 0,
        "max_lag": 0.0,
        "lag_percentiles": {},
        "missed_slots": 0,
        "dropped_arrivals": 3,
    }
    json.dumps(schedules)


def test_thresholds_on_corrected_times_dropped_arrivals_and_lag() -> None:
    from lcore.exporters import thresholds

    stats = late_run_stats()
    parse = thresholds.parse_threshold

    def measured(text: str) -> Any:
        (result,) = thresholds.evaluate([parse(text)], stats)
        return result.passed, result.measured

    assert measured("p100<10ms") == (True, 5.0)
    passed, value = measured("corrected_p100<10ms")
    assert not passed and value == pytest.approx(305, rel=0.01)
    assert measured("/fast corrected_max<=4ms") == (True, 4.0)
    assert measured("GET /slow corrected_avg<100ms")[0]
    assert measured("dropped_arrivals==0") == (False, 3.0)
    assert measured("Paced dropped_arrivals==0") == (True, 0.0)
    assert measured("Open dropped_ratio<1%") == (False, 1.0)
    passed, value = measured("max_lag<100ms")
    assert not passed and value == pytest.approx(300, rel=0.01)
    assert parse("corrected_median<1s").percentile == 0.5
    for bad in ("corrected_fail_ratio<0.1", "corrected_dropped_arrivals==0", "max_lag<5%"):
        with pytest.raises(thresholds.ThresholdError):
            parse(bad)
    # a breach of a count that never falls stops the test at once with --threshold-abort
    assert thresholds.breached([parse("dropped_arrivals<1")], stats, min_requests=10**6)


def test_metrics_export_corrected_times_and_per_class_schedules() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from lcore.env import Environment
    from lcore.exporters.prometheus import make_registry, render
    from lcore.master import MasterRuntime
    from lcore.users import HttpUser

    class Paced(HttpUser):
        host = "http://127.0.0.1:1"

    runtime = MasterRuntime(Environment(user_classes=[Paced]), endpoints=[], digest="test")
    runtime.environment.stats = runtime.stats_merged = late_run_stats()
    text = render(make_registry(runtime))[0].decode()
    found = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def value(metric: str, **labels: str) -> float:
        return found[(metric, frozenset(labels.items()))]

    slow, fast = {"method": "GET", "name": "/slow"}, {"method": "GET", "name": "/fast"}
    assert value("lcore_corrected_response_time_seconds_count", **slow) == 54
    assert value("lcore_response_time_seconds_count", **slow) == 52
    assert value("lcore_corrected_response_time_seconds_sum", **fast) == pytest.approx(
        value("lcore_response_time_seconds_sum", **fast)
    )
    q = value(
        "lcore_corrected_response_time_quantile_seconds",
        method="", name="Aggregated", window="run", quantile="0.999",
    )  # fmt: skip
    assert q == pytest.approx(0.305, rel=0.01)
    assert value("lcore_dropped_arrivals_total", user_class="Open") == 3
    assert value("lcore_dropped_arrivals_total", user_class="Paced") == 0
    assert value("lcore_scheduled_starts_total", user_class="Paced") == 52
    assert value("lcore_missed_slots_total", user_class="Paced") == 2
    assert value("lcore_schedule_lag_max_seconds", user_class="Paced") == pytest.approx(
        0.3, rel=0.01
    )
    assert value("lcore_schedule_lag_seconds_count", user_class="Paced") == 52


def test_html_report_and_status_page_show_what_fell_behind() -> None:
    from types import SimpleNamespace

    from lcore.exporters import web_documents
    from lcore.exporters.report_html import render_html_report

    stats = late_run_stats()
    runtime = SimpleNamespace(
        stats_merged=stats,
        environment=SimpleNamespace(host="http://x", locustfile="lf.py", user_classes=[]),
        start_time=999.0,
        host="http://x",
        user_count=0,
        workers={},
        lost_workers=[],
        state="stopped",
        target_user_count=0,
        spawn_rate=0,
        user_classes_count={},
        shape=None,
    )
    html = render_html_report(runtime)
    assert "Schedules (ms)" in html and "Dropped arrivals" in html
    assert "Response time percentiles from the intended start (corrected, ms)" in html
    document = web_documents.stats_document(runtime, readonly=True)
    assert document["fell_behind"] and document["dropped_arrivals"] == 3
    row = next(r for r in document["stats"] if r["name"] == "/slow")
    assert row["corrected_response_time_percentile_0.99"] == pytest.approx(305, rel=0.01)
    assert document["schedules"]["Paced"]["missed_slots"] == 2
    assert "Schedules" not in render_html_report(
        SimpleNamespace(**{**vars(runtime), "stats_merged": MergedStats()})
    )
