"""Prometheus ``/metrics``: a Collector that turns the master's merged state into metric families
at scrape time (no second copy to keep in sync), on a registry of its own.

Counters and the response-time histogram are per (method, name) only, so ``sum()`` over them is
the run's total. Quantiles cannot be summed, so the quantile gauges also carry the
"Aggregated" row (``method=""``, ``name="Aggregated"``), as the reports do.

Bounded: at most ``max_series`` (``--metrics-max-series``) (method, name) pairs get series of
their own, the most requested first, and keep them until the stats are reset (a series that
moved in and out would make its counters go backwards); the others are summed into one
``name="Other (over N names on /metrics)"`` row per method, ``lcore_metrics_folded_names``
says how many, and the first fold is logged once.

Built in two steps so that a scrape never holds the master's event loop (exporters/
prometheus_render.py): ``snapshot_steps`` copies what a scrape needs from the merged state on
the loop, a slice of entries at a time; ``build`` turns that snapshot into metric families,
which needs no access to the live state and runs in a thread of its own. ``collect`` does both
at once, for a plain registry.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from lcore import unreported
from lcore._version import __version__
from lcore.histogram import Histogram
from lcore.runners import (
    STATE_CLEANUP,
    STATE_INIT,
    STATE_MISSING,
    STATE_RUNNING,
    STATE_SPAWNING,
    STATE_STOPPED,
    STATE_STOPPING,
)

__all__ = [
    "DEFAULT_BUCKETS",
    "MAX_SERIES",
    "QUANTILES",
    "LcoreCollector",
    "Snapshot",
    "folded_name",
    "make_collectors",
    "make_registry",
    "parse_buckets",
    "render",
]

DEFAULT_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""Upper bounds (seconds) of the ``lcore_response_time_seconds`` buckets; +Inf is added."""
QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99, 0.999)
MAX_SERIES = 300
"""(method, name) pairs with series of their own (``--metrics-max-series``); each costs about
67 samples (three counters, a histogram of 16 buckets and quantiles over two windows, the
histogram and the quantiles again from the intended starts): 300 are about 20,000."""
SNAPSHOT_SLICE = 32
"""Entries copied from the live state between two turns of the event loop."""
MAX_ERROR_SERIES = 20
"""Distinct (method, name, error) series exported; later ones are counted as error="other"."""
MAX_ERROR_LABEL = 200
"""Characters of an error text kept in its label."""
OTHER_ERROR = "other"
RUNNER_STATES = (
    STATE_INIT,
    STATE_SPAWNING,
    STATE_RUNNING,
    STATE_STOPPING,
    STATE_STOPPED,
    STATE_CLEANUP,
    STATE_MISSING,
)
_ENTRY = ["method", "name"]
log = logging.getLogger(__name__)
_WORKER = ["worker", "host"]


def parse_buckets(text: str) -> tuple[float, ...]:
    """``"0.01,0.1,1"`` -> increasing bucket bounds in seconds; ``ValueError`` if not usable."""
    try:
        bounds = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"bucket bounds must be numbers in seconds, got {text!r}") from None
    _check_buckets(bounds)
    return bounds


def _check_buckets(bounds: Sequence[float]) -> None:
    if not bounds:
        raise ValueError("at least one bucket bound is needed")
    if any(not (math.isfinite(b) and b > 0) for b in bounds):
        raise ValueError("bucket bounds must be positive and finite (+Inf is always added)")
    if any(a >= b for a, b in zip(bounds, bounds[1:], strict=False)):
        raise ValueError("bucket bounds must be strictly increasing")


class _ErrorSeries:
    """Which (method, name, error) triples get a series of their own.

    The most frequent are admitted, up to ``limit``, and stay admitted until the stats are
    reset: a series that moved in and out of "other" would make both counters go backwards.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._admitted: set[tuple[str, str, str]] = set()
        self._source: object = None

    def fold(self, errors: dict[tuple[str, str, str], Any]) -> dict[tuple[str, str, str], int]:
        return self.fold_seen(errors, [(key, e, e.occurrences) for key, e in errors.items()])

    def fold_seen(
        self, source: object, seen: list[tuple[tuple[str, str, str], Any, int]]
    ) -> dict[tuple[str, str, str], int]:
        """``seen``: (key, error, its occurrences then) of every error in ``source``."""
        if source is not self._source:  # MergedStats.reset() starts a new dict
            self._source = source
            self._admitted = set()
        admitted = self._admitted
        if len(admitted) < self.limit and len(seen) > len(admitted):
            candidates = sorted(
                (item for item in seen if item[0] not in admitted), key=lambda item: -item[2]
            )
            for key, _e, _n in candidates[: self.limit - len(admitted)]:
                admitted.add(key)
        folded: dict[tuple[str, str, str], int] = {}
        for key, e, n in seen:
            label = _error_label(e.text) if key in admitted else OTHER_ERROR
            series = (e.method, e.name, label)
            folded[series] = folded.get(series, 0) + n
        return folded


class _AdmittedNames:
    """Which (method, name) pairs get series of their own: the most requested, up to
    ``limit``, kept until the stats are reset (as ``_ErrorSeries``)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("max_series must be at least 1")
        self.limit = limit
        self._admitted: set[tuple[str, str]] = set()
        self._source: object = None
        self.warned = False

    def split(self, stats: Any, entries: list[Any]) -> tuple[list[Any], list[Any]]:
        """``entries`` (sorted) as (those with series of their own, those folded)."""
        if stats.entries is not self._source:  # MergedStats.reset() starts a new dict
            self._source = stats.entries
            self._admitted = set()
        admitted = self._admitted
        if len(admitted) < self.limit and len(entries) > len(admitted):
            candidates = sorted(
                (e for e in entries if (e.method, e.name) not in admitted),
                key=lambda e: -e.num_requests,
            )
            for e in candidates[: self.limit - len(admitted)]:
                admitted.add((e.method, e.name))
        if len(entries) <= len(admitted):
            return entries, []
        own: list[Any] = []
        folded: list[Any] = []
        for e in entries:
            (own if (e.method, e.name) in admitted else folded).append(e)
        return own, folded


def folded_name(limit: int) -> str:
    """The row that sums, per method, the names beyond ``--metrics-max-series``."""
    return f"Other (over {limit} names on /metrics)"


@dataclass(slots=True)
class _Figures:
    """One entry as a scrape saw it: numbers and histograms nobody changes afterwards."""

    method: str
    name: str
    requests: int
    failures: int
    size: int
    run: Histogram
    window: Histogram  # the stats' own window histogram: replaced, never modified, by them
    # from the intended starts (coordinated omission); the same objects where nothing was late
    corrected_run: Histogram
    corrected_window: Histogram


@dataclass
class Snapshot:
    """What ``build`` needs, taken from the master's state on its loop."""

    own: list[_Figures] = field(default_factory=list)
    folded: list[_Figures] = field(default_factory=list)
    errors: list[tuple[tuple[str, str, str], Any, int]] = field(default_factory=list)
    errors_source: object = None
    exceptions: int = 0
    rps: float = 0.0
    fail_rate: float = 0.0
    families: list[Metric] = field(default_factory=list)  # runner and workers, built at once


def _figures(entry: Any) -> _Figures:
    run, window = entry.histogram.copy(), entry.current_histogram()
    if entry.is_corrected:
        corrected_run = entry.corrected_histogram.copy()
        corrected_window = entry.current_corrected_histogram()
    else:
        corrected_run, corrected_window = run, window
    return _Figures(
        entry.method,
        entry.name,
        entry.num_requests,
        entry.num_failures,
        entry.total_content_length,
        run,
        window,
        corrected_run,
        corrected_window,
    )


def _error_label(text: str) -> str:
    if len(text) <= MAX_ERROR_LABEL:
        return text
    return text[: MAX_ERROR_LABEL - 1] + "…"


class LcoreCollector(Collector):
    """Metric families over a ``MasterRuntime`` (``runtime.stats_merged``, workers, state).

    ``snapshot_steps`` reads the runtime and must run on the master's loop; ``build`` reads
    only its snapshot. Scrapes are one at a time (prometheus_render.py), so the sets of
    admitted names and error series are touched by one scrape at a time.
    """

    def __init__(
        self,
        runtime: Any,
        *,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        quantiles: Sequence[float] = QUANTILES,
        max_error_series: int = MAX_ERROR_SERIES,
        max_series: int = MAX_SERIES,
    ) -> None:
        _check_buckets(buckets)
        self.runtime = runtime
        self.buckets = tuple(buckets)
        self._bounds_us = [round(b * 1e6) for b in self.buckets]
        self._le = [floatToGoString(b) for b in self.buckets] + ["+Inf"]
        self.quantiles = tuple(quantiles)
        self._quantile_labels = [floatToGoString(q) for q in self.quantiles]
        self._errors = _ErrorSeries(max_error_series)
        self._names = _AdmittedNames(max_series)

    @property
    def max_series(self) -> int:
        return self._names.limit

    def describe(self) -> Iterable[Metric]:
        return []  # built at scrape time; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        snapshot = Snapshot()
        for _ in self.snapshot_steps(snapshot):
            pass
        yield from self.build(snapshot)

    # -- on the loop: copy what a scrape needs ----------------------------------------------

    def snapshot_steps(self, snapshot: Snapshot, size: int = SNAPSHOT_SLICE) -> Iterator[None]:
        """Fill ``snapshot``, yielding after every ``size`` entries copied: the caller gives
        the event loop a turn there. Each entry is copied whole between two yields."""
        stats = self.runtime.stats_merged
        entries = [e for e in stats.sorted_entries() if e.num_requests]
        own, folded = self._names.split(stats, entries)
        if folded and not self._names.warned:
            self._names.warned = True
            log.warning(
                "/metrics: %d request names are beyond --metrics-max-series %d and are summed "
                'into one "%s" series per method. A locustfile that names requests by URL '
                "with ids in them makes one name per id: group them with name=",
                len(folded), self._names.limit, folded_name(self._names.limit),
            )  # fmt: skip
        for kind, chosen in ((snapshot.own, own), (snapshot.folded, folded)):
            for start in range(0, len(chosen), size):
                kind.extend(_figures(e) for e in chosen[start : start + size])
                yield
        errors = stats.errors
        snapshot.errors_source = errors
        items = list(errors.items())  # one C-level copy; the counts are read below
        for start in range(0, len(items), size * 16):
            snapshot.errors.extend(
                (key, e, e.occurrences) for key, e in items[start : start + size * 16]
            )
            yield
        snapshot.exceptions = sum(record.count for record in stats.exceptions.values())
        total = stats.total
        snapshot.rps, snapshot.fail_rate = total.current_rps, total.current_fail_per_sec
        snapshot.families = [
            *self._schedule_families(),
            *self._runner_families(),
            *self._worker_families(),
        ]
        folded_count = GaugeMetricFamily(
            "lcore_metrics_folded_names",
            f"(method, name) pairs beyond --metrics-max-series ({self._names.limit}), summed "
            "into one series per method here (the reports keep them apart).",
            value=len(folded),
        )
        snapshot.families.append(folded_count)

    # -- anywhere: families from a snapshot ---------------------------------------------------

    def build(self, snapshot: Snapshot) -> list[Metric]:
        return [*self._request_families(snapshot), *snapshot.families]

    # -- requests ------------------------------------------------------------------------

    def _request_families(self, snapshot: Snapshot) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "lcore_requests", "Requests made, per method and name.", labels=_ENTRY
        )
        failures = CounterMetricFamily(
            "lcore_request_failures", "Requests that failed, per method and name.", labels=_ENTRY
        )
        sizes = CounterMetricFamily(
            "lcore_response_size_bytes",
            "Bytes of response bodies received, per method and name.",
            labels=_ENTRY,
        )
        # the times as measured, and from the intended starts: the same two families each
        measured = _TimeFamilies(
            self,
            HistogramMetricFamily(
                "lcore_response_time_seconds",
                "Response times, per method and name (HDR histogram: bucket bounds are resolved "
                "within 1/64 of their value).",
                labels=_ENTRY,
            ),
            # a summary, not a gauge: only summaries may carry a "quantile" label (promtool)
            SummaryMetricFamily(
                "lcore_response_time_quantile_seconds",
                'Response time quantiles over the whole run (window="run") or the last seconds '
                '(window="current"); _count and _sum cover the whole run either way. '
                'name="Aggregated" is every request together.',
                labels=[*_ENTRY, "window"],
            ),
        )
        corrected = _TimeFamilies(
            self,
            HistogramMetricFamily(
                "lcore_corrected_response_time_seconds",
                "Response times from each request's intended start (coordinated omission: the lag "
                "of tasks that started behind their schedule added, a paced user's missed slots "
                "counted), per method and name; lcore_response_time_seconds where nothing was late.",
                labels=_ENTRY,
            ),
            SummaryMetricFamily(
                "lcore_corrected_response_time_quantile_seconds",
                "lcore_response_time_quantile_seconds from the intended starts.",
                labels=[*_ENTRY, "window"],
            ),
        )
        rows = list(snapshot.own)
        rows += self._folded_rows(snapshot.folded)
        for row in rows:
            labels = [row.method, row.name]
            requests.add_metric(labels, row.requests)
            failures.add_metric(labels, row.failures)
            sizes.add_metric(labels, row.size)
            measured.add(labels, row.run, row.window)
            corrected.add(labels, row.corrected_run, row.corrected_window)
        measured.add_aggregated()
        corrected.add_aggregated()
        errors = CounterMetricFamily(
            "lcore_request_errors",
            f"Failed requests per error text; beyond {self._errors.limit} distinct series they "
            f'are counted as error="{OTHER_ERROR}".',
            labels=[*_ENTRY, "error"],
        )
        folded_errors = self._errors.fold_seen(snapshot.errors_source, snapshot.errors)
        for (method, name, label), n in sorted(folded_errors.items()):
            errors.add_metric([method, name, label], n)
        exceptions = CounterMetricFamily(
            "lcore_task_exceptions", "Exceptions raised by tasks (not request failures)."
        )
        exceptions.add_metric([], snapshot.exceptions)
        rps = GaugeMetricFamily(
            "lcore_current_requests_per_second",
            "Requests per second over the last seconds, every request together.",
            value=snapshot.rps,
        )
        fails = GaugeMetricFamily(
            "lcore_current_failures_per_second",
            "Failures per second over the last seconds, every request together.",
            value=snapshot.fail_rate,
        )
        yield from (requests, failures, sizes, measured.times, measured.quantiles)
        yield from (errors, exceptions, rps, fails, corrected.times, corrected.quantiles)

    def _folded_rows(self, folded: list[_Figures]) -> list[_Figures]:
        """One row per method summing the entries without series of their own."""
        rows: dict[str, _Figures] = {}
        name = folded_name(self._names.limit)
        for f in folded:
            row = rows.get(f.method)
            if row is None:
                row = rows[f.method] = _Figures(
                    f.method, name, 0, 0, 0, Histogram(), Histogram(), Histogram(), Histogram()
                )
            row.requests += f.requests
            row.failures += f.failures
            row.size += f.size
            row.run.merge(f.run)
            row.window.merge(f.window)
            row.corrected_run.merge(f.corrected_run)
            row.corrected_window.merge(f.corrected_window)
        return [rows[method] for method in sorted(rows)]

    def _add_quantiles(
        self, family: SummaryMetricFamily, labels: list[str], run: Histogram, current: Histogram
    ) -> None:
        for window, histogram in (("run", run), ("current", current)):
            label_values = {"method": labels[0], "name": labels[1], "window": window}
            if histogram.count:
                values = histogram.quantiles(self.quantiles)
                for q, value in zip(self._quantile_labels, values, strict=True):
                    family.add_sample(family.name, {**label_values, "quantile": q}, value / 1e6)
            # as Go's summaries: quantiles over a window, count and sum since the start
            family.add_metric([*labels, window], run.count, run.sum / 1e6)

    # -- schedules: coordinated omission ---------------------------------------------------

    def _schedule_families(self) -> Iterator[Metric]:
        """Per User class (few): built on the loop with the snapshot."""
        stats = self.runtime.stats_merged
        dropped = CounterMetricFamily(
            "lcore_dropped_arrivals",
            "Open-model arrivals that were due while every user up to the ceiling was busy, "
            "per User class.",
            labels=["user_class"],
        )
        starts = CounterMetricFamily(
            "lcore_scheduled_starts",
            "Tasks started on a schedule (the open model's arrivals, paced users), per User class.",
            labels=["user_class"],
        )
        missed = CounterMetricFamily(
            "lcore_missed_slots",
            "Slots of paced users' schedules that went by while they were behind, per User class "
            "(counted in the corrected response times).",
            labels=["user_class"],
        )
        lag = SummaryMetricFamily(
            "lcore_schedule_lag_seconds",
            "How late scheduled tasks started against their schedule, per User class.",
            labels=["user_class"],
        )
        lag_max = GaugeMetricFamily(
            "lcore_schedule_lag_max_seconds",
            "The latest start against its schedule so far, per User class.",
            labels=["user_class"],
        )
        classes = set(stats.schedules) | set(stats.dropped_arrivals)
        classes |= {cls.__name__ for cls in self.runtime.environment.user_classes}
        for name in sorted(classes):
            dropped.add_metric([name], stats.dropped_arrivals.get(name, 0))
            tally = stats.schedules.get(name)
            if tally is None:
                continue
            starts.add_metric([name], tally.starts)
            missed.add_metric([name], tally.missed)
            values = tally.lag.quantiles(self.quantiles)
            for q, value in zip(self._quantile_labels, values, strict=True):
                lag.add_sample(lag.name, {"user_class": name, "quantile": q}, value / 1e6)
            lag.add_metric([name], tally.lag.count, tally.lag.sum / 1e6)
            lag_max.add_metric([name], tally.lag.max / 1e6)
        yield from (dropped, starts, missed, lag, lag_max)

    # -- the test and its workers ------------------------------------------------------------

    def _runner_families(self) -> Iterator[Metric]:
        runtime = self.runtime
        info = InfoMetricFamily("lcore_build", "lcore's version.")
        info.add_metric([], {"version": __version__})
        state = GaugeMetricFamily(
            "lcore_runner_state",
            "1 for the test's current state, 0 for the others.",
            labels=["state"],
        )
        current = runtime.state
        for name in RUNNER_STATES if current in RUNNER_STATES else (*RUNNER_STATES, current):
            state.add_metric([name], 1.0 if name == current else 0.0)
        users = GaugeMetricFamily(
            "lcore_users", "Users running, per User class.", labels=["user_class"]
        )
        running = dict(runtime.user_classes_count)
        for cls in runtime.environment.user_classes:
            running.setdefault(cls.__name__, 0)
        for name, n in sorted(running.items()):
            users.add_metric([name], n)
        target = GaugeMetricFamily(
            "lcore_target_users", "Users the test ramps to.", value=runtime.target_user_count
        )
        rate = GaugeMetricFamily(
            "lcore_spawn_rate_users_per_second",
            "Users started (or stopped) per second while ramping.",
            value=runtime.spawn_rate or 0.0,
        )
        yield from (info, state, users, target, rate)
        if runtime.start_time is not None:
            yield GaugeMetricFamily(
                "lcore_test_start_time_seconds",
                "When the current test started, seconds since the epoch.",
                value=runtime.start_time,
            )

    def _worker_families(self) -> Iterator[Metric]:
        runtime = self.runtime
        by_state: dict[str, int] = dict.fromkeys(
            (STATE_INIT, STATE_SPAWNING, STATE_RUNNING, STATE_STOPPED, STATE_MISSING), 0
        )
        cpu = GaugeMetricFamily(
            "lcore_worker_cpu_usage_ratio",
            "CPU use of each worker process (1 is one core saturated).",
            labels=_WORKER,
        )
        warning = GaugeMetricFamily(
            "lcore_worker_cpu_warning",
            "1 once a worker exceeded the CPU threshold: its figures may be skewed.",
            labels=_WORKER,
        )
        users = GaugeMetricFamily("lcore_worker_users", "Users each worker runs.", labels=_WORKER)
        hosts: dict[str, str] = {}
        for node in runtime.workers.values():
            by_state[node.state] = by_state.get(node.state, 0) + 1
            labels = [node.id, node.host]
            hosts[node.id] = node.host
            cpu.add_metric(labels, node.cpu / 100.0)
            warning.add_metric(labels, 1.0 if node.cpu_warning else 0.0)
            users.add_metric(labels, node.user_count)
        for node in runtime.lost_workers:
            by_state[STATE_MISSING] += 1
            hosts.setdefault(node.id, node.host)
        workers = GaugeMetricFamily(
            "lcore_workers", "Workers by state (missing: lost during the test).", labels=["state"]
        )
        for name, n in by_state.items():
            workers.add_metric([name], n)
        reported = CounterMetricFamily(
            "lcore_worker_requests",
            "Requests each worker reported since the stats were last reset.",
            labels=_WORKER,
        )
        for worker_id, figures in sorted(runtime.stats_merged.per_worker.items()):
            reported.add_metric([worker_id, hosts.get(worker_id, "")], figures.num_requests)
        shares = runtime.unreported_bound() if hasattr(runtime, "unreported_bound") else []
        missing = GaugeMetricFamily(
            "lcore_unreported_requests",
            "At most this many requests of workers still lost are in no report: each one's "
            "last reported rate times the seconds it was silent before it was declared lost.",
            value=unreported.total(shares)[0],
        )
        yield from (workers, cpu, warning, users, reported, missing)


class _TimeFamilies:
    """One view of the response times (as measured, or from the intended starts): a histogram
    and a quantile summary per entry, and the quantiles of every entry together."""

    def __init__(
        self, collector: LcoreCollector, times: HistogramMetricFamily, quantiles: SummaryMetricFamily
    ) -> None:
        self._collector = collector
        self.times = times
        self.quantiles = quantiles
        self._total_run, self._total_window = Histogram(), Histogram()

    def add(self, labels: list[str], run: Histogram, window: Histogram) -> None:
        c = self._collector
        cumulative = run.count_at_or_below(c._bounds_us)
        self.times.add_metric(
            labels, list(zip(c._le, [*cumulative, run.count], strict=True)), run.sum / 1e6
        )
        c._add_quantiles(self.quantiles, labels, run, window)
        self._total_run.merge(run)
        self._total_window.merge(window)

    def add_aggregated(self) -> None:
        if self._total_run.count:
            self._collector._add_quantiles(
                self.quantiles, ["", "Aggregated"], self._total_run, self._total_window
            )


def make_collectors(runtime: Any, **collector_options: Any) -> tuple[LcoreCollector, Collector]:
    """lcore's collector and the master's process metrics, registered nowhere."""
    return LcoreCollector(runtime, **collector_options), ProcessCollector(registry=None)


def make_registry(runtime: Any, **collector_options: Any) -> CollectorRegistry:
    """A registry of its own with lcore's collector and the master's process metrics."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in make_collectors(runtime, **collector_options):
        registry.register(collector)
    return registry


def render(registry: CollectorRegistry, accept: str = "") -> tuple[bytes, str]:
    """The exposition (text format, or OpenMetrics if ``accept`` asks for it) and its type."""
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type
