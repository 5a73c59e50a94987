"""CSV, console and JSON reports: Locust's column names, rows consistent with the stats."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from lcore.exporters import report_console, report_csv, report_json
from lcore.stats import PERCENTILES, MergedStats, RequestStats

# Locust 2.x (stats.py, StatsCSV / StatsCSVFileWriter), verbatim
LOCUST_PERCENTILES = [
    "50%",
    "66%",
    "75%",
    "80%",
    "90%",
    "95%",
    "98%",
    "99%",
    "99.9%",
    "99.99%",
    "100%",
]
LOCUST_STATS_HEADER = [
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Average Response Time",
    "Min Response Time",
    "Max Response Time",
    "Average Content Size",
    "Requests/s",
    "Failures/s",
    *LOCUST_PERCENTILES,
]
LOCUST_HISTORY_HEADER = [
    "Timestamp",
    "User Count",
    "Type",
    "Name",
    "Requests/s",
    "Failures/s",
    *LOCUST_PERCENTILES,
    "Total Request Count",
    "Total Failure Count",
    "Total Median Response Time",
    "Total Average Response Time",
    "Total Min Response Time",
    "Total Max Response Time",
    "Total Average Content Size",
]
LOCUST_FAILURES_HEADER = ["Method", "Name", "Error", "Occurrences", "First Seen", "Last Seen"]
LOCUST_EXCEPTIONS_HEADER = ["Count", "Message", "Traceback", "Nodes"]
LOCUST_JSON_KEYS = {
    "name",
    "method",
    "last_request_timestamp",
    "start_time",
    "num_requests",
    "num_none_requests",
    "num_failures",
    "total_response_time",
    "max_response_time",
    "min_response_time",
    "total_content_length",
    "response_times",
    "num_reqs_per_sec",
    "num_fail_per_sec",
}


@pytest.fixture
def stats() -> MergedStats:
    rng = random.Random(5)
    clock = [1000.0]
    merged = MergedStats(clock=lambda: clock[0])
    for second in range(3):
        for worker in ("w1", "w2"):
            recorder = RequestStats(now=1000.0 + second)
            for _ in range(300):
                i = rng.randrange(4)
                error = "HTTPError('500')" if rng.random() < 0.05 else None
                recorder.record(
                    "GET" if i else "POST", f"/item/{i}", rng.lognormvariate(3, 1), 100 + i, error
                )
            recorder.log_exception("KeyError: 'x'", 'Traceback:\n  File "a.py"\nKeyError')
            clock[0] = 1001.0 + second
            merged.merge(worker, recorder.take_delta(now=clock[0]))
    merged.get("/never", "GET")  # an entry without requests, as Locust's stats.get makes one
    return merged


def read(path: str) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_csv_headers_are_locusts(stats: MergedStats, tmp_path: Path) -> None:
    prefix = str(tmp_path / "run")
    report_csv.write_csv_files(stats, prefix)
    with report_csv.StatsHistoryWriter(prefix) as history:
        history.write(stats, 10, now=1003.0)
    assert report_csv.percentile_headers(PERCENTILES) == LOCUST_PERCENTILES
    # Locust's columns as Locust has them, then the same percentiles from the intended start
    corrected = [f"Corrected {p}" for p in LOCUST_PERCENTILES]
    assert read(f"{prefix}_stats.csv")[0] == LOCUST_STATS_HEADER + corrected
    assert read(f"{prefix}_failures.csv")[0] == LOCUST_FAILURES_HEADER
    assert read(f"{prefix}_exceptions.csv")[0] == LOCUST_EXCEPTIONS_HEADER
    assert read(f"{prefix}_stats_history.csv")[0] == LOCUST_HISTORY_HEADER + corrected


def test_stats_rows_match_the_stats(stats: MergedStats, tmp_path: Path) -> None:
    prefix = str(tmp_path / "run")
    report_csv.write_csv_files(stats, prefix)
    header, *rows = read(f"{prefix}_stats.csv")
    entries = [*stats.sorted_entries(), stats.total]
    assert [(r[0], r[1]) for r in rows] == [(e.method, e.name) for e in entries]
    assert rows[-1][:2] == ["", "Aggregated"]
    for row, e in zip(rows, entries, strict=True):
        fields = dict(zip(header, row, strict=True))
        assert int(fields["Request Count"]) == e.num_requests
        assert int(fields["Failure Count"]) == e.num_failures
        expected = {
            "Median Response Time": e.median_response_time,
            "Average Response Time": e.avg_response_time,
            "Min Response Time": e.min_response_time or 0,
            "Max Response Time": e.max_response_time,
            "Average Content Size": e.avg_content_length,
            "Requests/s": e.total_rps,
            "Failures/s": e.total_fail_per_sec,
        }
        for column, value in expected.items():
            assert float(fields[column]) == pytest.approx(value, abs=0.0006), column
        if e.num_requests:
            for column, p in zip(LOCUST_PERCENTILES, PERCENTILES, strict=True):
                assert float(fields[column]) == pytest.approx(
                    e.get_response_time_percentile(p), abs=0.0006
                )
        else:
            assert [fields[c] for c in LOCUST_PERCENTILES] == ["N/A"] * len(PERCENTILES)
    assert sum(int(r[2]) for r in rows[:-1]) == int(rows[-1][2]) == stats.num_requests


def test_failures_and_exceptions_rows(stats: MergedStats, tmp_path: Path) -> None:
    prefix = str(tmp_path / "run")
    report_csv.write_csv_files(stats, prefix)
    _, *failures = read(f"{prefix}_failures.csv")
    assert {(r[0], r[1], r[2]): int(r[3]) for r in failures} == {
        key: e.occurrences for key, e in stats.errors.items()
    }
    assert sum(int(r[3]) for r in failures) == stats.num_failures
    assert all(r[4].endswith("Z") and r[4] <= r[5] for r in failures)
    _, *exceptions = read(f"{prefix}_exceptions.csv")
    assert exceptions == [["6", "KeyError: 'x'", 'Traceback:\n  File "a.py"\nKeyError', "w1, w2"]]


@pytest.mark.parametrize("full_history", [False, True])
def test_history_appends_a_row_per_call(
    stats: MergedStats, tmp_path: Path, full_history: bool
) -> None:
    prefix = str(tmp_path / "run")
    with report_csv.StatsHistoryWriter(prefix, full_history=full_history) as history:
        history.write(stats, 7, now=1002.4)
        history.write(stats, 8, now=1003.9)
    header, *rows = read(f"{prefix}_stats_history.csv")
    per_call = len(stats.entries) + 1 if full_history else 1
    assert len(rows) == 2 * per_call
    assert [r[0] for r in rows] == ["1002"] * per_call + ["1003"] * per_call
    assert [r[1] for r in rows] == ["7"] * per_call + ["8"] * per_call
    last = dict(zip(header, rows[-1], strict=True))
    assert (last["Type"], last["Name"]) == ("", "Aggregated")
    assert int(last["Total Request Count"]) == stats.num_requests
    assert int(last["Total Failure Count"]) == stats.num_failures
    assert float(last["Requests/s"]) == pytest.approx(stats.total.current_rps, abs=0.0006)
    assert float(last["Total Max Response Time"]) == pytest.approx(
        stats.total.max_response_time, abs=0.0006
    )
    if full_history:
        assert [(r[2], r[3]) for r in rows[: per_call - 1]] == [
            (e.method, e.name) for e in stats.sorted_entries()
        ]


def test_history_writer_refuses_writes_after_close(tmp_path: Path) -> None:
    history = report_csv.StatsHistoryWriter(str(tmp_path / "x"))
    history.close()
    history.close()
    with pytest.raises(ValueError, match="closed"):
        history.write(MergedStats())


def test_console_tables(stats: MergedStats) -> None:
    table = report_console.stats_table(stats, user_count=12)
    lines = table.splitlines()
    for column in (
        "Type",
        "Name",
        "# reqs",
        "# fails",
        "Avg",
        "Min",
        "Max",
        "Med",
        "req/s",
        "failures/s",
    ):
        assert column in lines[0]
    assert any("/item/1" in line for line in lines)
    aggregated = next(line for line in lines if "Aggregated" in line)
    assert f" {stats.num_requests} " in aggregated
    assert f"{stats.num_failures}({stats.total.fail_ratio * 100:.2f}%)" in aggregated
    assert lines[-1] == "Users: 12"
    assert len({len(line) for line in lines[:-1] if not line.startswith("-")}) == 1  # aligned

    percentiles = report_console.percentiles_table(stats).splitlines()
    assert percentiles[0] == "Response time percentiles (ms)"
    assert all(h in percentiles[1] for h in LOCUST_PERCENTILES)
    assert "Aggregated" in percentiles[-1]
    assert not any("/never" in line for line in percentiles)  # no requests, no row

    errors = report_console.errors_table(stats)
    assert errors.splitlines()[0] == "Error report"
    assert "GET /item/1: HTTPError('500')" in errors
    assert report_console.errors_table(MergedStats()) == ""
    assert "KeyError" in report_console.exceptions_table(stats)


def test_console_shows_sub_millisecond_times() -> None:
    merged = MergedStats()
    recorder = RequestStats()
    for t in (0.21, 0.35, 0.4):
        recorder.record("GET", "/fast", t, 0, None)
    merged.merge("w", recorder.take_delta())
    table = report_console.stats_table(merged)
    assert "0.21" in table and "0.40" in table


def test_json_has_locusts_keys_and_matches(stats: MergedStats) -> None:
    document = report_json.stats_to_json(stats)
    json.dumps(document)  # serializable as is
    entries = [e for e in stats.sorted_entries() if e.num_requests]
    assert [(d["name"], d["method"]) for d in document] == [(e.name, e.method) for e in entries]
    for d, e in zip(document, entries, strict=True):
        assert LOCUST_JSON_KEYS <= set(d)
        assert d["num_requests"] == e.num_requests and d["num_failures"] == e.num_failures
        assert sum(d["response_times"].values()) == e.num_requests
        assert d["max_response_time"] == pytest.approx(e.max_response_time, abs=0.001)
        assert d["total_response_time"] == pytest.approx(e.total_response_time, abs=0.001)
        assert d["response_time_percentiles"]["0.95"] == pytest.approx(
            e.get_response_time_percentile(0.95), abs=0.001
        )
