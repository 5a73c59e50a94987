"""lcore's statistics against Locust's, on the same samples.

    python bench/stats_bench.py [--json FILE] [--requests-per-delta N] [--quick]

Measures, in CPU time (best of several runs, so other processes on the machine matter less):
the cost of recording one request on a worker, the size and encoding time of one worker
interval (a "delta") of 100 endpoints, and how many such deltas the master merges per second.

Locust runs in a subprocess: this interpreter's if it can import locust, otherwise a
throwaway virtualenv (``$LCORE_BENCH_VENV``, default ~/.cache/lcore-bench/venv) where
``pip install locust`` is run once. Without it the Locust columns stay empty.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import random
import subprocess
import sys
import time
import venv
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENDPOINTS = 100
FAILURE_RATIO = 0.01
SEED = 20240601
TARGETS = {"record_speedup": 3.0, "size_ratio": 1.0, "cpu_at_1000": 0.25}

Sample = tuple[str, str, float, int, "str | None"]


def make_samples(n: int, seed: int) -> list[Sample]:
    """Requests over 100 endpoints: log-normal times around 50 ms, 1 % failures."""
    rng = random.Random(seed)
    endpoints = [("POST" if i % 4 == 0 else "GET", f"/api/v1/items/{i}") for i in range(ENDPOINTS)]
    errors = ["HTTPError('500 Server Error: Internal Server Error')", "ConnectionResetError(104)"]
    out: list[Sample] = []
    for _ in range(n):
        method, name = endpoints[rng.randrange(ENDPOINTS)]
        error = rng.choice(errors) if rng.random() < FAILURE_RATIO else None
        out.append(
            (method, name, rng.lognormvariate(math.log(50), 0.8), rng.randint(200, 20_000), error)
        )
    return out


def best_cpu(fn: Callable[[], Any], repeats: int) -> float:
    """The smallest CPU time (s) of ``repeats`` calls of ``fn``."""
    best = math.inf
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


# -- Locust (runs in a process that can import locust) ----------------------------------------


def locust_figures(args: argparse.Namespace) -> dict[str, Any]:
    import locust
    import msgpack
    from locust.event import Events
    from locust.rpc.protocol import Message
    from locust.stats import RequestStats, setup_distributed_stats_event_listeners

    samples = make_samples(args.samples, SEED)
    out: dict[str, Any] = {"version": locust.__version__}

    chunks = _chunks(samples, args.requests_per_delta)

    def record_loop(cache: bool) -> Callable[[], None]:
        def run() -> None:
            for chunk in chunks:  # a fresh RequestStats a report, as a worker's is reset
                stats = RequestStats(use_response_times_cache=cache)
                log_request, log_error = stats.log_request, stats.log_error
                for method, name, response_time, length, error in chunk:
                    log_request(method, name, response_time, length)
                    if error is not None:
                        log_error(method, name, error)

        return run

    # a worker's RequestStats has no response-times cache: the cheaper, fairer comparison
    out["record_ns"] = best_cpu(record_loop(False), args.repeats) / len(samples) * 1e9
    out["record_ns_default"] = best_cpu(record_loop(True), args.repeats) / len(samples) * 1e9

    def report(seed: int) -> dict[str, Any]:
        stats = RequestStats(use_response_times_cache=False)
        for method, name, response_time, length, error in make_samples(
            args.requests_per_delta, seed
        ):
            stats.log_request(method, name, response_time, length)
            if error is not None:
                stats.log_error(method, name, error)
        data: dict[str, Any] = {}
        start = time.process_time()
        data["stats"] = stats.serialize_stats()
        data["stats_total"] = stats.total.get_stripped_report()
        data["errors"] = stats.serialize_errors()
        payload = msgpack.dumps(data)
        Message("stats", data, "worker-0123456789abcdef").serialize()
        data["_encode_s"] = time.process_time() - start
        data["_payload_bytes"] = len(payload)
        return data

    reports = [report(SEED + 1 + i) for i in range(args.distinct_deltas)]
    out["delta_bytes"] = sum(r.pop("_payload_bytes") for r in reports) / len(reports)
    out["encode_us"] = min(r.pop("_encode_s") for r in reports) * 1e6
    frames = [Message("stats", r, f"worker-{i}").serialize() for i, r in enumerate(reports)]

    master = RequestStats(use_response_times_cache=True)
    events = Events()
    setup_distributed_stats_event_listeners(events, master)
    decoded = [Message.unserialize(f).data for f in frames]

    def merge_all() -> None:
        for i in range(args.merges):
            events.worker_report.fire(client_id="w", data=decoded[i % len(decoded)])

    out["merge_us"] = best_cpu(merge_all, 3) / args.merges * 1e6

    def decode_merge_all() -> None:
        for i in range(args.merges):
            data = Message.unserialize(frames[i % len(frames)]).data
            events.worker_report.fire(client_id="w", data=data)

    out["decode_merge_us"] = best_cpu(decode_merge_all, 3) / args.merges * 1e6
    return out


def locust_python() -> str | None:
    """An interpreter that can import locust, setting up the throwaway venv if needed."""
    if importlib.util.find_spec("locust") is not None:
        return sys.executable
    venv_dir = Path(
        os.environ.get("LCORE_BENCH_VENV", Path.home() / ".cache" / "lcore-bench" / "venv")
    )
    python = venv_dir / "bin" / "python"
    if (
        python.exists()
        and subprocess.run([python, "-c", "import locust"], capture_output=True).returncode == 0
    ):
        return str(python)
    print(f"Setting up Locust in {venv_dir} (once) ...", file=sys.stderr, flush=True)
    try:
        venv.create(venv_dir, with_pip=True, clear=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "locust"], check=True, timeout=900)
    except (OSError, subprocess.SubprocessError) as e:
        print(f"Could not install Locust: {e}", file=sys.stderr)
        return None
    return str(python)


def run_locust_part(args: argparse.Namespace) -> dict[str, Any] | None:
    python = locust_python()
    if python is None:
        return None
    argv = [python, __file__, "--locust-part", *_shared_argv(args)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        print(f"The Locust part failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def _shared_argv(args: argparse.Namespace) -> list[str]:
    return [
        f"--samples={args.samples}",
        f"--requests-per-delta={args.requests_per_delta}",
        f"--repeats={args.repeats}",
        f"--merges={args.merges}",
        f"--distinct-deltas={args.distinct_deltas}",
    ]


# -- lcore ---------------------------------------------------------------------------------


def lcore_figures(args: argparse.Namespace) -> dict[str, Any]:
    import msgpack

    from lcore.stats import RequestStats, StatsDelta

    samples = make_samples(args.samples, SEED)
    out: dict[str, Any] = {}

    out["record_ns"] = lcore_record_ns(args, samples)

    def worker_delta(seed: int, requests: int, now: float) -> Any:
        stats = RequestStats(now=now - 1.0)
        for sample in make_samples(requests, seed):
            stats.record(*sample)
        return stats.take_delta(now=now)

    deltas = [
        worker_delta(SEED + 1 + i, args.requests_per_delta, 1000.0 + i)
        for i in range(args.distinct_deltas)
    ]

    def encode(delta: Any) -> bytes:
        return msgpack.packb(delta.to_wire(), use_bin_type=True)

    payloads = [encode(d) for d in deltas]
    out["delta_bytes"] = sum(map(len, payloads)) / len(payloads)
    out["delta_bytes_with_crc"] = sum(len(d.encode()) for d in deltas) / len(deltas)

    def encode_fresh() -> None:
        for d in deltas:  # a new delta each time: a delta keeps the columns it computed
            encode(StatsDelta(d.start, d.end, d.entries, d.errors, d.exceptions))

    out["encode_us"] = best_cpu(encode_fresh, args.repeats) / len(deltas) * 1e6

    def decode(payload: bytes) -> Any:
        return StatsDelta.from_wire(msgpack.unpackb(payload, raw=False))

    out["decode_us"] = (
        best_cpu(lambda: [decode(p) for p in payloads], args.repeats) / len(payloads) * 1e6
    )
    out["merge_us"] = _merge_cost(args, [decode(p) for p in payloads]) * 1e6
    out["decode_merge_us"] = out["decode_us"] + out["merge_us"]
    if not args.quick:
        out["merge_us_by_requests_per_delta"] = {}
        for requests in (100, 1000, 5000):
            ds = [
                decode(encode(worker_delta(SEED + 7 + i, requests, 1000.0 + i))) for i in range(20)
            ]
            out["merge_us_by_requests_per_delta"][requests] = _merge_cost(args, ds) * 1e6
    return out


def lcore_record_ns(args: argparse.Namespace, samples: list[Sample]) -> float:
    """ns per ``RequestStats.record``, a delta taken every ``requests_per_delta`` requests."""
    from lcore.stats import RequestStats

    chunks = _chunks(samples, args.requests_per_delta)

    def run() -> None:
        stats = RequestStats(now=0.0)
        record = stats.record
        for chunk in chunks:
            for method, name, response_time, length, error in chunk:
                record(method, name, response_time, length, error)
            stats.take_delta(now=1.0)

    return best_cpu(run, args.repeats) / len(samples) * 1e9


def _chunks(samples: list[Sample], size: int) -> list[list[Sample]]:
    return [samples[i : i + size] for i in range(0, len(samples), size)]


def _merge_cost(args: argparse.Namespace, deltas: list[Any]) -> float:
    """CPU seconds per merge, the clock advancing 1 ms a merge (1,000 merges a second)."""
    from lcore.stats import MergedStats

    def merge_all() -> None:
        clock = [5000.0]
        merged = MergedStats(clock=lambda: clock[0])
        for i in range(args.merges):
            clock[0] += 0.001
            merged.merge(f"w{i % 50}", deltas[i % len(deltas)])

    return best_cpu(merge_all, 5) / args.merges


# -- report --------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    parser.add_argument("--requests-per-delta", type=int, default=1000, help="default: %(default)s")
    parser.add_argument("--samples", type=int, default=100_000, help="requests recorded per run")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--merges", type=int, default=2000)
    parser.add_argument("--distinct-deltas", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="fewer samples, no sensitivity runs")
    parser.add_argument("--locust-part", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.samples, args.repeats, args.merges, args.distinct_deltas = 20_000, 5, 500, 20
    if args.locust_part:
        print(json.dumps(locust_figures(args)))
        return 0

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout too
    mine = lcore_figures(args)
    theirs = run_locust_part(args) or {}
    # other processes on the machine skew timings: take lcore's record cost again after
    # Locust's and keep the better, so both had a chance at a quiet moment
    again = lcore_record_ns(args, make_samples(args.samples, SEED))
    mine["record_ns"] = min(mine["record_ns"], again)
    figures = _derive(args, mine, theirs)
    print(_table(args, mine, theirs, figures))
    print(_summary(figures))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"lcore": mine, "locust": theirs, "derived": figures, "args": vars(args)},
                f,
                indent=2,
            )
    return 0


def _derive(
    args: argparse.Namespace, mine: dict[str, Any], theirs: dict[str, Any]
) -> dict[str, Any]:
    def ratio(a: str, b: str) -> float | None:
        return theirs[a] / mine[b] if a in theirs and mine.get(b) else None

    return {
        "record_speedup": ratio("record_ns", "record_ns"),
        "size_ratio": mine["delta_bytes"] / theirs["delta_bytes"]
        if "delta_bytes" in theirs
        else None,
        "merges_per_s": 1e6 / mine["merge_us"],
        "cpu_at_1000": mine["merge_us"] * 1000 / 1e6,
        "cpu_at_1000_with_decode": mine["decode_merge_us"] * 1000 / 1e6,
        "locust_cpu_at_1000": theirs["merge_us"] * 1000 / 1e6 if "merge_us" in theirs else None,
    }


def _fmt(value: Any, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _table(
    args: argparse.Namespace, mine: dict[str, Any], theirs: dict[str, Any], d: dict[str, Any]
) -> str:
    version = theirs.get("version", "not available")
    t = theirs.get
    locust_rate = 1e6 / t("merge_us") if t("merge_us") else None
    locust_decode = 1e-3 * t("decode_merge_us") if t("decode_merge_us") else None
    # (label, lcore, Locust, format, higher is better)
    rows = [
        ("record one request, ns", mine["record_ns"], t("record_ns"), ",.0f", False),
        ("  (Locust with the master's cache)", None, t("record_ns_default"), ",.0f", False),
        ("delta of 100 endpoints, bytes", mine["delta_bytes"], t("delta_bytes"), ",.0f", False),
        ("encode one delta, µs", mine["encode_us"], t("encode_us"), ",.0f", False),
        ("master: merge one delta, µs", mine["merge_us"], t("merge_us"), ",.0f", False),
        (
            "master: decode + merge, µs",
            mine["decode_merge_us"],
            t("decode_merge_us"),
            ",.0f",
            False,
        ),
        ("deltas merged per second (1 core)", d["merges_per_s"], locust_rate, ",.0f", True),
        ("CPU for 1,000 merges/s", d["cpu_at_1000"], d["locust_cpu_at_1000"], ".1%", False),
        ("  with decoding", d["cpu_at_1000_with_decode"], locust_decode, ".1%", False),
    ]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        f"lcore statistics vs Locust {version}: {ENDPOINTS} endpoints, log-normal times (median 50 ms),"
        f" {FAILURE_RATIO:.0%} failures, {args.requests_per_delta:,} requests per delta",
        f"CPU time, best of runs; {os.cpu_count()} cores, load average {load};"
        f" this Python adds two ints in {_calibration_ns():.0f} ns",
        f"{'':38} {'lcore':>12} {'Locust':>12} {'lcore gain':>11}",
    ]
    for label, a, b, spec, higher_better in rows:
        gain = (a / b if higher_better else b / a) if a and b else None
        cell = f"{gain:.2f}x" if gain else ""
        lines.append(f"{label:38} {_fmt(a, spec):>12} {_fmt(b, spec):>12} {cell:>11}")
    by_size = mine.get("merge_us_by_requests_per_delta")
    if by_size:
        cells = ", ".join(f"{n:,} req: {us:,.0f} µs ({us * 1e-3:.0%})" for n, us in by_size.items())
        lines.append(f"lcore merge per delta by requests in it (CPU at 1,000/s): {cells}")
    return "\n".join(lines)


def _calibration_ns() -> float:
    """How fast this interpreter is here: ns for one ``x = x + y`` (a reference for the rest)."""
    import timeit

    best = min(timeit.repeat("x = x + y", "x, y = 1000, 7", number=1_000_000, repeat=5))
    return best * 1e3


def _summary(d: dict[str, Any]) -> str:
    def check(ok: bool | None) -> str:
        return "?" if ok is None else "met" if ok else "MISSED"

    speedup, size = d["record_speedup"], d["size_ratio"]
    return (
        f"SUMMARY record {_fmt(speedup, '.1f')}x faster than Locust (target >= 3: "
        f"{check(None if speedup is None else speedup >= TARGETS['record_speedup'])}); "
        f"delta {_fmt(size, '.2f')}x Locust's report size (target <= 1: "
        f"{check(None if size is None else size <= TARGETS['size_ratio'])}); "
        f"1,000 merges/s take {d['cpu_at_1000']:.0%} of a core (target < 25%: "
        f"{check(d['cpu_at_1000'] < TARGETS['cpu_at_1000'])}), {d['cpu_at_1000_with_decode']:.0%} with decoding"
    )


if __name__ == "__main__":
    sys.exit(main())
