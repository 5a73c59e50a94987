"""Scale-out: a CPU-bound user under --processes 1 and --processes 2, and the master's CPU.

    python bench/scale_out.py [--duration 10] [--json FILE]

Each task burns a fixed amount of CPU and reports itself with ``events.request`` (the way
Locust users measure non-HTTP work), so lcore's own totals count the work done. Targets:
--processes 2 delivers >= 1.8x --processes 1 on this 2-core machine, and the master stays
under 10% of a core with 2 workers at full speed.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import free_port, table, write_json  # noqa: E402

LOCUSTFILE = """
import time
from lcore import User, task, constant

class Crunch(User):
    wait_time = constant(0)

    @task
    def crunch(self):
        start = time.perf_counter()
        total = 0
        for i in range(20000):
            total += i * i
        self.environment.events.request.fire(
            request_type="cpu", name="crunch", response_time=(time.perf_counter() - start) * 1000,
            response_length=0, exception=None, context={},
        )
"""


def run(processes: int, duration: int, workdir: Path) -> dict[str, float]:
    prefix = workdir / f"p{processes}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lcore.launcher.main", "-f", str(workdir / "locustfile.py"), "--headless",
         "--processes", str(processes), "-u", str(4 * processes), "-r", "100", "-t", f"{duration}s",
         "--only-summary", "--no-web", "--master-bind-port", str(free_port()), "--csv", str(prefix)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    launcher = psutil.Process(proc.pid)
    master: psutil.Process | None = None
    deadline = time.monotonic() + 20
    while master is None and time.monotonic() < deadline:
        children = sorted(launcher.children(), key=lambda c: c.create_time())
        if len(children) == processes + 1:
            master = children[0]
        time.sleep(0.05)
    assert master is not None, "lcore did not start"
    time.sleep(2)  # past the ramp
    t0, c0 = time.monotonic(), sum(master.cpu_times()[:2])
    time.sleep(max(1.0, duration - 4))
    master_cpu = (sum(master.cpu_times()[:2]) - c0) / (time.monotonic() - t0)
    proc.wait(timeout=duration + 60)
    with open(f"{prefix}_stats.csv", newline="") as f:
        total = next(row for row in csv.DictReader(f) if row["Name"] == "Aggregated")
    return {"processes": processes, "tasks": int(total["Request Count"]), "tasks_per_s": float(total["Requests/s"]), "master_cpu": master_cpu}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="lcore-scale-"))
    (workdir / "locustfile.py").write_text(LOCUSTFILE)
    results = [run(1, args.duration, workdir), run(2, args.duration, workdir)]
    rows = [[str(r["processes"]), f"{r['tasks']:,}", f"{r['tasks_per_s']:,.0f}", f"{100 * r['master_cpu']:.1f}%"] for r in results]
    print(table(["--processes", "tasks", "tasks/s", "master CPU"], rows))
    ratio = results[1]["tasks_per_s"] / results[0]["tasks_per_s"]
    master = results[1]["master_cpu"]
    ok = ratio >= 1.8 and master < 0.10
    print(
        f"summary: --processes 2 delivers {ratio:.2f}x --processes 1 (target >= 1.8x); "
        f"master CPU {100 * master:.1f}% of a core with 2 workers (target < 10%)"
    )
    write_json(args.json, {"runs": results, "ratio": ratio})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
