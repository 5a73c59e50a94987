"""The results store in memory and on a temp file: snapshots, the schema, the statistics of
`lcore runs compare`, relative thresholds, the options' checks."""

from __future__ import annotations

import csv
import io
import math
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from lcore.exporters import report_csv, results_compare, results_db, results_record, thresholds
from lcore.histogram import Histogram
from lcore.stats import MergedStats, RequestStats


def _stats(failing: int = 3) -> MergedStats:
    stats = MergedStats(clock=lambda: 1_000.0)
    recorder = RequestStats(now=1_000.0)
    for i in range(400):
        recorder.record("GET", "/a", 200 + i % 50 + 0.2 * i, 120, None)
        recorder.record("POST", "/b", 5 + (i % 7), 10, None if i >= failing else ConnectionError("refused"))
    recorder.log_exception("boom", "Traceback: boom")
    recorder.record("GET", "=cmd|' /C calc'!A0", 1.0, 1, None)  # a name a spreadsheet would run
    stats.merge("w1", recorder.take_delta(now=1_004.5), now=1_004.5)
    stats.get("never", "GET")  # an entry with no requests is a row too
    return stats


def _csv_files(stats: MergedStats, tmp_path: Path, prefix: str) -> dict[str, bytes]:
    report_csv.write_csv_files(stats, str(tmp_path / prefix))
    return {kind: (tmp_path / f"{prefix}_{kind}.csv").read_bytes() for kind in ("stats", "failures", "exceptions")}


def test_restored_results_write_the_same_csv_bytes(tmp_path: Path) -> None:
    stats = _stats()
    results = results_record.take_results(stats)
    import json

    # through JSON, as the store keeps them
    restored = results_record.restore_stats(json.loads(json.dumps(results)))
    original = _csv_files(stats, tmp_path, "live")
    assert _csv_files(restored, tmp_path, "stored") == original
    rows = list(csv.reader(io.StringIO(original["stats"].decode())))
    assert [r[1] for r in rows[1:]] == ["/a", "/b", "'=cmd|' /C calc'!A0", "never", "Aggregated"]
    assert restored.total.total_rps == stats.total.total_rps
    assert restored.errors.keys() == stats.errors.keys()


def test_latency_from_the_intended_start_is_stored_and_restored(tmp_path: Path) -> None:
    from lcore import schedule_lag

    stats = MergedStats(clock=lambda: 1_000.0)
    recorder = RequestStats(now=1_000.0)
    schedule_lag.set_lag_sink(recorder.record_schedule)
    try:
        for i in range(200):
            if i % 4 == 0:  # a quarter of the tasks start 300 ms behind their schedule
                schedule_lag.start_scheduled_task(99.7, now=100.0, interval=0.0, user_class="Paced")
            recorder.record("GET", "/late", 20 + i % 9, 10, None)
            schedule_lag.end_scheduled_task()
            recorder.record("GET", "/on-time", 5, 10, None)
    finally:
        schedule_lag.set_lag_sink(None)
        schedule_lag.end_scheduled_task()
    recorder.record_dropped_arrival("Paced", 3)
    stats.merge("w1", recorder.take_delta(now=1_004.0), now=1_004.0)
    assert stats.get("/late", "GET").is_corrected and not stats.get("/on-time", "GET").is_corrected
    with results_db.open_store(tmp_path / "runs.db") as store:
        results = results_record.take_results(stats)
        store.save({"id": "r1", "started": 1_000.0, "status": "finished",
                    "span": {"start": stats.start_time, "last_end": stats.last_request_timestamp}},
                   results)  # fmt: skip
        restored = results_record.restore_stats(store.run("r1")["results"])
    assert _csv_files(restored, tmp_path, "stored") == _csv_files(stats, tmp_path, "live")
    late = restored.get("/late", "GET")
    assert late.is_corrected and late.corrected_histogram == stats.get("/late", "GET").corrected_histogram
    assert restored.total.corrected_histogram == stats.total.corrected_histogram
    assert restored.dropped_arrivals == {"Paced": 3}
    assert restored.schedules["Paced"].lag == stats.schedules["Paced"].lag


def test_a_version_1_store_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for statement in results_db._migrations(False)[0]:
        db.execute(statement)
    db.execute("INSERT INTO schema_version VALUES (1)")
    db.commit()
    db.close()
    with results_db.open_store(path) as store:
        _save(store, "20260101-000000-aaaaaa", 100.0, {"env": "old"})
        assert store.run("20260101")["results"]["entries"][0][5] is None
    db = sqlite3.connect(path)
    assert [v for (v,) in db.execute("SELECT version FROM schema_version ORDER BY version")] == [1, 2]


def test_the_store_migrates_once_and_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "folder" / "runs.db"
    for _ in range(2):
        with results_db.open_store(path) as store:
            assert store.runs() == []
    db = sqlite3.connect(path)
    assert db.execute("SELECT version FROM schema_version ORDER BY version").fetchall() == [
        (v,) for v in range(1, results_db.SCHEMA_VERSION + 1)
    ]
    db.execute("INSERT INTO schema_version VALUES (99)")
    db.commit()
    db.close()
    with pytest.raises(results_db.StoreError, match="schema version 99, newer than this lcore"):
        results_db.open_store(path)
    (tmp_path / "garbage.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(results_db.StoreError, match="cannot use the results store"):
        results_db.open_store(tmp_path / "garbage.db")


def _save(store: results_db.Store, run_id: str, started: float, labels: dict[str, str], status: str = "finished") -> None:
    stats = _stats()
    store.save(
        {"id": run_id, "started": started, "status": status, "labels": labels,
         "summary": results_record.summary(stats),
         "span": {"start": stats.start_time, "last_end": stats.last_request_timestamp}},
        results_record.take_results(stats),
        [results_record.history_point(stats, 3, now=started + 1)],
    )  # fmt: skip


def test_runs_by_label_prefix_baseline_and_delete(tmp_path: Path) -> None:
    with results_db.open_store(tmp_path / "runs.db") as store:
        _save(store, "20260101-000000-aaaaaa", 100.0, {"env": "staging", "branch": "main"})
        _save(store, "20260102-000000-bbbbbb", 200.0, {"env": "staging"})
        _save(store, "20260103-000000-cccccc", 300.0, {"env": "prod"}, status="running")
        assert [r["id"][-6:] for r in store.runs()] == ["aaaaaa", "bbbbbb", "cccccc"]
        assert [r["id"][-6:] for r in store.runs({"env": "staging"})] == ["aaaaaa", "bbbbbb"]
        assert [r["id"][-6:] for r in store.runs(last=2)] == ["bbbbbb", "cccccc"]
        assert store.runs({"env": "staging", "branch": "main"})[0]["labels"] == {"env": "staging", "branch": "main"}
        assert store.resolve("20260102") == "20260102-000000-bbbbbb"
        with pytest.raises(results_db.RunNotFound, match="ambiguous"):
            store.resolve("2026010")
        with pytest.raises(results_db.RunNotFound, match="no run 'nope'"):
            store.resolve("nope")
        with pytest.raises(results_db.RunNotFound):
            store.resolve("20260%")  # LIKE's wildcards are plain characters here
        # last: the latest *finished* run (a running or killed one is no baseline)
        assert store.find_baseline("last")["id"].endswith("bbbbbb")
        assert store.find_baseline("label:branch=main")["id"].endswith("aaaaaa")
        assert store.find_baseline("label:branch=dev") is None
        assert store.find_baseline("20260103")["status"] == "running"
        run = store.run("20260101-000000-aaaaaa")
        assert run["history"][0]["user_count"] == 3
        assert results_record.restore_stats(run["results"]).num_requests == 801
        # a checkpoint replaces the results, appends history, keeps labels
        _save(store, "20260101-000000-aaaaaa", 100.0, {"env": "staging", "branch": "main"})
        assert store.run("20260101")["results"]["entries"] == run["results"]["entries"]
        store.delete("20260101")
        assert [r["id"][-6:] for r in store.runs()] == ["bbbbbb", "cccccc"]
        db = sqlite3.connect(tmp_path / "runs.db")
        for table in ("run_labels", "run_entries", "run_errors", "run_exceptions", "run_history"):
            left = db.execute(f"SELECT COUNT(*) FROM {table} WHERE run_id LIKE '20260101%'").fetchone()
            assert left == (0,), table


def _histogram(values_us: list[int]) -> Histogram:
    h = Histogram()
    for v in values_us:
        h.record(v)
    return h


def test_mann_whitney_on_histograms() -> None:
    # values below 128 µs have buckets of their own: the exact textbook case
    a, b = _histogram([10, 20, 30]), _histogram([40, 50, 60])
    test = results_compare.mann_whitney(a, b)
    assert test.effect == 1.0  # every request of B is slower than every one of A
    # U = 9 of 9, mean 4.5, variance 3*3*7/12 = 5.25: z = 4.5 / sqrt(5.25)
    assert test.statistic == pytest.approx(4.5 / math.sqrt(5.25))
    same = results_compare.mann_whitney(a, _histogram([10, 20, 30]))
    assert same.statistic == 0 and same.p_value == 1.0 and same.effect == 0.5
    # ties: both runs all in one bucket: nothing tells them apart
    assert results_compare.mann_whitney(_histogram([5] * 50), _histogram([5] * 80)).p_value == 1.0
    # a 5 % shift over 20,000 requests each is far beyond noise; 2 samples of noise are not
    import random

    rng = random.Random(7)
    base = _histogram([int(rng.lognormvariate(9, 0.4)) for _ in range(20_000)])
    shifted = _histogram([int(rng.lognormvariate(9, 0.4) * 1.05) for _ in range(20_000)])
    again = _histogram([int(rng.lognormvariate(9, 0.4)) for _ in range(20_000)])
    assert results_compare.mann_whitney(base, shifted).p_value < 1e-6
    assert results_compare.mann_whitney(base, again).p_value > 0.001
    assert results_compare.mann_whitney(Histogram(), base) is None


def test_rate_and_failure_tests() -> None:
    assert results_compare.poisson_rates(1000, 10, 1000, 10).p_value == 1.0
    assert results_compare.poisson_rates(1000, 10, 800, 10).p_value < 1e-4
    assert results_compare.two_proportions(0, 1000, 0, 1000).p_value == 1.0
    assert results_compare.two_proportions(10, 1000, 60, 1000).p_value < 1e-6


def test_compare_flags_the_slower_endpoint_only() -> None:
    a, b = MergedStats(clock=lambda: 0.0), MergedStats(clock=lambda: 0.0)
    for stats, slow in ((a, 0.0), (b, 30.0)):
        recorder = RequestStats(now=100.0)
        for i in range(2_000):
            recorder.record("GET", "/slow", 5 + (i % 13) * 0.3 + slow, 1, None)
            recorder.record("GET", "/same", 5 + (i % 13) * 0.3, 1, None)
        stats.merge("w", recorder.take_delta(now=110.0), now=110.0)
    comparison = results_compare.compare_stats("A", a, "B", b, [0.5, 0.95, 0.99])
    rows = {r.name: r for r in comparison.rows}
    assert rows["/slow"].regressed and rows["/slow"].verdicts == ["slower"]
    assert not rows["/same"].regressed and rows["/same"].verdict == "within noise"
    assert [r.name for r in comparison.regressions] == ["/slow", "Aggregated"]
    assert not results_compare.compare_stats("A", a, "A", a, [0.5]).regressions
    # a generous tolerance: significant, but not a regression
    assert not results_compare.compare_stats("A", a, "B", b, [0.5, 0.95, 0.99], tolerance=1000).regressions


def test_relative_thresholds_resolve_against_the_baseline() -> None:
    base = _stats()
    p95 = base.get("/a", "GET").get_response_time_percentile(0.95)
    rps = base.total.total_rps
    parsed = [
        thresholds.parse_threshold("GET /a p95<baseline+10%"),
        thresholds.parse_threshold("rps>baseline-5%"),
        thresholds.parse_threshold("avg<=baseline+20ms"),
        thresholds.parse_threshold("fail_ratio<=baseline"),
        thresholds.parse_threshold("/missing p99<baseline+1%"),
        thresholds.parse_threshold("failures==0"),
    ]
    assert parsed[0].relative == ("+", 10.0, "%") and parsed[0].unresolved
    resolved = thresholds.resolve_relative(parsed, base, "RUN-A")
    assert resolved[0].value == pytest.approx(round(p95 * 1.1, 3)) and resolved[0].baseline == p95
    assert resolved[1].value == pytest.approx(rps * 0.95)
    assert resolved[2].value == pytest.approx(round(base.total.avg_response_time + 20, 3))
    assert resolved[4].unresolved and resolved[5] is parsed[5]
    results = thresholds.evaluate(resolved, base)
    assert len(results) == 5  # the unresolved one is skipped, and said so
    assert thresholds.skipped_lines(resolved, "no such row") == [
        "Threshold skipped: /missing p99<baseline+1% (no such row)"
    ]
    line = results[0].line()
    assert line.startswith("Threshold passed: GET /a p95<baseline+10% (measured ")
    assert f"baseline {thresholds.format_value('time', p95)} (run RUN-A), limit " in line
    assert results[3].passed  # fail_ratio<=baseline on the baseline itself
    as_json = thresholds.results_to_json(results)
    assert as_json[0]["baseline"] == p95 and as_json[0]["baseline_run"] == "RUN-A"
    for bad in ("p95<baseline+", "p95<baseline*2", "p95<baseline+10x", "fail_ratio<baseline+2ms"):
        with pytest.raises(thresholds.ThresholdError):
            thresholds.parse_threshold(bad)


def test_effective_options_leave_credentials_out() -> None:
    import argparse

    options = argparse.Namespace(
        num_users=5, web_auth="admin:pw", web_token="t0k3n", curve_keys="/keys", host="http://x",
        labels=[("env", "ci")], thresholds=[thresholds.parse_threshold("p95<1s")], api_secret="s",
        my_password="p", tags=["a", "b"], obj=object(), db_dsn="postgresql://u:pw@h/db",
    )  # fmt: skip
    stored = results_record.effective_options(options, {"db_dsn"})
    assert stored == {"num_users": 5, "host": "http://x", "tags": ["a", "b"], "thresholds": ["p95<1s"]}


def test_label_syntax() -> None:
    assert results_record.parse_label(" build = 1234 ") == ("build", "1234")
    assert results_record.parse_label("note=") == ("note", "")
    for bad in ("nolabel", "=x"):
        with pytest.raises(ValueError, match="KEY=VALUE"):
            results_record.parse_label(bad)


def _lcore(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lcore.launcher.main", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--no-results-db", "--threshold", "p95<baseline+10%"], "needs the results store"),
        (["--no-results-db", "--baseline", "last"], "cannot be combined with --no-results-db"),
        (["--baseline", "label:nothing"], "write label:KEY=VALUE"),
        (["--label", "oops"], "a label is KEY=VALUE"),
        (["--report-trend", "-1"], "--report-trend must be 0 or more"),
    ],
)
def test_option_mistakes_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "locustfile.py").write_text("from lcore import HttpUser, task\nclass U(HttpUser):\n    @task\n    def t(self): pass\n")
    done = _lcore("-f", "locustfile.py", "--headless", *args, cwd=tmp_path)
    assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_runs_cli_errors_are_one_line(tmp_path: Path) -> None:
    done = _lcore("runs", "list", "--results-db", str(tmp_path / "none.db"), cwd=tmp_path)
    assert done.returncode == 1 and done.stderr.startswith("lcore: error: no results store at")
    with results_db.open_store(tmp_path / "r.db"):
        pass
    done = _lcore("runs", "compare", "x", cwd=tmp_path)
    assert done.returncode == 1 and "lcore: error:" in done.stderr and "Traceback" not in done.stderr
    done = _lcore("runs", "--results-db", str(tmp_path / "r.db"), "show", "nope", cwd=tmp_path)
    assert done.returncode == 1 and "no run 'nope'" in done.stderr
    done = _lcore("runs", "list", "--results-db", str(tmp_path / "r.db"), cwd=tmp_path)
    assert done.returncode == 0 and "No runs in" in done.stdout
    done = _lcore("-f", "x.py", "--headless", "--baseline", "nope-id", "--results-db", str(tmp_path / "r.db"), cwd=tmp_path)
    assert done.returncode == 1


def test_a_run_with_a_missing_baseline_id_stops_before_it_starts(tmp_path: Path, target) -> None:
    (tmp_path / "locustfile.py").write_text("from lcore import HttpUser, task\nclass U(HttpUser):\n    @task\n    def t(self): self.client.get('/')\n")
    done = _lcore("-f", "locustfile.py", "--headless", "-H", target.url, "-t", "2s", "--baseline", "nope-id",
                  "--results-db", str(tmp_path / "r.db"), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1 and "--baseline nope-id: no run 'nope-id'" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
    # no baseline yet (a first CI run): the relative thresholds are skipped, the run passes
    done = _lcore("-f", "locustfile.py", "--headless", "-H", target.url, "-t", "2s", "--threshold",
                  "p95<baseline+10%", "--results-db", str(tmp_path / "r.db"), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Threshold skipped: p95<baseline+10% (no finished run in" in done.stdout


def test_the_test_suite_never_writes_the_default_store(private_results_store: Path) -> None:
    import os

    assert os.environ[results_db.DEFAULT_ENV] == str(private_results_store)
    assert "results-store" in str(private_results_store)
