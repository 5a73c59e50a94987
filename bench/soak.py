"""A soak run (not for CI): a steady rate with 2 workers for a long time, the memory of every
lcore process sampled each minute, and the growth after warm-up reported.

    python bench/soak.py --minutes 30 [--rps 300] [--json soak.json]

The target is lcore's embedded one on loopback. Target: no process grows by more than 5%
between the end of warm-up (the first quarter of the run, at least 2 minutes) and the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

LOCUSTFILE = """
from lcore import HttpUser, task, constant_throughput

class Steady(HttpUser):
    wait_time = constant_throughput({per_user})

    @task(4)
    def index(self):
        self.client.get("/")

    @task(1)
    def item(self):
        self.client.get("/item?id=1", name="/item")

    @task(1)
    def missing(self):
        self.client.get("/status/404")
"""


def start_target() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "lcore.target", "--port", "0"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, line.rsplit(" ", 1)[-1].strip()


def roles(launcher: psutil.Process) -> dict[str, psutil.Process]:
    """launcher, master (the oldest child) and workers, by name."""
    children = sorted(launcher.children(), key=lambda c: c.create_time())
    named = {"launcher": launcher}
    if children:
        named["master"] = children[0]
        for i, child in enumerate(children[1:]):
            named[f"worker-{i}"] = child
    return named


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rps", type=float, default=300.0, help="total requests per second")
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between memory samples")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="lcore-soak-"))
    locustfile = workdir / "locustfile.py"
    locustfile.write_text(LOCUSTFILE.format(per_user=args.rps / args.users))
    target, url = start_target()
    seconds = int(args.minutes * 60)
    lcore = subprocess.Popen(
        [sys.executable, "-m", "lcore.launcher.main", "-f", str(locustfile), "-H", url, "--headless",
         "--processes", "2", "-u", str(args.users), "-r", str(args.users), "-t", f"{seconds}s",
         "--only-summary", "--no-web", "--csv", str(workdir / "soak")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    samples: list[dict[str, float]] = []
    try:
        launcher = psutil.Process(lcore.pid)
        start = time.monotonic()
        while lcore.poll() is None and time.monotonic() - start < seconds - 5:
            time.sleep(min(args.interval, max(0.0, seconds - 5 - (time.monotonic() - start))))
            row = {"minute": round((time.monotonic() - start) / 60, 1)}
            for name, proc in roles(launcher).items():
                try:
                    row[name] = proc.memory_info().rss / 2**20
                except psutil.NoSuchProcess:
                    pass
            samples.append(row)
            print("  ".join(f"{k}={v:.1f}" for k, v in row.items()), flush=True)
        lcore.wait(timeout=120)
    finally:
        if lcore.poll() is None:
            os.killpg(lcore.pid, signal.SIGKILL)
        target.terminate()
        target.wait()
    warm = max(2.0, args.minutes / 4)
    after = [s for s in samples if s["minute"] >= warm]
    growth: dict[str, float] = {}
    if len(after) >= 2:
        for name in after[0]:
            if name != "minute" and name in after[-1]:
                growth[name] = 100.0 * (after[-1][name] - after[0][name]) / after[0][name]
    print(f"\n{'process':<10} {'RSS at warm-up (MiB)':>22} {'RSS at end (MiB)':>18} {'growth':>8}")
    for name, pct in growth.items():
        print(f"{name:<10} {after[0][name]:>22.1f} {after[-1][name]:>18.1f} {pct:>7.1f}%")
    worst = max(growth.values(), default=0.0)
    verdict = "meets" if worst <= 5.0 else "misses"
    print(f"\nsoak: {args.minutes:g} min at ~{args.rps:g} req/s, worst growth after warm-up {worst:.1f}% ({verdict} the 5% target)")
    if args.json:
        Path(args.json).write_text(json.dumps({"samples": samples, "growth_percent": growth}, indent=2))
    return 0 if worst <= 5.0 else 1


if __name__ == "__main__":
    sys.exit(main())
