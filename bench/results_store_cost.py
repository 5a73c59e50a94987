"""What the results store costs the master: CPU per second of a run, on its loop and on the
writer's thread, measured as CPU time (not wall time), so other load on the machine does
not skew it.

    python bench/results_store_cost.py [--endpoints 50] [--seconds 120] [--results-db PATH|URL]

The store reads the master's *merged* state, so its cost depends on the endpoints and their
histograms, not on the number of workers: the figures hold at 1,000 workers as at one. The
merged stats are built as the master's are after a long run (``--samples`` requests per
endpoint, log-normal response times: a few hundred non-empty buckets per histogram, the
worst case for a snapshot), and the real ``ResultsRecorder`` then runs ``--seconds`` of a
run's cadence back to back: a history point every second, a checkpoint every
``recorder.interval`` seconds (CHECKPOINT_INTERVAL, longer when checkpoints are costly; each
waited for, so none is skipped), then the final save.

    loop       CPU the master's loop spends (thread time of this thread): snapshots only
    writer     CPU of the writer's thread: encoding and the database (process time - loop)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def build_stats(endpoints: int, samples: int, seed: int = 1):  # type: ignore[no-untyped-def]
    from lcore.stats import MergedStats, RequestStats

    rng = random.Random(seed)
    stats = MergedStats()
    now = time.time()
    for chunk in range(10):
        recorder = RequestStats(now=now - 600 + chunk)
        for e in range(endpoints):
            name = f"/api/endpoint/{e}"
            for i in range(samples // 10):
                failed = ConnectionError("refused") if i % 997 == 0 else None
                recorder.record("GET", name, rng.lognormvariate(3, 0.8), 512, failed)
        recorder.log_exception("KeyError: 'x'", "Traceback ...")
        stats.merge("worker-1", recorder.take_delta(now=now - 599 + chunk), now=now - 599 + chunk)
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", type=int, default=50)
    parser.add_argument("--samples", type=int, default=200_000, help="requests per endpoint")
    parser.add_argument("--seconds", type=int, default=120, help="seconds of a run to replay")
    parser.add_argument("--results-db", help="a path or postgresql:// URL (default: a temp file)")
    args = parser.parse_args(argv)

    from lcore.exporters import results_record
    from lcore.exporters.results_writer import CHECKPOINT_INTERVAL, ResultsRecorder
    from lcore.runners import STATE_SPAWNING

    stats = build_stats(args.endpoints, args.samples)
    buckets = sum(len(e.histogram.to_wire()) // 2 - 2 for e in stats.entries.values())
    runtime = SimpleNamespace(
        stats_merged=stats, user_count=1000, user_classes_count={"Bench": 1000},
        target_user_classes_count={"Bench": 1000}, host="http://127.0.0.1:9", digest="d" * 64,
        environment=SimpleNamespace(host="http://127.0.0.1:9"), start_time=time.time(), run_id=1,
        on_state_change=[], owner=None,
    )  # fmt: skip
    options = argparse.Namespace(headless=True, locustfile=__file__, num_users=1000)
    with tempfile.TemporaryDirectory(prefix="lcore-bench-store-") as tmp:
        where = args.results_db or os.path.join(tmp, "results.db")
        recorder = ResultsRecorder(where, runtime, options, labels={"bench": "store"})
        recorder._state_changed(STATE_SPAWNING)  # the run begins: its first checkpoint
        recorder._wait_pending(60)
        loop0, all0, wall0 = time.thread_time(), time.process_time(), time.perf_counter()
        loop = asyncio.new_event_loop()
        next_due, checkpoints = CHECKPOINT_INTERVAL, 0
        for second in range(1, args.seconds + 1):
            users = runtime.user_count
            recorder._history.append(results_record.history_point(stats, users))
            if second >= next_due:  # the recorder's own cadence, which stretches when costly
                loop.run_until_complete(recorder._checkpoint_in_slices())
                recorder._wait_pending(60)  # every checkpoint written before the next
                checkpoints += 1
                next_due = second + recorder.interval
        loop.close()
        recorder.finish(0, [])
        loop_s, all_s, wall = time.thread_time() - loop0, time.process_time() - all0, time.perf_counter() - wall0
        recorder.close()
        size = os.path.getsize(where) if os.path.exists(where) else 0
    writer_s = max(all_s - loop_s, 0.0)
    print(
        f"results store, {args.endpoints} endpoints ({buckets:,} non-empty buckets in all), "
        f"{args.seconds} s of a run replayed in {wall:.1f} s: {checkpoints} checkpoints "
        f"(every {args.seconds / max(checkpoints, 1):.1f} s; at least {CHECKPOINT_INTERVAL:g} s)"
    )
    print(f"  loop:   {1000 * loop_s / args.seconds:.2f} ms CPU per second of run = {100 * loop_s / args.seconds:.2f} % of a core")
    print(f"  writer: {1000 * writer_s / args.seconds:.2f} ms CPU per second of run = {100 * writer_s / args.seconds:.2f} % of a core")
    print(f"  total:  {100 * all_s / args.seconds:.2f} % of a core (budget: 5 %); store file {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
