"""How long a ``/metrics`` scrape holds the master's event loop.

    python bench/metrics_scrape.py [--names 1000] [--series N] [--scrapes 5] [--json FILE]

Fills a master's merged statistics with ``--names`` request names (20 requests each, from two
workers), serves them with the real status server, and scrapes ``/metrics`` from a thread (so
the loop only serves) while a ticker on the loop sleeps 1 ms at a time. Every gap between two
ticks is time the loop could not run anything else: heartbeats, merges, ``/healthz``. Prints
the gaps' median, p99 and maximum, and the scrape times; ``--series`` is
``--metrics-max-series`` (default: all the names, so the whole exposition is rendered).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import threading
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout too

from bench._common import cpu_plan, fmt, pin_self, table, write_json  # noqa: E402


def runtime_with(names: int) -> Any:
    from lcore.env import Environment
    from lcore.master import MasterRuntime
    from lcore.stats import RequestStats
    from lcore.users import HttpUser

    class Visitor(HttpUser):
        host = "http://127.0.0.1:1"

    runtime = MasterRuntime(Environment(user_classes=[Visitor]), endpoints=[], digest="bench")
    rng = random.Random(1)
    for worker in ("w1", "w2"):
        stats = RequestStats()
        for i in range(names):
            for k in range(20):
                error = f"boom {k}" if k < 2 else None
                stats.record("GET", f"/item/{i}", rng.uniform(1, 2000), 100, error)
        runtime.stats_merged.merge(worker, stats.take_delta())
    return runtime


async def measure(runtime: Any, series: int, scrapes: int) -> dict[str, Any]:
    from lcore.exporters.web import start_web

    options = SimpleNamespace(
        web_host="127.0.0.1", web_port=0, web_auth=None, web_token=None, web_login=False,
        headless=True, web_base_path="", tls_cert="", tls_key="", metrics_buckets=None,
        metrics_max_series=series,
    )  # fmt: skip
    server = await start_web(runtime, options)
    done = threading.Event()
    took: list[float] = []
    size = [0]

    def client() -> None:
        try:
            for _ in range(scrapes):
                started = time.perf_counter()
                url = f"http://127.0.0.1:{server.port}/metrics"
                with urllib.request.urlopen(url, timeout=120) as response:
                    size[0] = len(response.read())
                took.append(time.perf_counter() - started)
        finally:
            done.set()

    thread = threading.Thread(target=client)
    thread.start()
    gaps: list[float] = []
    last = time.perf_counter()
    while not done.is_set():
        await asyncio.sleep(0.001)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    thread.join()
    await server.close()
    gaps.sort()
    return {
        "scrapes": len(took),
        "bytes": size[0],
        "scrape_ms_median": sorted(took)[len(took) // 2] * 1000,
        "loop_turns": len(gaps),
        "gap_ms_median": gaps[len(gaps) // 2] * 1000,
        "gap_ms_p99": gaps[int(len(gaps) * 0.99)] * 1000,
        "gap_ms_max": gaps[-1] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", type=int, default=1000)
    parser.add_argument("--series", type=int, default=0, help="--metrics-max-series (0: all)")
    parser.add_argument("--scrapes", type=int, default=5)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    measured, _ = cpu_plan()
    pin_self(measured)
    runtime = runtime_with(args.names)
    result = asyncio.run(measure(runtime, args.series or args.names, args.scrapes))
    rows = [[k, fmt(v, 1) if isinstance(v, float) else str(v)] for k, v in result.items()]
    print(table(["figure", "value"], rows))
    print(
        f"summary: {args.names} names, {result['bytes'] / 1e6:.1f} MB a scrape in "
        f"{result['scrape_ms_median']:.0f} ms; the loop's longest stall {result['gap_ms_max']:.0f} ms, "
        f"p99 {result['gap_ms_p99']:.1f} ms over {result['loop_turns']} turns"
    )
    write_json(args.json, {"args": vars(args), **result})


if __name__ == "__main__":
    main()
