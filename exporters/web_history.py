"""The status page's History view: the stored runs, read from the results store.

    GET /api/runs                 recent runs, oldest first (``?last=N``, ``?label=KEY=VALUE``
                                  repeatable), and which metrics a trend can chart
    GET /api/runs/trend           ``?metric=p95`` (see ``TREND_METRICS``) over those runs
    GET /api/runs/compare         ``?a=ID&b=ID``: the two runs side by side, per endpoint, with
                                  the verdicts of ``lcore runs compare``
    GET /api/runs/{id}            one run: details, per-endpoint figures, per-second history

Reads run on a thread of their own (the master's loop awaits them), made only while
someone looks at the view; the writes happen on the recorder's thread. Behind the page's authentication like every route.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from . import results_db, results_trend
from .results_record import entry_summary, parse_label, restore_stats
from .results_writer import os_thread_executor

__all__ = ["HistoryRoutes"]

log = logging.getLogger(__name__)

MAX_RUNS = 200


class HistoryRoutes:
    """Routes over the store at ``where`` (None: the page says history is off)."""

    def __init__(self, where: str | None) -> None:
        self.where = where
        self._store: results_db.Store | None = None  # used on the reader's thread only
        self._executor: Any = None

    def add_to(self, app: web.Application) -> None:
        get = app.router.add_get
        get("/api/runs", self._runs)
        get("/api/runs/trend", self._trend)
        get("/api/runs/compare", self._compare)
        get("/api/runs/{id}", self._run)

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.submit(self._close_store).result(timeout=10)
            executor.shutdown(wait=False)

    def _close_store(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def _open(self) -> results_db.Store:
        if self.where is None:
            raise _http(web.HTTPNotFound, "This master saves no runs (--no-results-db)")
        if self._store is None:
            try:
                self._store = results_db.open_store(self.where)
            except results_db.StoreError as e:
                raise _http(web.HTTPServiceUnavailable, str(e)) from None
        return self._store

    async def _read(self, fn: Any) -> Any:
        """``fn(store)`` on a thread of its own: a query to a remote PostgreSQL waits there,
        not on the master's loop."""
        if self.where is None:
            raise _http(web.HTTPNotFound, "This master saves no runs (--no-results-db)")
        if self._executor is None:
            self._executor = os_thread_executor()
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        future = self._executor.submit(self._in_thread, fn)
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(done.set))
        await done.wait()
        return future.result()

    def _in_thread(self, fn: Any) -> Any:
        store = self._open()
        try:
            return fn(store)
        except results_db.RunNotFound as e:
            raise _http(web.HTTPNotFound, str(e)) from None
        except Exception as e:  # a broken connection: open a new one next time
            self._close_store()
            log.warning("Could not read the results store: %s", e)
            raise _http(web.HTTPServiceUnavailable, "Could not read the results store") from None

    @staticmethod
    def _filters(request: web.Request) -> tuple[dict[str, str], int]:
        try:
            labels = dict(parse_label(v) for v in request.query.getall("label", []))
            last = int(request.query.get("last", "50"))
        except ValueError as e:
            raise _http(web.HTTPBadRequest, str(e)) from None
        return labels, max(1, min(last, MAX_RUNS))

    async def _runs(self, request: web.Request) -> web.StreamResponse:
        labels, last = self._filters(request)
        runs = await self._read(lambda s: s.runs(labels, last=last))
        return web.json_response(
            {
                "store": results_db.redact(self.where or ""),
                "metrics": list(results_trend.TREND_METRICS),
                "runs": [_brief(r) for r in runs],
            }
        )

    async def _trend(self, request: web.Request) -> web.StreamResponse:
        labels, last = self._filters(request)
        metric = request.query.get("metric", "p95")
        if metric not in results_trend.TREND_METRICS:
            raise _http(web.HTTPBadRequest, f"metric must be one of {', '.join(results_trend.TREND_METRICS)}")
        runs = await self._read(lambda s: s.runs(labels, last=last, finished_only=True))
        points = [{"id": p["id"], "time": p["started"], "value": p.get(metric)} for p in results_trend.trend_points(runs)]
        return web.json_response({"metric": metric, "points": points})

    async def _run(self, request: web.Request) -> web.StreamResponse:
        run = await self._read(lambda s: s.run(request.match_info["id"]))
        stats = restore_stats(run["results"])
        rows = [{"method": e.method, "name": e.name, **entry_summary(e)} for e in (*stats.sorted_entries(), stats.total)]
        return web.json_response({**_brief(run), "options": run.get("options"), "rows": rows, "history": run["history"]})

    async def _compare(self, request: web.Request) -> web.StreamResponse:
        from .results_compare import compare_stats, to_json

        a_id, b_id = request.query.get("a", ""), request.query.get("b", "")
        if not a_id or not b_id:
            raise _http(web.HTTPBadRequest, "give two runs: ?a=ID&b=ID")
        a, b = await self._read(lambda s: (s.run(a_id), s.run(b_id)))
        percentiles = list(b.get("percentiles") or [0.5, 0.95, 0.99])
        comparison = compare_stats(
            a["id"], restore_stats(a["results"]), b["id"], restore_stats(b["results"]), percentiles
        )
        document = to_json(comparison)
        return web.Response(text=_json(document), content_type="application/json")


def _http(cls: Any, message: str) -> web.HTTPException:
    """An error answer the page's ``api()`` reads: JSON with a ``message``."""
    return cls(text=_json({"message": message}), content_type="application/json")


def _brief(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "labels", "started", "ended", "status", "exit_code", "target", "users", "summary", "git_commit")
    return {k: r.get(k) for k in keys}


def _json(document: Any) -> str:
    import json
    import math

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(document))
