"""The results store end to end: real lcore runs against the embedded target, saved in SQLite
and in a real PostgreSQL, read back with `lcore runs`, compared, used as baselines."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import lcore_command, wait_until
from contrib_servers import need_module, running_postgres
from test_engine import free_port

from lcore.exporters import results_db

LOCUSTFILE = """
import os
from lcore import HttpUser, constant, task

# the second run of a test sets SLOW_MS: /page answers that much later (the target's ?delay=)
SLOW_MS = os.environ.get("SLOW_MS", "0")


class Web(HttpUser):
    wait_time = constant(0.02)

    @task
    def page(self):
        self.client.get(f"/?delay={SLOW_MS}", name="/page")

    @task
    def steady(self):
        self.client.get("/json", name="/json")
"""


def runs_cli(*args: str, store: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        lcore_command("runs", *args, "--results-db", store),
        cwd=cwd, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def run_test(tmp_path: Path, target_url: str, store: str, *args: str, slow_ms: int = 0) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SLOW_MS=str(slow_ms), PYTHONUNBUFFERED="1")
    return subprocess.run(
        lcore_command(
            "-f", str(tmp_path / "locustfile.py"), "-H", target_url, "--headless", "-u", "4",
            "-r", "4", "-t", "3s", "--results-db", store, *args,
        ),
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90,
    )  # fmt: skip


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    need_module("psycopg")
    with running_postgres() as server:
        yield server.url + "/postgres"


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "history" / "runs.db")
    url = request.getfixturevalue("postgres_url")
    # each test its own database: the runs of one do not show in another's list
    import psycopg

    name = f"lcore_{time.monotonic_ns()}"
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + "/" + name


def test_two_runs_listed_compared_exported_and_the_baseline_threshold_fails(
    tmp_path: Path, target, store: str
) -> None:
    (tmp_path / "locustfile.py").write_text(LOCUSTFILE)
    first = run_test(
        tmp_path, target.url, store, "--csv", "first", "--label", "suite=history",
        "--label", "phase=base", "--web-auth", "admin:hunter2-secret",
    )  # fmt: skip
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    a = re.search(r"Run saved as (\S+) in", first.stdout).group(1)

    # the run's own CSV files, regenerated from the stored histograms: the same bytes
    exported = runs_cli("export", a, "--csv", str(tmp_path / "again"), store=store, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    for kind in ("stats", "failures", "exceptions"):
        original = (tmp_path / f"first_{kind}.csv").read_bytes()
        assert (tmp_path / f"again_{kind}.csv").read_bytes() == original, kind
    assert b"/page" in (tmp_path / "first_stats.csv").read_bytes()

    # the second run is slower on purpose; its threshold is relative to the first run
    second = run_test(
        tmp_path, target.url, store, "--label", "suite=history", "--label", "phase=slow",
        "--baseline", "label:phase=base", "--threshold", "/page p95<baseline+50%",
        "--threshold", "requests>baseline-90%", slow_ms=40,
    )  # fmt: skip
    assert second.returncode == 4, second.stdout[-3000:] + second.stderr[-3000:]
    failed = re.search(
        r"Threshold failed: /page p95<baseline\+50% \(measured ([\d.]+) ms, baseline ([\d.]+) ms "
        rf"\(run {a}\), limit ([\d.]+) ms\)",
        second.stdout,
    )
    assert failed, second.stdout[-2000:]
    measured, baseline, limit = (float(x) for x in failed.groups())
    assert measured >= 40 and measured > limit and limit == pytest.approx(baseline * 1.5, abs=0.002)
    assert re.search(r"Threshold passed: requests>baseline-90% \(measured \d+, baseline \d+", second.stdout)
    b = re.search(r"Run saved as (\S+) in", second.stdout).group(1)

    listed = runs_cli("list", "--label", "suite=history", "--json", store=store, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert [r["id"] for r in runs] == [a, b]  # oldest first
    assert runs[0]["labels"] == {"suite": "history", "phase": "base"}
    assert runs[0]["exit_code"] == 0 and runs[1]["exit_code"] == 4
    assert runs[0]["status"] == runs[1]["status"] == "finished"
    assert runs[0]["summary"]["requests"] > 50 and runs[0]["user_classes"] == {"Web": 4}
    assert runs_cli("list", "--label", "phase=slow", "--json", store=store, cwd=tmp_path).stdout.count('"id"') == 1

    compared = runs_cli("compare", a, b, store=store, cwd=tmp_path)
    assert compared.returncode == 4, compared.stdout + compared.stderr
    page_row = next(line for line in compared.stdout.splitlines() if " /page " in line)
    assert "slower" in page_row and "REGRESSION" in page_row, compared.stdout
    assert "Mann-Whitney U" in compared.stdout
    same = runs_cli("compare", a, a, store=store, cwd=tmp_path)
    assert same.returncode == 0 and "No regression" in same.stdout, same.stdout
    assert "slower" not in same.stdout

    shown = runs_cli("show", b[:17], store=store, cwd=tmp_path)  # a unique prefix will do
    assert shown.returncode == 0, shown.stderr
    assert "Run:" in shown.stdout and b in shown.stdout and "Threshold failed: /page p95<baseline+50%" in shown.stdout
    everything = runs_cli("show", a, "--json", store=store, cwd=tmp_path).stdout
    assert "hunter2-secret" not in everything  # credentials are never stored
    assert json.loads(everything)["options"]["num_users"] == 4

    deleted = runs_cli("delete", a, store=store, cwd=tmp_path)
    assert deleted.returncode == 0 and a in deleted.stdout
    assert [r["id"] for r in json.loads(runs_cli("list", "--json", store=store, cwd=tmp_path).stdout)] == [b]
    missing = runs_cli("show", a, store=store, cwd=tmp_path)
    assert missing.returncode == 1 and missing.stderr.startswith("lcore: error: no run") and "Traceback" not in missing.stderr


def test_a_killed_masters_checkpoint_survives(tmp_path: Path, target, run_lcore) -> None:
    (tmp_path / "locustfile.py").write_text(LOCUSTFILE)
    store = str(tmp_path / "runs.db")
    proc = run_lcore(
        "-f", "locustfile.py", "-H", target.url, "--headless", "-u", "3", "-r", "3", "-t", "60s",
        "--results-db", store, "--label", "killed=yes",
    )  # fmt: skip

    def checkpoint() -> dict | None:
        if not Path(store).exists():
            return None
        with results_db.open_store(store) as s:
            runs = s.runs({"killed": "yes"})
        return runs[0] if runs and (runs[0]["summary"] or {}).get("requests", 0) > 100 else None

    wait_until(checkpoint, timeout=40, interval=0.2)
    os.killpg(proc.proc.pid, signal.SIGKILL)
    killed_at = time.time()
    proc.proc.wait(timeout=10)
    with results_db.open_store(store) as s:
        run = s.runs({"killed": "yes"})[0]
        stored = s.run(run["id"])
    assert run["status"] == "running"  # it never got to say it ended
    assert killed_at - run["updated"] < 8  # a checkpoint every 2 s: a few seconds lost at most
    assert sum(e[2][0] for e in stored["results"]["entries"]) == run["summary"]["requests"] > 100
    assert stored["history"], "the per-second history is checkpointed too"
    listed = json.loads(runs_cli("list", "--json", store=store, cwd=tmp_path).stdout)
    assert listed[0]["status"] == "interrupted"
    shown = runs_cli("show", run["id"], store=store, cwd=tmp_path)
    assert shown.returncode == 0 and "interrupted" in shown.stdout and "/page" in shown.stdout


def test_a_distributed_run_is_saved_by_its_master(tmp_path: Path, target, run_lcore) -> None:
    (tmp_path / "locustfile.py").write_text(LOCUSTFILE)
    store = str(tmp_path / "runs.db")
    port = free_port()
    master = run_lcore(
        "-f", "locustfile.py", "-H", target.url, "--headless", "-u", "2", "-r", "2", "-t", "3s",
        "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
        "--expect-workers", "1", "--results-db", store, "--label", "mode=distributed",
        "--log-format", "json",
    )  # fmt: skip
    # the worker has a store of its own configured: a worker never writes one
    worker_store = tmp_path / "worker.db"
    worker = run_lcore(
        "-f", "locustfile.py", "--worker", "--master-host", "127.0.0.1", "--master-port", str(port),
        "--results-db", str(worker_store), "--log-format", "json",
    )  # fmt: skip
    assert master.wait(90) == 0, master.output[-3000:]
    worker.wait(30)
    with results_db.open_store(store) as s:
        [run] = s.runs({"mode": "distributed"})
    assert run["status"] == "finished" and run["summary"]["requests"] > 20 and run["users"] == 2
    assert not worker_store.exists()
    # the stored run has the id its log lines carry (and its pushed metrics: lcore.run_ids)
    logged = {
        json.loads(line).get("run_id")
        for line in master.output.splitlines() + worker.output.splitlines()
        if line.startswith("{")
    }
    assert logged == {run["id"]}


def test_runs_started_on_the_page_are_saved_and_shown_in_its_history(tmp_path: Path, target, run_lcore) -> None:
    (tmp_path / "locustfile.py").write_text(LOCUSTFILE)
    store = str(tmp_path / "runs.db")
    port = free_port()
    master = run_lcore(
        "-f", "locustfile.py", "-H", target.url, "--web-host", "127.0.0.1", "--web-port", str(port),
        "--results-db", store, "--label", "from=page",
    )  # fmt: skip
    master.wait_for_output("Starting web interface", timeout=30)
    base = f"http://127.0.0.1:{port}"

    def post(path: str, data: bytes = b"") -> dict:
        request = urllib.request.Request(base + path, data=data, method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    def get(path: str) -> dict:
        with urllib.request.urlopen(base + path, timeout=10) as answer:
            return json.loads(answer.read())

    for _ in range(2):  # two runs from the page, each saved when stopped
        assert post("/api/swarm", b"user_count=2&spawn_rate=2")["success"]
        wait_until(lambda: get("/api/stats")["stats"][-1]["num_requests"] > 30, timeout=30)
        post("/api/stop")
        wait_until(lambda: get("/api/stats")["state"] == "stopped", timeout=30)
    def finished() -> list[dict]:
        return [r for r in get("/api/runs")["runs"] if r["status"] == "finished"]

    wait_until(lambda: len(finished()) == 2, timeout=15)
    saved = finished()
    assert len(saved) == 2 and all(r["labels"] == {"from": "page"} for r in saved)
    assert all(r["summary"]["requests"] > 30 and r["exit_code"] == 0 for r in saved)
    one = get(f"/api/runs/{saved[0]['id']}")
    assert {row["name"] for row in one["rows"]} == {"/page", "/json", "Aggregated"} and one["history"]
    trend = get("/api/runs/trend?metric=p95&label=from=page")
    assert [p["id"] for p in trend["points"]] == [r["id"] for r in saved]
    compared = get(f"/api/runs/compare?a={saved[0]['id']}&b={saved[1]['id']}")
    assert [r["name"] for r in compared["rows"]][-1] == "Aggregated" and "verdict" in compared["rows"][0]
    with urllib.request.urlopen(base + "/", timeout=10) as answer:
        page = answer.read().decode()
    assert 'id="history"' in page and 'id="chart-trend"' in page and 'id="compare-table"' in page


def test_several_masters_write_to_one_postgresql_at_once(tmp_path: Path, target, postgres_url: str) -> None:
    import psycopg

    (tmp_path / "locustfile.py").write_text(LOCUSTFILE)
    name = f"lcore_shared_{time.monotonic_ns()}"
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    url = postgres_url.rsplit("/", 1)[0] + "/" + name
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    procs = [
        subprocess.Popen(
            lcore_command("-f", "locustfile.py", "-H", target.url, "--headless", "-u", "2", "-r", "2",
                          "-t", "3s", "--results-db", url, "--label", f"master={i}"),
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        for i in range(3)
    ]
    try:
        outputs = [p.communicate(timeout=90)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    with results_db.open_store(url) as s:
        runs = s.runs()
        assert sorted(r["labels"]["master"] for r in runs) == ["0", "1", "2"]
        assert all(r["status"] == "finished" and r["summary"]["requests"] > 10 for r in runs)
        versions = s._rows("SELECT version FROM schema_version ORDER BY version")
    # three masters at once: each migration ran once
    assert versions == [(v,) for v in range(1, results_db.SCHEMA_VERSION + 1)]


def test_the_html_report_shows_the_trend_of_runs_with_the_same_labels(tmp_path: Path, target) -> None:
    (tmp_path / "locustfile.py").write_text(LOCUSTFILE)
    store = str(tmp_path / "runs.db")
    if shutil.which("git"):
        # the locustfile's repository commit is stored with the run
        subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
        subprocess.run(["git", "add", "locustfile.py"], cwd=tmp_path, check=True)
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"], cwd=tmp_path, check=True)
    ids = []
    for i in range(2):
        done = run_test(tmp_path, target.url, store, "--label", "trend=yes", "--html", f"report{i}.html")
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        ids.append(re.search(r"Run saved as (\S+) in", done.stdout).group(1))
    report = (tmp_path / "report1.html").read_text()
    assert "Trend over the last 2 runs with the same labels" in report
    assert ids[0] in report and ids[1] in report
    assert "Trend over" not in (tmp_path / "report0.html").read_text()  # nothing before it
    exported = runs_cli("export", ids[1], "--html", str(tmp_path / "again.html"), store=store, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert "Trend over the last 2 runs" in (tmp_path / "again.html").read_text()
    if shutil.which("git"):
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
        shown = json.loads(runs_cli("show", ids[0], "--json", store=store, cwd=tmp_path).stdout)
        assert shown["git_commit"] == commit
