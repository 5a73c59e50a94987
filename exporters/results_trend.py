"""Trends over stored runs: the points the HTML report and the status page chart.

A point is a run's headline figures (``results_record.summary``: requests, failures, rps,
fail_ratio, avg, p50, p90, p95, p99, max) with its id and start time.
"""

from __future__ import annotations

import logging
from typing import Any

from . import results_db, results_record

__all__ = ["TREND_METRICS", "trend_for_report", "trend_points"]

log = logging.getLogger("lcore.results")

TREND_METRICS = ("rps", "avg", "p50", "p90", "p95", "p99", "max", "fail_ratio", "requests", "failures")


def trend_points(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One point per run, oldest first."""
    return [{"id": r["id"], "started": r["started"], **(r.get("summary") or {})} for r in runs]


def trend_for_report(recorder: Any, last: int) -> list[dict[str, Any]] | None:
    """The current run (as it ends) after the ``last - 1`` finished runs before it with the
    same labels; None when the store cannot be read (the report goes on without)."""
    info = recorder.info
    try:
        with results_db.open_store(recorder.where) as store:
            earlier = store.trend(info.labels, max(last - 1, 0), before=info.started) if last > 1 else []
    except results_db.StoreError as e:
        log.warning("The HTML report has no trend: %s", e)
        return None
    current = {"id": info.id, "started": info.started, **results_record.summary(recorder.runtime.stats_merged)}
    return [*trend_points([r for r in earlier if r["id"] != info.id]), current]


def stored_trend(store: results_db.Store, run: dict[str, Any], last: int) -> list[dict[str, Any]]:
    """The trend of a stored run: itself after the finished runs before it with its labels."""
    earlier = store.trend(run.get("labels") or {}, max(last - 1, 0), before=run["started"]) if last > 1 else []
    return trend_points([*[r for r in earlier if r["id"] != run["id"]], run])
