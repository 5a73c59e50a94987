"""What the results store keeps of a run, taken from the master's merged state (pure, no I/O
beyond ``git_commit``).

    RunInfo        what is known when a run starts: id, times, host, options, labels...
    take_results   the results so far: per-endpoint totals with their whole histograms (wire
                   form), failures, exceptions, the run's time span: a plain dict, JSON-ready
    restore_stats  a ``MergedStats`` rebuilt from those results, which every report reads
                   exactly as it read the live one (the CSV files come out byte for byte)
    history_point  one per-second sample: users, current RPS and percentiles, totals
    summary        the headline figures a list, a trend or a baseline needs

Snapshots are taken on the master's loop (they only copy numbers: a few µs per endpoint);
encoding and writing happen off it (``results_writer``).
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from lcore._version import __version__
from lcore.histogram import Histogram
from lcore.stats import MergedStats, ScheduleTally, StatsEntry, report_percentiles

__all__ = [
    "SUMMARY_PERCENTILES",
    "RunInfo",
    "effective_options",
    "entry_results",
    "git_commit",
    "history_point",
    "parse_label",
    "restore_stats",
    "summary",
    "take_results",
]

SUMMARY_PERCENTILES = (0.5, 0.9, 0.95, 0.99)
"""The percentiles a run's summary keeps (any other is recomputed from the histograms)."""

# option names whose values must never be stored: credentials and keys
_SECRET_WORDS = ("auth", "password", "passwd", "secret", "token", "key", "credential", "cookie")
_LEFT_OUT = frozenset({"locustfiles", "worker_count_expected", "thresholds"})


def parse_label(text: str) -> tuple[str, str]:
    """``"env=staging"`` -> ``("env", "staging")``; raises ValueError with a one-line reason."""
    key, sep, value = str(text).partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"a label is KEY=VALUE, e.g. env=staging, not {text!r}")
    if len(key) > 100 or len(value) > 500:
        raise ValueError(f"label {key[:40]!r} is too long (keys up to 100, values up to 500 characters)")
    return key, value.strip()


def effective_options(options: argparse.Namespace, secret_dests: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """The options the run was started with, without credentials (``--web-auth``, tokens,
    keys, a locustfile's ``is_secret`` options) or anything that is not plain data."""
    out: dict[str, Any] = {}
    for dest, value in sorted(vars(options).items()):
        if dest.startswith("_") or dest in _LEFT_OUT or dest in secret_dests:
            continue
        if any(word in dest.lower() for word in _SECRET_WORDS):
            continue
        if isinstance(value, (str, int, float, bool)) or value is None:
            out[dest] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float, bool)) for v in value):
            out[dest] = list(value)
    threshold_texts = [str(t) for t in getattr(options, "thresholds", None) or []]
    if threshold_texts:
        out["thresholds"] = threshold_texts
    return out


def git_commit(path: str | None) -> str | None:
    """The commit checked out where the locustfile is, when it is in a git repository."""
    if not path:
        return None
    folder = os.path.dirname(os.path.abspath(path.split(",")[0]))
    try:
        done = subprocess.run(
            ["git", "-C", folder, "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) in (40, 64) else None


@dataclass
class RunInfo:
    """What is known of a run when it starts (and its end, once it has ended)."""

    id: str
    started: float
    locustfile: str = ""
    digest: str = ""
    target: str = ""
    host: str = field(default_factory=socket.gethostname)
    version: str = __version__
    git_commit: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    percentiles: list[float] = field(default_factory=lambda: list(report_percentiles()))
    headless: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "started": self.started,
            "locustfile": self.locustfile,
            "digest": self.digest,
            "target": self.target,
            "host": self.host,
            "version": self.version,
            "git_commit": self.git_commit,
            "labels": dict(self.labels),
            "options": self.options,
            "percentiles": list(self.percentiles),
            "headless": self.headless,
        }


def entry_results(entry: StatsEntry) -> list[Any]:
    """One endpoint's totals: method, name, histogram (wire form), failures, content length,
    and the histogram from the intended starts when some request started late (else None)."""
    corrected = entry.corrected_histogram.to_wire() if entry.is_corrected else None
    return [
        entry.method, entry.name, entry.histogram.to_wire(), entry.num_failures,
        entry.total_content_length, corrected,
    ]  # fmt: skip


def take_results(stats: MergedStats, entries: list[list[Any]] | None = None) -> dict[str, Any]:
    """The results so far, as plain data: copies numbers only, no encoding. ``entries``: the
    endpoints' ``entry_results`` when the caller took them already (in slices)."""
    if entries is None:
        entries = [entry_results(e) for e in stats.entries.values()]
    errors = [
        [e.method, e.name, e.text, e.occurrences, e.first_seen, e.last_seen]
        for e in stats.errors.values()
    ]
    exceptions = [
        [r.msg, r.traceback, r.count, sorted(r.nodes)] for r in stats.exceptions.values()
    ]
    return {
        "entries": entries,
        "errors": errors,
        "exceptions": exceptions,
        "start": stats.start_time,
        "last_end": stats.last_request_timestamp,
        # how late scheduled tasks started, per user class (coordinated omission)
        "schedules": {
            user_class: [tally.lag.to_wire(), tally.missed] for user_class, tally in stats.schedules.items()
        },
        "dropped_arrivals": dict(stats.dropped_arrivals),
    }


def restore_stats(results: dict[str, Any]) -> MergedStats:
    """``take_results``' inverse: a MergedStats whose reports read as the original's."""
    return MergedStats.restored(
        entries=[
            (
                method, name, Histogram.from_wire(list(wire)), int(failures), int(length),
                Histogram.from_wire(list(rest[0])) if rest and rest[0] is not None else None,
            )  # fmt: skip
            for method, name, wire, failures, length, *rest in results.get("entries", [])
        ],
        errors=[tuple(e) for e in results.get("errors", [])],  # type: ignore[misc]
        exceptions=[(m, tb, int(n), nodes) for m, tb, n, nodes in results.get("exceptions", [])],
        start=float(results.get("start") or 0.0),
        last_end=results.get("last_end"),
        schedules={
            user_class: ScheduleTally(Histogram.from_wire(list(lag)), int(missed))
            for user_class, (lag, missed) in (results.get("schedules") or {}).items()
        },
        dropped_arrivals={k: int(v) for k, v in (results.get("dropped_arrivals") or {}).items()},
    )


def _finite(value: float) -> float:
    return round(value, 3) if math.isfinite(value) else 0.0


def entry_summary(entry: StatsEntry) -> dict[str, Any]:
    """requests, failures, rps, fail_ratio, avg and the summary percentiles (ms) of one row."""
    h = entry.histogram
    row: dict[str, Any] = {
        "requests": entry.num_requests,
        "failures": entry.num_failures,
        "rps": _finite(entry.total_rps),
        "fail_ratio": round(entry.fail_ratio, 6),
        "avg": _finite(entry.avg_response_time),
        "max": _finite(entry.max_response_time),
    }
    values = h.quantiles(SUMMARY_PERCENTILES) if h.count else [0] * len(SUMMARY_PERCENTILES)
    for q, v in zip(SUMMARY_PERCENTILES, values, strict=True):
        row[_percentile_key(q)] = round(v / 1000, 3)
    return row


def summary(stats: MergedStats) -> dict[str, Any]:
    """The Aggregated row's headline figures (a run's line in ``lcore runs list``)."""
    return entry_summary(stats.total)


def _percentile_key(q: float) -> str:
    value = q * 100
    return f"p{int(value) if value.is_integer() else round(value, 4)}"


def history_point(stats: MergedStats, user_count: int, now: float | None = None) -> dict[str, Any]:
    """One second of the run: users, current RPS/failures per second and percentiles (ms) over
    the stats' window, and the run's totals so far. ~2 histogram copies: cheap on the loop."""
    total = stats.total
    window = total.current_histogram()
    point: dict[str, Any] = {
        "time": round(time.time() if now is None else now, 3),
        "user_count": user_count,
        "current_rps": _finite(total.current_rps),
        "current_fail_per_sec": _finite(total.current_fail_per_sec),
        "requests": total.num_requests,
        "failures": total.num_failures,
    }
    # the chart's keys (as the status page's samples), then every reported percentile and the
    # totals: the columns of PREFIX_stats_history.csv's Aggregated row
    qs = sorted({*SUMMARY_PERCENTILES, *report_percentiles()})
    values = window.quantiles(qs) if window.count else [None] * len(qs)
    for q, v in zip(qs, values, strict=True):
        point[f"response_time_percentile_{q}"] = None if v is None else round(v / 1000, 3)
    point["total_median"] = _finite(total.median_response_time)
    point["total_avg"] = _finite(total.avg_response_time)
    point["total_min"] = _finite(total.min_response_time or 0.0)
    point["total_max"] = _finite(total.max_response_time)
    point["total_avg_content_length"] = _finite(total.avg_content_length)
    return point
