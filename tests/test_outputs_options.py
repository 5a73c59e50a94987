"""--out NAME=TARGET (k6's way of naming outputs), --label, --log-format and the push options:
what they resolve to, the one-line errors, and Locust's own --csv/--html/--json unchanged."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from lcore.launcher.options import OptionsError, parse_options


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "home").mkdir()
    (tmp_path / "locustfile.py").write_text("from locust import User\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def parse(argv: list[str], env: dict[str, str] | None = None) -> argparse.Namespace:
    return parse_options(argv, {"HOME": str(Path.cwd() / "home"), **(env or {})})


def test_out_names_the_same_outputs_as_locusts_options(project: Path) -> None:
    o = parse([
        "--out", "csv=results", "--out", "json=stats.json", "--out", "html=report.html",
        "--out", "prometheus-rw=http://prom:9090/api/v1/write", "--out", "otlp=http://otel:4318",
    ])  # fmt: skip
    assert (o.csv_prefix, o.json_file, o.html_file) == ("results", "stats.json", "report.html")
    assert o.prometheus_remote_write == "http://prom:9090/api/v1/write"
    assert o.otel is True and o._otlp_endpoint == "http://otel:4318"
    assert o.json is False  # Locust's --json (print to stdout) is another thing, untouched
    # k6's own names work too
    o = parse(["--out", "experimental-prometheus-rw=http://p/api/v1/write", "--out", "opentelemetry=http://c"])
    assert o.prometheus_remote_write == "http://p/api/v1/write" and o._otlp_endpoint == "http://c"


def test_locusts_options_are_unchanged(project: Path) -> None:
    o = parse(["--csv", "r", "--html", "h.html", "--json", "--json-file", "j"])
    assert (o.csv_prefix, o.html_file, o.json, o.json_file) == ("r", "h.html", True, "j")
    o = parse(["--csv", "r", "--out", "csv=r"])  # the same target both ways: fine
    assert o.csv_prefix == "r"


def test_labels_log_format_and_push_options(project: Path) -> None:
    o = parse(["--label", "env=staging", "--label", "build=1234", "--log-format", "json"])
    assert o.labels == [("env", "staging"), ("build", "1234")] and o.log_format == "json"
    assert parse([]).log_format == "text" and parse([]).push_interval == 5.0
    # credentials from the environment, not only the command line
    o = parse(
        ["--prometheus-remote-write", "https://prom/api/v1/write"],
        {"LCORE_PROMETHEUS_REMOTE_WRITE_TOKEN": "t0ken"},
    )
    assert o.prometheus_remote_write_token == "t0ken"
    assert parse([], {"LOCUST_ENABLE_OPENTELEMETRY": "true"}).otel is True


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--out", "statsd=localhost:8125"], "unknown output 'statsd'"),
        (["--out", "csv"], "--out csv needs a target"),
        (["--out", "csv=a", "--csv", "b"], "name two targets"),
        (["--label", "env"], "a label is KEY=VALUE"),
        (["--label", "=x"], "a label is KEY=VALUE"),
        (["--label", "env=a", "--label", "env=b"], "given twice"),
        (["--prometheus-remote-write", "prom:9090"], "needs an http:// or https:// URL"),
        (
            ["--prometheus-remote-write", "http://p/w", "--prometheus-remote-write-auth", "u:p",
             "--prometheus-remote-write-token", "t"],
            "choose one",
        ),
        (["--prometheus-remote-write", "http://p/w", "--prometheus-remote-write-auth", "user"], "USER:PASSWORD"),
        (["--worker", "--otel"], "belong on the master"),
        (["--push-interval", "0"], "--push-interval must be greater than 0"),
        (["--log-format", "xml"], "invalid choice"),
    ],
)
def test_mistakes_are_one_line_errors(project: Path, argv: list[str], message: str) -> None:
    with pytest.raises(OptionsError, match=None) as raised:
        parse(argv)
    text = str(raised.value)
    assert message in text and "\n" not in text, text


def test_the_command_line_says_a_bad_output_in_one_line(project: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lcore.launcher.main", "--headless", "--out", "statsd=x"],
        capture_output=True, text=True, timeout=60, cwd=project,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("lcore: error: --out statsd=x: unknown output")
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_help_names_the_outputs(project: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lcore.launcher.main", "--help"], capture_output=True, text=True, timeout=60
    )
    for text in ("--out NAME=TARGET", "prometheus-rw=URL", "--log-format", "--otel", "--label"):
        assert text in result.stdout, text
