"""Memory per idle simulated user, and the time to spawn them, in one worker-like process.

    python bench/memory_per_user.py [--users 10000] [--only lcore,locust] [--json FILE]

Each probe is a fresh process (monkey-patched gevent, like a worker) that spawns ``--users``
HTTP users at once; each user makes one GET / to a loopback target (nginx when installed, else
lcore's embedded target) and then waits (``constant(600)``). Once every user's request has
been recorded, the RSS growth since just before the spawn, divided by the number of users, is
the memory per user. Spawn time is how long creating and starting all the users took (users
start running after it), in wall-clock and in CPU seconds of the process (the latter is what
a busy machine does not inflate).

  lcore    lcore.user_pool.UserPool with an lcore.env.Environment, RequestStats as the
           recorder: what a worker runs on a Spawn message. Before the measure the probe calls
           lcore.memory.release_free_memory() (malloc_trim), as a worker does every 10 s; the
           figure before that call is printed too.
  locust   Locust's FastHttpUser through Environment + LocalRunner.spawn_users (what Locust's
           worker calls on a spawn message), from a throwaway venv unless locust is importable.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as c  # noqa: E402

# The part both probes share: RSS, waiting for a condition, the JSON line they print.
PROBE_COMMON = """
import gc
import json
import os
import resource
import sys
import time


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def settle(sleep):
    for _ in range(3):
        gc.collect()
    sleep(0.5)
    gc.collect()


def top_sites(before, after, users):
    # where the growth was allocated, per user: by file, then by line
    out = {}
    for key in ("filename", "lineno"):
        stats = after.compare_to(before, key)
        out[key] = [
            [str(s.traceback[0]), round(s.size_diff / users, 1), round(s.count_diff / users, 2)]
            for s in stats[:15]
        ]
    return out


def measure(spawn, recorded, sleep, users, timeout, trim=None):
    raise_nofile()
    tracing = bool(os.environ.get("BENCH_TRACEMALLOC"))
    if tracing:
        import tracemalloc

        tracemalloc.start(1)
    settle(sleep)
    snapshot = tracemalloc.take_snapshot() if tracing else None
    before = rss_kib()
    start, cpu_start = time.perf_counter(), time.process_time()
    spawn(users)
    spawn_s, spawn_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    deadline = time.monotonic() + timeout
    while recorded() < users and time.monotonic() < deadline:
        sleep(0.05)
    all_in_s = time.perf_counter() - start
    settle(sleep)
    untrimmed = rss_kib()
    if trim is not None:
        trim()  # what the process does by itself (an lcore worker: every 10 s)
    after = rss_kib()
    sites = top_sites(snapshot, tracemalloc.take_snapshot(), users) if tracing else None
    print("RESULT " + json.dumps({
        "tracemalloc": sites,
        "users": users, "requests": recorded(), "rss_before_kib": before,
        "rss_after_kib": after, "kib_per_user": (after - before) / users,
        "untrimmed_kib_per_user": (untrimmed - before) / users,
        "spawn_s": spawn_s, "spawn_cpu_s": spawn_cpu_s, "all_requested_s": all_in_s,
    }), flush=True)
    os._exit(0)  # tearing 10,000 users down is not what is measured
"""

LCORE_PROBE = (
    """
from gevent import monkey

monkey.patch_all()
import gevent

from lcore import HttpUser, constant, task
from lcore.env import Environment
from lcore.event import Events
from lcore.memory import release_free_memory
from lcore.stats import RequestStats
from lcore.user_pool import UserPool
import lcore.http  # imported by the first user otherwise: not part of a user's cost

"""
    + PROBE_COMMON
    + """

class Idle(HttpUser):
    wait_time = constant(600)

    @task
    def index(self):
        self.client.get("/")


url, users, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
Idle.host = url
env = Environment(user_classes=[Idle], events=Events(), host=url)
stats = RequestStats()
env.stats = stats
env.events.request.recorder = stats.record
env.exception_recorder = stats.log_exception
pool = UserPool(env, env.user_classes_by_name)
done = []
pool.on_spawning_complete = lambda counts: done.append(time.perf_counter())


def spawn(n):
    pool.set_targets({"Idle": n}, spread=0.0)
    while not done:
        gevent.sleep(0)


measure(spawn, lambda: stats.num_requests, gevent.sleep, users, timeout, release_free_memory)
"""
)

LOCUST_PROBE = (
    """
from locust import FastHttpUser, constant, task
from locust.env import Environment
import gevent

"""
    + PROBE_COMMON
    + """

class Idle(FastHttpUser):
    wait_time = constant(600)

    @task
    def index(self):
        self.client.get("/")


url, users, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
Idle.host = url
env = Environment(user_classes=[Idle], host=url)
runner = env.create_local_runner()


def spawn(n):
    runner.spawn_users({"Idle": n})


measure(spawn, lambda: env.stats.total.num_requests, gevent.sleep, users, timeout)
"""
)


def run_probe(
    python: str,
    source: str,
    url: str,
    users: int,
    timeout: float,
    workdir: Path,
    name: str,
    cpu: int | None,
    trace: bool = False,
) -> dict[str, Any]:
    path = workdir / f"probe_{name}.py"
    path.write_text(source)
    env = {**os.environ, "BENCH_TRACEMALLOC": "1"} if trace else None
    proc = subprocess.run(
        [python, str(path), url, str(users), str(timeout)],
        capture_output=True,
        text=True,
        timeout=timeout + 120,
        cwd=workdir,
        preexec_fn=c.pinned(cpu),
        start_new_session=True,
        env=env,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[len("RESULT ") :]))
    raise RuntimeError(
        f"{name} probe failed (exit {proc.returncode}): {(proc.stderr or proc.stdout)[-1500:]}"
    )


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "/lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--only", default="lcore,locust", help="comma-separated: lcore, locust")
    parser.add_argument("--timeout", type=float, default=120.0, help="per probe, seconds")
    parser.add_argument("--embedded-target", action="store_true", help="skip nginx")
    parser.add_argument(
        "--tracemalloc",
        type=int,
        metavar="N",
        default=0,
        help="then rerun each probe with N users under tracemalloc and rank allocation sites",
    )
    parser.add_argument("--json", metavar="FILE", help="write the figures here")
    args = parser.parse_args(argv)
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    gen_cpu, target_cpu = c.cpu_plan()
    c.pin_self(target_cpu)

    probes = {
        "lcore": ("lcore HttpUser", lambda: sys.executable, LCORE_PROBE),
        "locust": ("Locust FastHttpUser", c.locust_python, LOCUST_PROBE),
    }
    results: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    with (
        c.target(
            target_cpu, prefer_nginx=not args.embedded_target, connections=args.users * 2 + 1024
        ) as target,
        tempfile.TemporaryDirectory(prefix="lcore-bench-mem-") as tmp,
    ):
        print(
            f"# target: {target.kind} at {target.url}; {args.users:,} users, one request each, "
            f"then constant(600)",
            flush=True,
        )
        kind = target.kind
        for key in wanted:
            if key not in probes:
                parser.error(f"unknown probe {key!r}")
            name, python, source = probes[key]
            try:
                interpreter = python()
            except (subprocess.SubprocessError, RuntimeError, OSError) as e:
                skipped[key] = f"could not be installed: {e}"
                continue
            try:
                result = run_probe(
                    interpreter,
                    source,
                    target.url,
                    args.users,
                    args.timeout,
                    Path(tmp),
                    key,
                    gen_cpu,
                )
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                skipped[key] = str(e)
                print(f"# {key}: {e}", flush=True)
                continue
            result["name"] = name
            if args.tracemalloc:
                traced = run_probe(
                    interpreter, source, target.url, args.tracemalloc, args.timeout, Path(tmp),
                    key, gen_cpu, trace=True,
                )  # fmt: skip
                result["tracemalloc"] = traced["tracemalloc"]
                result["tracemalloc_users"] = args.tracemalloc
            results[key] = result
            print(
                f"# {name}: {result['kib_per_user']:.2f} KiB/user, spawn {result['spawn_s']:.3f} s",
                flush=True,
            )

    base = results.get("locust")
    rows = []
    for r in results.values():
        rows.append(
            [
                r["name"],
                c.fmt(r["users"]),
                c.fmt(r["requests"]),
                f"{(r['rss_after_kib'] - r['rss_before_kib']) / 1024:,.1f}",
                f"{r['kib_per_user']:.2f}",
                f"{r['spawn_s']:.3f}",
                f"{r['spawn_cpu_s']:.3f}",
                f"{r['all_requested_s']:.2f}",
                f"{r['kib_per_user'] / base['kib_per_user']:.2f}x" if base else "-",
            ]
        )
    print()
    print(f"Memory per idle user (target {kind})")
    print(
        c.table(
            [
                "users",
                "count",
                "requests",
                "RSS growth MiB",
                "KiB/user",
                "spawn s",
                "spawn CPU s",
                "all requested s",
                "vs Locust",
            ],
            rows,
        )
    )
    for key, why in skipped.items():
        print(f"skipped {key}: {why}")
    for r in results.values():
        sites = r.get("tracemalloc")
        if not sites:
            continue
        for group in ("filename", "lineno"):
            print()
            print(f"{r['name']}: Python allocations per user by {group} (tracemalloc, "
                  f"{r['tracemalloc_users']:,} users)")  # fmt: skip
            print(c.table(["site", "bytes/user", "blocks/user"], [
                [_short(site), f"{size:,.0f}", f"{count:.1f}"] for site, size, count in sites[group]
            ]))  # fmt: skip
    lcore = results.get("lcore")
    summary = "summary: "
    if lcore:
        summary += (
            f"lcore {lcore['kib_per_user']:.2f} KiB/user "
            f"({lcore['untrimmed_kib_per_user']:.2f} before the worker's malloc_trim), "
            f"spawns {lcore['users']:,} users in "
            f"{lcore['spawn_s']:.3f} s ({lcore['spawn_cpu_s']:.3f} CPU-s; target < 0.5 s)"
        )
        if base:
            summary += (
                f"; {lcore['kib_per_user'] / base['kib_per_user']:.2f}x Locust FastHttpUser's "
                f"{base['kib_per_user']:.2f} KiB/user (target <= 0.5x)"
            )
    print(summary)
    c.write_json(
        args.json,
        {
            "benchmark": "memory_per_user",
            "machine": c.machine(),
            "target": kind,
            "results": results,
            "ratio_vs_locust": lcore["kib_per_user"] / base["kib_per_user"]
            if lcore and base
            else None,
            "skipped": skipped,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
