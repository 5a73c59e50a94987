"""CI thresholds: parsing, evaluation on known stats, abort rules, exit code, JSON and JUnit."""

from __future__ import annotations

import json
import signal
import time
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lcore.exporters import thresholds as th
from lcore.exporters.report_junit import write_junit
from lcore.exporters.thresholds import (
    THRESHOLD_EXIT_CODE,
    Result,
    ThresholdError,
    breached,
    evaluate,
    parse_threshold,
    results_to_json,
)
from lcore.launcher import master_main
from lcore.launcher.options import OptionsError, build_parser, parse_options
from lcore.stats import MergedStats, RequestStats

START, END = 1000.0, 1010.0  # the delta covers 10 s: rates are requests / 10


def merged(samples: list[tuple[str, str, float, bool]]) -> MergedStats:
    """A MergedStats holding exactly ``samples`` (method, name, ms, failed), over 10 s."""
    recorder = RequestStats(now=START)
    for method, name, ms, failed in samples:
        recorder.record(method, name, ms, 10, "boom" if failed else None)
    stats = MergedStats(clock=lambda: END)
    stats.merge("worker-1", recorder.take_delta(now=END), now=END)
    return stats


def known_samples() -> list[tuple[str, str, float, bool]]:
    samples = [("GET", "/api", float(i), i % 20 == 0) for i in range(1, 101)]  # 5 failures
    samples += [("POST", "/login", 200.0, False)] * 50
    samples += [("GET", "/login", 50.0, False)] * 10
    samples += [("GET", "/slow", 412.3, False)]
    return samples  # 161 requests, 5 failures


@pytest.fixture
def stats() -> MergedStats:
    return merged(known_samples())


def check(expression: str, stats: MergedStats) -> Result:
    [result] = evaluate([parse_threshold(expression)], stats)
    return result


# -- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "metric", "op", "value", "method", "name"),
    [
        ("p95<300ms", "p95", "<", 300.0, None, None),
        ("GET /api p99<1s", "p99", "<", 1000.0, "GET", "/api"),
        ("fail_ratio<0.01", "fail_ratio", "<", 0.01, None, None),
        ("fail_ratio<1%", "fail_ratio", "<", 0.01, None, None),
        ("rps>500", "rps", ">", 500.0, None, None),
        ("avg<200", "avg", "<", 200.0, None, None),
        ("max<=2s", "max", "<=", 2000.0, None, None),
        ("requests>=1000", "requests", ">=", 1000.0, None, None),
        ("failures==0", "failures", "==", 0.0, None, None),
        ("  p99.9 <  1.5m ", "p99.9", "<", 90_000.0, None, None),
        ("p95<1.1s", "p95", "<", 1100.0, None, None),  # not 1100.0000000000002
        ("/login median<100", "median", "<", 100.0, None, "/login"),
        ("post /item?id=7 MEAN<20", "avg", "<", 20.0, "post", "/item?id=7"),
        ("'Log in page' max<1s", "max", "<", 1000.0, None, "Log in page"),
        ('DELETE "a b" p50<5', "median", "<", 5.0, "DELETE", "a b"),
        ("Aggregated p90<1s", "p90", "<", 1000.0, None, None),
        ("num_failures<3", "failures", "<", 3.0, None, None),
    ],
)
def test_parses_expressions(text, metric, op, value, method, name) -> None:
    t = parse_threshold(text)
    assert (t.metric, t.op, t.value, t.method, t.name) == (metric, op, value, method, name)
    assert str(t) == " ".join(text.split())


def test_percentiles_become_fractions() -> None:
    assert parse_threshold("p95<1").percentile == 0.95
    assert parse_threshold("p99.9<1").percentile == 0.999
    assert parse_threshold("p100<1").percentile == 1.0
    assert parse_threshold("median<1").percentile == 0.5


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "expected METRIC OP VALUE"),
        ("p95", "expected METRIC OP VALUE"),
        ("p95 300ms", "expected METRIC OP VALUE"),
        ("p95=300", "expected METRIC OP VALUE"),
        ("p95<", "no value"),
        ("<300", "no metric"),
        ("p95<<300", "more than one comparison"),
        ("1<p95<300", "more than one comparison"),
        ("latency<300", "unknown metric 'latency'"),
        ("p0<300", "above p0"),
        ("p101<300", "at most p100"),
        ("p95<3x", "'3x' is not a number"),
        ("p95<-3", "is not a number"),
        ("p95<300%", "is a time"),
        ("fail_ratio<5", "ratio between 0 and 1"),
        ("fail_ratio<1s", "is a ratio"),
        ("rps>5ms", "plain number"),
        ("requests>=10.5", "whole number"),
    ],
)
def test_malformed_expressions_are_one_line_errors(text, reason) -> None:
    with pytest.raises(ThresholdError) as caught:
        parse_threshold(text)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert "\n" not in message
    assert reason in message
    assert repr(" ".join(text.split())) in message


def test_options_reject_a_bad_threshold_at_parse_time(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no stray lcore.conf or pyproject.toml
    with pytest.raises(OptionsError) as caught:
        parse_options(["--demo", "--threshold", "p95<fast"], environ={})
    assert str(caught.value).startswith("argument --threshold: invalid threshold 'p95<fast'")
    with pytest.raises(OptionsError, match=r"LCORE_THRESHOLD: --threshold: invalid threshold"):
        parse_options(["--demo"], environ={"LCORE_THRESHOLD": "p95<<1"})
    (tmp_path / "lcore.conf").write_text("threshold = [p95<300ms, nonsense<1]\n")
    with pytest.raises(OptionsError, match=r"lcore.conf, line 1: --threshold: .*'nonsense'"):
        parse_options(["--demo"], environ={})


def test_options_collect_thresholds_from_every_source(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    options = parse_options(
        ["--demo", "--threshold", "p95<300ms", "--threshold", "GET /api failures==0"], environ={}
    )
    assert [t.text for t in options.thresholds] == ["p95<300ms", "GET /api failures==0"]
    assert options.threshold_abort is False and options.junit_file is None
    options = parse_options(["--demo"], environ={"LCORE_THRESHOLD": "rps>5"})
    assert [t.text for t in options.thresholds] == ["rps>5"]
    (tmp_path / "lcore.conf").write_text("threshold = [p95<300ms, fail_ratio<1%]\njunit = j.xml\n")
    options = parse_options(["--demo", "--threshold-abort"], environ={})
    assert [t.text for t in options.thresholds] == ["p95<300ms", "fail_ratio<1%"]
    assert options.threshold_abort and options.junit_file == "j.xml"
    # the command line replaces the config file's list, as for every other option
    options = parse_options(["--demo", "--threshold", "max<1s"], environ={})
    assert options.thresholds == [parse_threshold("max<1s")]


def test_options_need_a_threshold_for_abort_and_junit(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for flags in (["--threshold-abort"], ["--junit", "out.xml"]):
        with pytest.raises(OptionsError, match="needs at least one --threshold"):
            parse_options(["--demo", *flags], environ={})
    with pytest.raises(OptionsError, match="belongs on the master"):
        parse_options(["--demo", "--worker", "--threshold", "p95<1s"], environ={})


def test_options_live_in_the_lcore_group() -> None:
    parser = build_parser()
    group = next(g for g in parser._action_groups if g.title == "lcore options")
    flags = {s for a in group._group_actions for s in a.option_strings}
    assert {"--threshold", "--threshold-abort", "--junit"} <= flags


# -- evaluation on known stats -----------------------------------------------------------


def test_the_known_stats_are_what_the_tests_assume(stats) -> None:
    assert stats.total.num_requests == 161 and stats.total.num_failures == 5
    assert stats.total.total_rps == pytest.approx(16.1)


@pytest.mark.parametrize(
    ("expression", "passed", "measured"),
    [
        ("p95<300ms", True, 199.7),  # 95 % of 161 is rank 153: a POST /login at 200 ms
        ("p95<150", False, 199.7),
        ("GET /api p99<1s", True, 99.0),
        ("GET /api p99<90ms", False, 99.0),
        ("GET /api p50<=50", True, 50.0),
        ("fail_ratio<0.01", False, 5 / 161),
        ("fail_ratio<5%", True, 5 / 161),
        ("GET /api fail_ratio<=0.05", True, 0.05),
        ("rps>500", False, 16.1),
        ("rps>=16.1", True, 16.1),
        ("GET /api rps==10", True, 10.0),
        ("avg<200", True, (5050 + 50 * 200 + 10 * 50 + 412.3) / 161),
        ("max<=2s", True, 412.3),
        ("max<400", False, 412.3),
        ("min>=1", True, 1.0),
        ("requests>=1000", False, 161),
        ("requests>=161", True, 161),
        ("failures==0", False, 5),
        ("POST /login failures==0", True, 0),
        ("GET /api failures==5", True, 5),
        ("GET /api fail_rps<1", True, 0.5),
        ("/login avg==175", True, 175.0),  # both methods: (50 * 200 + 10 * 50) / 60
        ("/login requests==60", True, 60),
        ("POST /login requests==50", True, 50),
    ],
)
def test_evaluates_known_stats(stats, expression, passed, measured) -> None:
    result = check(expression, stats)
    assert result.passed is passed, result.line()
    assert result.measured == pytest.approx(measured, rel=0.01)  # histogram: ≤ 1 % error


def test_percentiles_are_the_reports_figures(stats) -> None:
    entry = stats.entries[("/api", "GET")]
    assert check("GET /api p99<1s", stats).measured == entry.get_response_time_percentile(0.99)
    assert check("p95<1s", stats).measured == stats.total.get_response_time_percentile(0.95)
    assert check("avg<1s", stats).measured == stats.total.avg_response_time


def test_a_bound_equal_to_the_figure(stats) -> None:
    assert check("max<=412.3", stats).passed
    assert not check("max<412.3", stats).passed
    assert check("max>=0.4123s", stats).passed


def test_a_row_without_requests_fails_times_and_counts_zero(stats) -> None:
    before = set(stats.entries)
    result = check("GET /nope p95<1s", stats)
    assert not result.passed and result.measured is None
    assert result.line() == "Threshold failed: GET /nope p95<1s (no requests for GET /nope)"
    assert check("GET /nope failures==0", stats).passed
    assert check("GET /nope requests==0", stats).measured == 0
    assert set(stats.entries) == before  # measuring added no empty row to the reports


def test_an_empty_run_fails_time_thresholds() -> None:
    result = check("p95<300ms", MergedStats(clock=lambda: END))
    assert not result.passed
    assert "no requests for Aggregated" in result.line()


def test_the_report_line_names_threshold_and_measured_value(stats) -> None:
    assert check("max<300ms", stats).line() == "Threshold failed: max<300ms (measured 412.3 ms)"
    assert check("max<1s", stats).line() == "Threshold passed: max<1s (measured 412.3 ms)"
    assert check("failures==0", stats).line() == "Threshold failed: failures==0 (measured 5)"
    assert check("rps>500", stats).line() == "Threshold failed: rps>500 (measured 16.1/s)"
    assert check("fail_ratio<1%", stats).line() == (
        "Threshold failed: fail_ratio<1% (measured 0.031056)"
    )
    assert check("max<300ms", stats).message() == "measured 412.3 ms, expected max < 300 ms"
    assert check("GET /nope max<3", stats).message() == (
        "no requests for GET /nope, expected GET /nope max < 3 ms"
    )


# -- during the run ------------------------------------------------------------------------


def test_abortable_thresholds() -> None:
    abortable = ["p95<300ms", "avg<=1s", "fail_ratio<1%", "rps<5000", "failures==0", "max<2s"]
    abortable += ["requests<=10", "requests==100", "min>1"]
    end_only = ["rps>500", "requests>=1000", "p95>1", "fail_ratio==0", "avg==3", "min<5"]
    assert all(parse_threshold(t).abortable for t in abortable)
    assert not any(parse_threshold(t).abortable for t in end_only)


def test_breached_reports_only_final_or_trusted_breaches() -> None:
    few = merged([("GET", "/a", 500.0, True)] * 5)
    many = merged([("GET", "/a", 500.0, True)] * 150)
    exprs = ["p95<300ms", "failures==0", "fail_ratio<1%", "rps>1000", "requests>=10000"]
    ts = [parse_threshold(e) for e in exprs]
    # with 5 requests a percentile or ratio is not trusted yet, but a failure is a failure
    assert [r.threshold.text for r in breached(ts, few)] == ["failures==0"]
    assert [r.threshold.text for r in breached(ts, few, min_requests=5)] == [
        "p95<300ms",
        "failures==0",
        "fail_ratio<1%",
    ]
    found = breached(ts, many)
    assert [r.threshold.text for r in found] == ["p95<300ms", "failures==0", "fail_ratio<1%"]
    assert all(r.during_run and not r.passed for r in found)
    assert found[0].line() == "Threshold failed: p95<300ms (measured 500 ms, stopped the test)"


def test_breached_waits_for_an_exact_count_until_it_is_passed() -> None:
    stats = merged([("GET", "/a", 1.0, False)] * 20)
    ts = [parse_threshold("requests==100"), parse_threshold("requests==10")]
    assert [r.threshold.text for r in breached(ts, stats)] == ["requests==10"]
    assert [r.threshold.text for r in breached([parse_threshold("min==5")], stats)] == ["min==5"]
    assert breached([parse_threshold("min==0.5")], stats) == []


def test_a_breach_that_stopped_the_test_stays_failed(stats) -> None:
    t = parse_threshold("GET /api p99<50ms")
    assert check("GET /api p99<50ms", stats).passed is False
    recovered = merged([("GET", "/api", 1.0, False)])
    early = Result(t, 80.0, False, during_run=True)
    other = parse_threshold("requests>=1")
    assert evaluate([t, other], recovered, [early]) == [early, Result(other, 1.0, True)]
    assert evaluate([t], recovered) == [Result(t, 1.0, True)]
    # still failing at the end: the final figure, still marked as what stopped the test
    [final] = evaluate([t], stats, [early])
    assert final.during_run and not final.passed and final.measured == check(str(t), stats).measured
    assert not th.failed([Result(t, 1.0, True)]) and th.failed([early])


_EXPRESSIONS = st.sampled_from(
    ["p95<300ms", "p50<=20", "avg<100", "max<250", "min>5", "fail_ratio<10%", "failures==0"]
    + ["requests<=30", "requests==12", "rps>2", "GET /a p99<200", "/b avg<50", "failures<3"]
)
_SAMPLES = st.lists(
    st.tuples(
        st.sampled_from(["GET", "POST"]),
        st.sampled_from(["/a", "/b"]),
        st.floats(0.5, 400.0),
        st.booleans(),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(samples=_SAMPLES, exprs=st.lists(_EXPRESSIONS, min_size=1, max_size=6, unique=True))
def test_whatever_stops_a_test_also_fails_it(samples, exprs) -> None:
    stats = merged(samples)
    ts = [parse_threshold(e) for e in exprs]
    final = {r.threshold: r for r in evaluate(ts, stats)}
    for result in breached(ts, stats, min_requests=0):
        assert result.threshold.abortable
        assert not final[result.threshold].passed
        assert result.measured == final[result.threshold].measured


# -- exit code, JSON, JUnit ----------------------------------------------------------------


def test_the_exit_code_is_distinct() -> None:
    parser = build_parser()
    exit_on_error = next(a for a in parser._actions if a.dest == "exit_code_on_error")
    assert THRESHOLD_EXIT_CODE not in (0, 1, 2, exit_on_error.default)
    assert THRESHOLD_EXIT_CODE < 128 + min(signal.Signals)  # no death by signal looks like it
    ok = Result(parse_threshold("p95<1s"), 5.0, True)
    bad = Result(parse_threshold("p95<1ms"), 5.0, False)
    assert th.exit_code([ok]) is None and th.exit_code([]) is None
    assert th.exit_code([ok, bad]) == THRESHOLD_EXIT_CODE


def test_results_to_json(stats) -> None:
    results = evaluate([parse_threshold("GET /api p99<1s"), parse_threshold("failures==0")], stats)
    document = json.loads(json.dumps(results_to_json(results)))
    assert document[0] == {
        "threshold": "GET /api p99<1s",
        "metric": "p99",
        "method": "GET",
        "name": "/api",
        "operator": "<",
        "expected": 1000.0,
        "unit": "ms",
        "measured": pytest.approx(99.0, rel=0.01),
        "passed": True,
        "during_run": False,
    }
    assert document[1]["passed"] is False and document[1]["measured"] == 5
    assert document[1]["unit"] is None


def read_junit(path: Path) -> ET.Element:
    assert path.read_bytes().startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    return ET.parse(path).getroot()


def test_junit_report_has_a_case_per_threshold(tmp_path, stats) -> None:
    exprs = ["p95<300ms", "GET /api p99<90ms", "failures==0", "GET /x&y max<5"]
    results = evaluate([parse_threshold(e) for e in exprs], stats)
    path = tmp_path / "junit.xml"
    write_junit(results, path, duration=12.5, timestamp=datetime(2024, 5, 1, 12, 0, 0))
    root = read_junit(path)
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("4", "3", "0")
    [suite] = root
    assert suite.tag == "testsuite" and suite.get("name") == "lcore thresholds"
    for attribute in ("tests", "failures", "errors", "skipped", "time", "timestamp", "hostname"):
        assert suite.get(attribute), attribute
    assert suite.get("time") == "12.500" and suite.get("timestamp").startswith("2024-05-01T")
    assert [child.tag for child in suite][0] == "properties"
    assert [child.tag for child in suite][-2:] == ["system-out", "system-err"]
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == exprs  # '<' and '&' survive the round trip
    assert all(c.get("classname") and c.get("time") for c in cases)
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure.get("type") == "ThresholdFailed"
    assert failure.get("message") == (
        f"measured {th.format_value('time', results[1].measured)}, expected GET /api p99 < 90 ms"
    )
    assert failure.text == results[1].line()
    assert cases[3].find("failure").get("message").startswith("no requests for GET /x&y")


def test_junit_report_of_all_passed_and_of_none(tmp_path, stats) -> None:
    path = tmp_path / "ok.xml"
    write_junit(evaluate([parse_threshold("p95<1s")], stats), path, suite_name="smoke")
    root = read_junit(path)
    assert root.get("failures") == "0" and root[0].get("name") == "smoke"
    assert root[0].find("testcase/failure") is None
    write_junit([], path)
    assert read_junit(path)[0].get("tests") == "0"


# -- the whole program (once the master runs thresholds) -----------------------------------

WIRED = "thresholds" in Path(master_main.__file__).read_text()

LOCUSTFILE = """
from locust import HttpUser, task, constant

class Quick(HttpUser):
    wait_time = constant(0.05)

    @task
    def index(self):
        self.client.get("/")

    @task
    def broken(self):
        self.client.get("/status/{status}", name="/broken")
"""


@pytest.mark.integration
@pytest.mark.skipif(not WIRED, reason="launcher/master_main.py does not evaluate thresholds yet")
def test_a_failed_threshold_fails_the_run(tmp_path, target, run_lcore) -> None:
    from test_engine import common, free_port

    lf = tmp_path / "locustfile.py"
    lf.write_text(LOCUSTFILE.format(status=200))
    junit = tmp_path / "junit.xml"
    proc = run_lcore(
        "-f", str(lf), "-H", target.url, "--headless", "-u", "2", "-r", "2", "-t", "2s",
        "--threshold", "requests<1", "--threshold", "GET / fail_ratio<1%", "--junit", str(junit),
        *common(free_port()),
    )  # fmt: skip
    assert proc.wait(60) == THRESHOLD_EXIT_CODE, proc.output
    served = sum(target.counts().values())
    assert f"Threshold failed: requests<1 (measured {served})" in proc.output
    assert "Threshold passed: GET / fail_ratio<1% (measured 0)" in proc.output
    cases = read_junit(junit).findall("testsuite/testcase")
    assert [c.find("failure") is not None for c in cases] == [True, False]


@pytest.mark.integration
@pytest.mark.skipif(not WIRED, reason="launcher/master_main.py does not evaluate thresholds yet")
def test_threshold_abort_stops_the_run_early(tmp_path, target, run_lcore) -> None:
    from test_engine import common, free_port

    lf = tmp_path / "locustfile.py"
    lf.write_text(LOCUSTFILE.format(status=500))
    started = time.monotonic()
    proc = run_lcore(
        "-f", str(lf), "-H", target.url, "--headless", "-u", "2", "-r", "2", "-t", "60s",
        "--threshold", "failures==0", "--threshold", "rps>1000", "--threshold-abort",
        *common(free_port()),
    )  # fmt: skip
    assert proc.wait(60) == THRESHOLD_EXIT_CODE, proc.output
    assert time.monotonic() - started < 40, proc.output  # well before -t 60s
    assert "Threshold failed: failures==0 (measured " in proc.output
    assert "stopped the test)" in proc.output
    assert "Threshold failed: rps>1000" in proc.output  # end-only, but judged at the end
