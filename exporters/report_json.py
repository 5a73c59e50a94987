"""The ``--json`` / ``--json-file`` document: a list with one dict per entry.

The keys of Locust's ``--json`` output (its ``serialize_stats``) are all there, with
response times in milliseconds: ``response_times`` maps each non-empty histogram bucket's
midpoint (ms, as a string key once in JSON) to its count, and ``num_reqs_per_sec`` /
``num_fail_per_sec`` cover the last seconds only. Added: averages, the median, every
percentile of ``PERCENTILES``, rates and the failure ratio. Like Locust's, the list has no
"Aggregated" entry.

Also added, from each request's intended start (coordinated omission, see
``lcore.schedule_lag``; the same as the uncorrected figures without a schedule):
``corrected_response_time_percentiles``, ``corrected_avg_response_time``,
``corrected_max_response_time`` and ``corrected_num_requests`` (the requests counted from the
schedule: a paced user's missed slots count too). ``schedules_to_json`` gives the per user
class figures (scheduled starts, lag, missed slots, dropped arrivals): the ``--threshold``
form of the document carries them under ``"schedules"``.

With ``--threshold`` the document is an object (``stats``, ``thresholds``), which also holds
``unreported``: the bound on requests that lost workers made and no report carried
(``unreported_to_json``).
"""

from __future__ import annotations

from typing import Any

from lcore.stats import PERCENTILES, MergedStats, StatsEntry
from lcore.unreported import Unreported, total

__all__ = ["entry_to_json", "schedules_to_json", "stats_to_json", "unreported_to_json"]


def _ms(value_us: float) -> float:
    return round(value_us / 1000, 3)


def entry_to_json(entry: StatsEntry) -> dict[str, Any]:
    histogram = entry.histogram
    response_times: dict[float, int] = {}
    for low, high, count in histogram.buckets():
        response_times[_ms((low + high) / 2)] = count
    percentiles = histogram.quantiles(PERCENTILES) if histogram.count else [0] * len(PERCENTILES)
    corrected = entry.corrected_histogram
    corrected_percentiles = (
        corrected.quantiles(PERCENTILES) if corrected.count else [0] * len(PERCENTILES)
    )
    return {
        "name": entry.name,
        "method": entry.method,
        "last_request_timestamp": entry.last_request_timestamp,
        "start_time": entry.start_time,
        "num_requests": entry.num_requests,
        "num_none_requests": entry.num_none_requests,
        "num_failures": entry.num_failures,
        "total_response_time": _ms(histogram.sum),
        "max_response_time": _ms(histogram.max),
        "min_response_time": _ms(histogram.min) if histogram.count else None,
        "total_content_length": entry.total_content_length,
        "response_times": response_times,
        "num_reqs_per_sec": dict(entry.num_reqs_per_sec),
        "num_fail_per_sec": dict(entry.num_fail_per_sec),
        "avg_response_time": round(entry.avg_response_time, 3),
        "median_response_time": round(entry.median_response_time, 3),
        "avg_content_length": round(entry.avg_content_length, 3),
        "response_time_percentiles": {
            str(p): _ms(v) for p, v in zip(PERCENTILES, percentiles, strict=True)
        },
        "current_rps": round(entry.current_rps, 3),
        "current_fail_per_sec": round(entry.current_fail_per_sec, 3),
        "total_rps": round(entry.total_rps, 3),
        "total_fail_per_sec": round(entry.total_fail_per_sec, 3),
        "fail_ratio": entry.fail_ratio,
        "corrected_num_requests": corrected.count,
        "corrected_avg_response_time": round(corrected.mean / 1000, 3),
        "corrected_max_response_time": _ms(corrected.max),
        "corrected_response_time_percentiles": {
            str(p): _ms(v) for p, v in zip(PERCENTILES, corrected_percentiles, strict=True)
        },
    }


def stats_to_json(stats: MergedStats) -> list[dict[str, Any]]:
    """Every entry with requests or failures, sorted by (name, method)."""
    return [entry_to_json(e) for e in stats.sorted_entries() if e.num_requests or e.num_failures]


def unreported_to_json(shares: list[Unreported]) -> dict[str, Any]:
    """``{"requests_at_most": N, "workers": [...]}``: the workers still lost at the end, each
    with its last known rate, its silent seconds and its bound (null: no report ever came)."""
    known, unknown = total(shares)
    return {
        "requests_at_most": known,
        "workers_without_a_rate": unknown,
        "workers": [
            {
                "worker": s.worker,
                "host": s.host,
                "last_rate": None if s.rate is None else round(s.rate, 3),
                "silent_seconds": round(s.silent, 3),
                "requests_at_most": s.requests,
            }
            for s in shares
        ],
    }


def schedules_to_json(stats: MergedStats) -> dict[str, dict[str, Any]]:
    """Per user class that had scheduled starts or dropped arrivals: ``scheduled_starts``,
    ``late_starts`` (by 1 ms or more), ``lag_percentiles`` and ``max_lag`` (ms),
    ``missed_slots``, ``dropped_arrivals``."""
    from lcore.schedule_lag import ON_TIME_US

    out: dict[str, dict[str, Any]] = {}
    for name in sorted(set(stats.schedules) | set(stats.dropped_arrivals)):
        tally = stats.schedules.get(name)
        lag = tally.lag if tally is not None else None
        figures: dict[str, Any] = {
            "scheduled_starts": lag.count if lag is not None else 0,
            "late_starts": (lag.count - lag.count_at_or_below([ON_TIME_US - 1])[0]) if lag else 0,
            "max_lag": _ms(lag.max) if lag else 0.0,
            "lag_percentiles": {
                str(p): _ms(v) for p, v in zip(PERCENTILES, lag.quantiles(PERCENTILES), strict=True)
            }
            if lag
            else {},
            "missed_slots": tally.missed if tally is not None else 0,
            "dropped_arrivals": stats.dropped_arrivals.get(name, 0),
        }
        out[name] = figures
    return out
