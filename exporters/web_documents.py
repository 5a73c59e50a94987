"""What the status page and the JSON API show, built from the master runtime: the stats
document (``/api/stats``, a superset of Locust's ``/stats/requests``), worker rows, the log
document (``/logs``) and one point of the charts' history. Plain dicts, ready for JSON."""

from __future__ import annotations

import math
import time
from typing import Any

from lcore import unreported
from lcore._version import __version__
from lcore.log import MASTER
from lcore.runners import STATE_MISSING

from .report_json import schedules_to_json

MAX_ROWS = 500
"""Rows of the stats and errors tables sent to the page (the Aggregated row always is)."""
CHART_PERCENTILES = (0.5, 0.95, 0.99)


def _number(value: float | None) -> float:
    if value is None or not math.isfinite(value):
        return 0.0
    return round(value, 3)


def entry_row(entry: Any) -> dict[str, Any]:
    """One row of the stats table, with Locust's field names (times in ms)."""
    p50, p90, p95, p99 = entry.get_response_time_percentiles((0.5, 0.9, 0.95, 0.99))
    # from the intended start (coordinated omission): the same figures without a schedule
    c95, c99 = entry.get_corrected_response_time_percentiles((0.95, 0.99))
    return {
        "method": entry.method,
        "name": entry.name,
        "safe_name": entry.name,
        "num_requests": entry.num_requests,
        "num_failures": entry.num_failures,
        "avg_response_time": _number(entry.avg_response_time),
        "min_response_time": _number(entry.min_response_time),
        "max_response_time": _number(entry.max_response_time),
        "median_response_time": _number(p50),
        "response_time_percentile_0.9": _number(p90),
        "response_time_percentile_0.95": _number(p95),
        "response_time_percentile_0.99": _number(p99),
        "current_rps": _number(entry.current_rps),
        "current_fail_per_sec": _number(entry.current_fail_per_sec),
        "total_rps": _number(entry.total_rps),
        "total_fail_per_sec": _number(entry.total_fail_per_sec),
        "avg_content_length": _number(entry.avg_content_length),
        "total_content_length": entry.total_content_length,
        "corrected_response_time_percentile_0.95": _number(c95),
        "corrected_response_time_percentile_0.99": _number(c99),
        "corrected_max_response_time": _number(entry.corrected_histogram.max / 1000),
    }


def worker_rows(runtime: Any) -> list[dict[str, Any]]:
    per_worker = runtime.stats_merged.per_worker
    rows = []
    for node in [*runtime.workers.values(), *runtime.lost_workers]:
        reported = per_worker.get(node.id)
        rows.append(
            {
                "id": node.id,
                "host": node.host,
                "pid": node.pid,
                "index": node.index,
                "state": STATE_MISSING if node in runtime.lost_workers else node.state,
                "user_count": node.user_count,
                "user_classes_count": dict(node.user_classes_count),
                "cpu_usage": _number(node.cpu),
                "cpu_warning": bool(node.cpu_warning),
                "num_requests": reported.num_requests if reported else 0,
                "num_failures": reported.num_failures if reported else 0,
            }
        )
    return rows


def stats_document(runtime: Any, readonly: bool) -> dict[str, Any]:
    """``/api/stats``: Locust's ``/stats/requests`` document plus what the page needs."""
    stats = runtime.stats_merged
    rows = [entry_row(e) for e in stats.sorted_entries()[:MAX_ROWS]]
    total = stats.total
    rows.append(entry_row(total))
    current = total.current_histogram().quantiles(CHART_PERCENTILES)
    errors = sorted(stats.errors.values(), key=lambda e: -e.occurrences)[:MAX_ROWS]
    exceptions = sorted(stats.exceptions.values(), key=lambda r: -r.count)[:MAX_ROWS]
    return {
        "version": __version__,
        "state": runtime.state,
        "readonly": readonly,
        "host": runtime.host or runtime.environment.host or "",
        "user_count": runtime.user_count,
        "target_user_count": runtime.target_user_count,
        "spawn_rate": runtime.spawn_rate,
        "start_time": runtime.start_time,
        "user_classes": [cls.__name__ for cls in runtime.environment.user_classes],
        "user_classes_count": runtime.user_classes_count,
        "shape": runtime.shape is not None,
        "stats": rows,
        "errors": [
            {"method": e.method, "name": e.name, "error": e.text, "occurrences": e.occurrences}
            for e in errors
        ],
        "exceptions": [
            {"count": r.count, "msg": r.msg, "traceback": r.traceback, "nodes": sorted(r.nodes)}
            for r in exceptions
        ],
        "total_rps": rows[-1]["current_rps"],
        "total_fail_per_sec": rows[-1]["current_fail_per_sec"],
        "fail_ratio": _number(total.fail_ratio),
        "current_response_time_percentiles": {
            f"response_time_percentile_{q}": _number(v / 1000)
            for q, v in zip(CHART_PERCENTILES, current, strict=True)
        },
        "worker_count": len(runtime.workers),
        "workers": worker_rows(runtime),
        "lost_workers": len(runtime.lost_workers),
        # at most this many requests of lost workers are in no report (core/unreported.py)
        "unreported_requests": unreported_requests(runtime),
        # schedules (pacing, the open model): per user class, and whether any fell behind
        "fell_behind": stats.fell_behind,
        "schedules": schedules_to_json(stats),
        "dropped_arrivals": sum(stats.dropped_arrivals.values()),
    }


def unreported_requests(runtime: Any) -> int:
    """At most this many requests of lost workers are in no report (0 without a master)."""
    bound = getattr(runtime, "unreported_bound", None)
    return unreported.total(bound())[0] if bound is not None else 0


def logs_document(logs: Any, since: int = 0) -> dict[str, Any]:
    """``/logs``: Locust's ``{"master": [line, ...], "workers": {id: [line, ...]}}``, and the
    entries themselves for the Logs view."""
    entries = logs.since(since)
    master: list[str] = []
    workers: dict[str, list[str]] = {}
    for entry in entries:
        (master if entry.source == MASTER else workers.setdefault(entry.source, [])).append(
            entry.line()
        )
    return {
        "master": master,
        "workers": workers,
        "entries": [e.to_json() for e in entries],
        "last_seq": logs.last_seq,
        "dropped": dict(logs.dropped),
    }


def history_sample(runtime: Any, now: float | None = None) -> dict[str, Any]:
    """One point of the charts: users, current RPS and current percentiles (ms)."""
    total = runtime.stats_merged.total
    window = total.current_histogram()
    sample: dict[str, Any] = {
        "time": round(time.time() if now is None else now, 3),
        "user_count": runtime.user_count,
        "current_rps": _number(total.current_rps),
        "current_fail_per_sec": _number(total.current_fail_per_sec),
        "total_avg_response_time": _number(total.avg_response_time),
    }
    for q, value in zip(CHART_PERCENTILES, window.quantiles(CHART_PERCENTILES), strict=True):
        sample[f"response_time_percentile_{q}"] = _number(value / 1000)
    if runtime.stats_merged.fell_behind:
        corrected = total.current_corrected_histogram().quantile(0.99)
        sample["corrected_response_time_percentile_0.99"] = _number(corrected / 1000)
    return sample
